"""Derive a store's analytics aggregates from its event stream, exactly once.

The aggregator tails `sf:{S}:events` with a `StreamConsumer` named "analytics". For each batch it
computes a `Delta` (pure: `derive`) and applies it in one MULTI that also moves the consumer's
cursor, under WATCH of that cursor:
    * a crash before EXEC applies nothing, and the batch is read again after a restart;
    * a second aggregator of the same store (an actor restarted while the old one still ran) makes
      one of the two EXECs fail on the watched cursor, so no batch is ever applied twice;
    * a lost EXEC reply surfaces as a WatchError (redis-py never blindly retries a watched
      transaction), and re-reading from the committed cursor is right whichever way it went.
Counters (HINCRBY) are therefore exact; sets, ZADD GT and the presences are idempotent anyway.

Events are bucketed by the local hour of their *event time*, so late or replayed events land in
the hour they happened in. Staff events only feed camera liveness and queue depth; a visitor
flagged as staff once is removed from visitor counts at query time (see `window`).

Example:
    >>> agg = Aggregator(client, store_cfg, AnalyticsConfig())  # doctest: +SKIP
    >>> while agg.step(): pass  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import redis

from workloads.analytics.buckets import bucket_of
from workloads.analytics.settings import AnalyticsConfig
from workloads.analytics.stages import (
    Stage,
    ZoneKind,
    billing_presence,
    kind_of,
    stage_of,
    zone_types,
)
from workloads.config import StoreConfig, ZoneType
from workloads.events import EventType, VisitorEvent
from workloads.state import keys
from workloads.state.stream_consumer import StreamConsumer

CONSUMER = "analytics"
#: Queue-depth samples older than this behind the newest one are trimmed (they only date spikes).
SAMPLE_HORIZON_MS = 6 * 3600 * 1000
#: When a visitor is first flagged as staff, the sales of this long before are matched again (a track
#: is flagged during its visit, so its earlier billing presences lie within one shift of the flag).
STAFF_LOOKBACK_MS = 12 * 3600 * 1000


def zone_field(zone_id: str, metric: str) -> str:
    """Counter field of a per-zone figure; parse with `split_zone_field` (zone ids may hold ':')."""
    return f"zone:{zone_id}:{metric}"


def split_zone_field(name: str) -> tuple[str, str] | None:
    if not name.startswith("zone:"):
        return None
    zone_id, _, metric = name[5:].rpartition(":")
    return zone_id, metric


def presence_member(visitor_id: str, start_ms: int, end_ms: int, till: bool = False) -> str:
    """A presence as stored in the POS presence set (`pos.Presence` as JSON; the till flag only when set)."""
    row: list[object] = [visitor_id, start_ms, end_ms, True] if till else [visitor_id, start_ms, end_ms]
    return json.dumps(row, separators=(",", ":"))


@dataclass
class Delta:
    """Everything one batch of events changes in the aggregates."""

    counts: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    visitors: dict[tuple[int, Stage], set[str]] = field(default_factory=lambda: defaultdict(set))
    staff: dict[str, int] = field(default_factory=dict)  #: staff visitor -> time of their first staff event
    zone_last: dict[str, int] = field(default_factory=dict)
    camera_last: dict[str, int] = field(default_factory=dict)
    queue_latest: dict[str, tuple[int, int]] = field(default_factory=dict)  #: zone -> (ts_ms, depth)
    queue_samples: dict[str, int] = field(default_factory=dict)  #: member -> ts_ms
    queue_peaks: dict[str, int] = field(default_factory=dict)  #: "bucket|zone" -> depth
    presences: dict[str, int] = field(default_factory=dict)  #: member -> end_ms
    dirty: tuple[int, int] | None = None  #: ms range of transactions to match again
    newest_ms: int | None = None

    @property
    def buckets(self) -> set[int]:
        return set(self.counts)

    def widen(self, lo: int, hi: int) -> None:
        """Add [lo, hi] (ms) to the range of transactions to match again."""
        self.dirty = (lo, hi) if self.dirty is None else (min(self.dirty[0], lo), max(self.dirty[1], hi))

    def new_staff(self, known: set[str], window_ms: int) -> None:
        """Visitors flagged as staff for the first time free the sales they were matched to: match those again."""
        for visitor, ts in self.staff.items():
            if visitor not in known:
                self.widen(ts - STAFF_LOOKBACK_MS, ts + window_ms)


def _raise(d: dict[str, int], k: str, v: int) -> None:
    if v > d.get(k, v - 1):
        d[k] = v


def derive(events: list[VisitorEvent], store: StoreConfig, settings: AnalyticsConfig) -> Delta:
    """The aggregate changes a batch of a store's events makes (pure; see the module docstring)."""
    tz = ZoneInfo(store.timezone)
    types = zone_types(store)
    window_ms = int(settings.purchase_window_s * 1000)
    d = Delta()
    for e in events:
        ts = e.ts_ms
        b = bucket_of(e.timestamp, tz)
        c = d.counts[b]
        c["events"] += 1
        _raise(d.camera_last, e.camera_id, ts)
        d.newest_ms = ts if d.newest_ms is None else max(d.newest_ms, ts)
        kind = kind_of(types.get(e.zone_id), e.event_type) if e.zone_id is not None else None
        if e.zone_id is not None and e.metadata.queue_depth is not None and kind is ZoneKind.BILLING:
            depth = e.metadata.queue_depth
            if e.zone_id not in d.queue_latest or ts >= d.queue_latest[e.zone_id][0]:
                d.queue_latest[e.zone_id] = (ts, depth)
            d.queue_samples[f"{e.zone_id}|{ts}|{depth}|{e.event_id}"] = ts
            _raise(d.queue_peaks, f"{b}|{e.zone_id}", depth)
        if e.is_staff:
            c["staff_events"] += 1
            d.staff[e.visitor_id] = min(ts, d.staff.get(e.visitor_id, ts))
            continue
        stage = stage_of(e, kind)
        if stage is not None:
            d.visitors[(b, stage)].add(e.visitor_id)
        match e.event_type:
            case EventType.ENTRY:
                c["entries"] += 1
            case EventType.REENTRY:
                c["reentries"] += 1
            case EventType.EXIT:
                c["exits"] += 1
            case EventType.BILLING_QUEUE_JOIN:
                c["queue_joins"] += 1
            case EventType.BILLING_QUEUE_ABANDON:
                c["queue_abandons"] += 1
            case EventType.ZONE_ENTER:
                assert e.zone_id is not None
                c[zone_field(e.zone_id, "visits")] += 1
            case EventType.ZONE_EXIT:
                assert e.zone_id is not None
                c[zone_field(e.zone_id, "dwell_ms")] += e.dwell_ms
                c[zone_field(e.zone_id, "dwell_n")] += 1
                if kind is ZoneKind.BROWSE:
                    c["dwell_ms"] += e.dwell_ms
                    c["dwell_n"] += 1
        if e.zone_id is not None and e.event_type in (EventType.ZONE_ENTER, EventType.ZONE_DWELL, EventType.ZONE_EXIT):
            _raise(d.zone_last, e.zone_id, ts)
        presence = billing_presence(e, kind)
        if presence is not None:
            start, end = presence
            till = types.get(e.zone_id or "") is ZoneType.CHECKOUT
            d.presences[presence_member(e.visitor_id, start, end, till)] = end
            d.widen(start, end + window_ms)  # the transactions this presence can be matched to
    return d


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


