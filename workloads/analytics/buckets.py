"""Hour buckets in the store's local time, and query windows snapped to them.

Aggregates are kept per local hour of the store, because "today" and "opening hours" are local. A
bucket is named by the epoch second at which its local hour starts: unique even across a DST
fall-back (the repeated local hour is two buckets) and for zones with half-hour offsets
(Asia/Kolkata buckets start at :30 UTC). A window [from, to) is answered at hour resolution:
`from` is moved back to the start of its local hour and `to` forward to the end of its hour, and
the answer says which window it covers.

Example:
    >>> from zoneinfo import ZoneInfo
    >>> b = bucket_of(datetime(2026, 3, 3, 9, 45, tzinfo=UTC), ZoneInfo("Asia/Kolkata"))
    >>> datetime.fromtimestamp(b, UTC).isoformat()
    '2026-03-03T09:30:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOUR_S = 3600


def bucket_of(ts: datetime, tz: ZoneInfo) -> int:
    """Epoch second at which the local hour containing `ts` starts."""
    if ts.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    local = ts.astimezone(tz)
    return int(local.replace(minute=0, second=0, microsecond=0).timestamp())


def bucket_of_ms(ts_ms: int, tz: ZoneInfo) -> int:
    return bucket_of(datetime.fromtimestamp(ts_ms / 1000, UTC), tz)


def local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    """Start of the local day containing `day` (a DST day is 23 or 25 hours long)."""
    local = day.astimezone(tz)
    return datetime.combine(local.date(), time(0), tz).astimezone(UTC)


def next_local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    local = day.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tz).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A query window [start, end) on bucket boundaries, in epoch seconds."""

    start: int
    end: int
    timezone: str

    @property
    def start_dt(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_dt(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)

    def contains_ms(self, ts_ms: int) -> bool:
        return self.start * 1000 <= ts_ms < self.end * 1000


class WindowError(ValueError):
    """A from/to pair that cannot be answered; the message says which bound and why."""


def snap(start: datetime, end: datetime, tz: ZoneInfo, max_days: int = 400) -> Window:
    """[start, end) widened to whole local hours."""
    for name, ts in (("from", start), ("to", end)):
        if ts.tzinfo is None:
            raise WindowError(f"`{name}` needs a time zone, e.g. 2026-03-03T14:00:00Z or +05:30")
    if end <= start:
        raise WindowError("`to` must be after `from`")
    if end - start > timedelta(days=max_days):
        raise WindowError(f"the window spans more than {max_days} days; ask for a shorter one")
    lo = bucket_of(start, tz)
    hi = bucket_of(end, tz)
    if hi < end.timestamp():
        hi = bucket_of(datetime.fromtimestamp(hi + HOUR_S, UTC), tz)
    return Window(lo, hi, tz.key)


def resolve(
    start: datetime | None, end: datetime | None, tz: ZoneInfo, now: datetime, max_days: int = 400
) -> Window:
    """The window a query means: both bounds given, one of them, or neither (today, local time).

    * neither: today in the store's time zone, local midnight to local midnight;
    * only `from`: up to now (at least one hour);
    * only `to`: from the start of the local day that `to` closes.
    """
    if start is None and end is None:
        return snap(local_midnight(now, tz), next_local_midnight(now, tz), tz, max_days)
    if start is not None and start.tzinfo is None:
        raise WindowError("`from` needs a time zone, e.g. 2026-03-03T14:00:00Z or +05:30")
    if end is not None and end.tzinfo is None:
        raise WindowError("`to` needs a time zone, e.g. 2026-03-03T15:00:00Z or +05:30")
    if end is None:
        assert start is not None
        end = max(now, start + timedelta(hours=1))
    if start is None:
        start = local_midnight(end - timedelta(microseconds=1), tz)
    return snap(start, end, tz, max_days)


def buckets_between(start: int, end: int, tz: ZoneInfo) -> list[int]:
    """Every bucket start in [start, end), in order (also those that hold no data)."""
    out: list[int] = []
    b = bucket_of(datetime.fromtimestamp(start, UTC), tz)
    while b < end:
        if b >= start:
            out.append(b)
        nxt = bucket_of(datetime.fromtimestamp(b + HOUR_S, UTC), tz)
        b = nxt if nxt > b else b + HOUR_S
    return out