def apply(pipe: redis.client.Pipeline, store_id: str, d: Delta, queue_now: dict[str, tuple[int, int]]) -> None:
    """Queue the writes of `d` on a MULTI pipeline. `queue_now` is the stored latest depth per zone."""
    if d.counts:
        pipe.zadd(keys.analytics_buckets(store_id), {str(b): b for b in d.counts})
    for b, counts in d.counts.items():
        key = keys.analytics_counts(store_id, b)
        for name, n in counts.items():
            if n:
                pipe.hincrby(key, name, n)
    for (b, stage), visitors in d.visitors.items():
        pipe.sadd(keys.analytics_visitors(store_id, b, stage.value), *visitors)
    if d.staff:
        pipe.sadd(keys.analytics_staff(store_id), *d.staff)
    if d.zone_last:
        pipe.zadd(keys.analytics_zone_last(store_id), d.zone_last, gt=True)
    if d.camera_last:
        pipe.zadd(keys.analytics_camera_last(store_id), d.camera_last, gt=True)
    newer = {z: f"{ts}:{depth}" for z, (ts, depth) in d.queue_latest.items()
             if z not in queue_now or ts >= queue_now[z][0]}
    if newer:
        pipe.hset(keys.analytics_queue_now(store_id), mapping=newer)  # type: ignore[arg-type]
    if d.queue_samples:
        samples = keys.analytics_queue_samples(store_id)
        pipe.zadd(samples, d.queue_samples)  # type: ignore[arg-type]
        pipe.zremrangebyscore(samples, "-inf", f"({max(d.queue_samples.values()) - SAMPLE_HORIZON_MS}")
    if d.queue_peaks:
        pipe.zadd(keys.analytics_queue_peaks(store_id), d.queue_peaks, gt=True)  # type: ignore[arg-type]
    if d.presences:
        pipe.zadd(keys.pos_billing_presence(store_id), d.presences)  # type: ignore[arg-type]
    if d.dirty is not None:
        pipe.zadd(keys.pos_dirty(store_id), {f"{d.dirty[0]}:{d.dirty[1]}": d.dirty[0]})


def parse_queue_now(raw: dict[bytes | str, bytes | str]) -> dict[str, tuple[int, int]]:
    out = {}
    for k, v in raw.items():
        ts, _, depth = str(_s(v)).partition(":")
        out[str(_s(k))] = (int(ts), int(depth))
    return out


class Aggregator:
    """Applies a store's new events to its aggregates, one batch per `step`.

    Args:
        client: A `redis.Redis` (bytes or str responses).
        store: The store's config (time zone for buckets, zone types for the funnel).
        settings: Analytics settings (the purchase window sizes the POS re-match ranges).
    """

    def __init__(self, client: redis.Redis, store: StoreConfig, settings: AnalyticsConfig) -> None:
        self.client, self.store, self.settings = client, store, settings
        self.store_id = store.id
        self.consumer = StreamConsumer(client, store.id, CONSUMER)

    def step(self, count: int = 500) -> int:
        """Apply the next batch (up to `count` events); returns how many events were applied (0: none new).

        When another aggregator of the store commits first, the batch is read again after its cursor.
        """
        while True:
            applied = self._try_step(count)
            if applied is not None:
                return applied

    def _try_step(self, count: int) -> int | None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.watch(self.consumer.cursor_key)
            # While watching, the pipeline runs commands at once: read cursor, batch and state on it.
            batch = StreamConsumer(pipe, self.store_id, CONSUMER).read(count=count)  # type: ignore[arg-type]
            if not batch:
                return 0
            delta = derive(batch.events, self.store, self.settings)
            if delta.staff:
                staff = list(delta.staff)
                flags = pipe.smismember(keys.analytics_staff(self.store_id), staff)
                delta.new_staff({v for v, f in zip(staff, flags, strict=True) if f},
                                int(self.settings.purchase_window_s * 1000))
            zones = list(delta.queue_latest)
            current = {}
            if zones:
                raw = dict(zip(zones, pipe.hmget(keys.analytics_queue_now(self.store_id), zones), strict=True))
                current = parse_queue_now({k: v for k, v in raw.items() if v is not None})
            pipe.multi()
            apply(pipe, self.store_id, delta, current)
            self.consumer.commit(pipe, batch)
            try:
                pipe.execute()
            except redis.WatchError:
                return None
        return len(batch.events)

    def lag(self, cap: int = 100_000) -> int:
        """Events in the stream not applied yet (counted up to `cap`)."""
        pos = self.consumer.position()
        start = "-" if pos == "0-0" else f"({pos}"
        return len(self.client.xrange(self.consumer.stream, start, "+", count=cap))

    def wait_for_events(self, block_ms: int) -> None:
        """Block until the stream has an entry after the cursor, or `block_ms` passed."""
        self.client.xread({self.consumer.stream: self.consumer.position()}, count=1, block=block_ms)
