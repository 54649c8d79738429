"""What is wrong in a store right now: queue spikes, conversion drops, dead zones, stale feeds.

`read_signals` gathers the few aggregates the rules need (today's and the trailing days' window
totals, queue state, last visit per zone, last event per camera, camera health); `detect` is the
pure rule set over them, evaluated at a moment `at` (default: now):

* queue_spike: a billing zone's latest depth (no older than `queue_sample_max_age_s`) reaches
  max(`queue_spike_min_depth`, `queue_spike_factor` x its average hourly peak over the trailing
  `baseline_days`); since = start of the current run of samples at or above that threshold.
* conversion_drop: conversion since local midnight is below (1 - `conversion_drop_ratio`) x the
  conversion of the same hours over the trailing days, with enough visitors on both sides; no
  transactions at all today while the baseline had some is reported as a POS-feed problem.
* dead_zone: a browsing zone without a visit for `dead_zone_s` while the store had at least
  `dead_zone_min_entries` entries in that time.
* stale_feed: a camera whose health says it should run but processed no frame for `stale_feed_s`
  (or that failed); a camera without health reports (external pipeline) whose last event is
  `silent_camera_s` older than the store's latest event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import redis
from pydantic import BaseModel, Field

from workloads.analytics import queue as q
from workloads.analytics.buckets import local_midnight, snap
from workloads.analytics.settings import AnalyticsConfig
from workloads.analytics.stages import ZoneKind, kind_of
from workloads.analytics.window import WindowReader, WindowTotals
from workloads.config import StoreConfig
from workloads.events import EventType
from workloads.state import keys
from workloads.state.checkpoints import CameraHealth

AnomalyType = Literal["queue_spike", "conversion_drop", "dead_zone", "stale_feed"]
Severity = Literal["low", "medium", "high"]
_RUNNING = frozenset({"running", "reconnecting", "starting", "unknown"})


class Anomaly(BaseModel):
    type: AnomalyType
    severity: Severity = Field(description="low: worth a look; medium: act today; high: act now.")
    subject: str = Field(description="What is affected: a zone id, a camera id, or the store id.")
    since: datetime | None = Field(description="When it started (UTC), when known.")
    message: str = Field(description="What was observed, with the figures.")
    suggested_action: str
    details: dict[str, float | int | str | None] = Field(default_factory=dict)


class AnomalyReport(BaseModel):
    store_id: str
    evaluated_at: datetime = Field(description="The moment the rules were evaluated at (`at`, default now).")
    anomalies: list[Anomaly]


@dataclass
class Signals:
    """The aggregates the rules read, gathered at one moment."""

    at: datetime
    today: WindowTotals
    baseline: list[WindowTotals]  #: the same hours of each trailing day
    recent_entries: int  #: ENTRY/REENTRY events in the dead-zone period before `at` (hour resolution)
    samples: dict[str, list[tuple[int, int]]]  #: zone -> (ts_ms, depth) samples
    queue_now: q.QueueNow
    peaks: dict[str, list[int]]  #: zone -> hourly peaks over the trailing days
    zone_last: dict[str, int]  #: zone -> ms of latest visit
    camera_last: dict[str, int]  #: camera -> ms of latest event
    health: dict[str, CameraHealth] = field(default_factory=dict)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def read_signals(
    client: redis.Redis,
    store: StoreConfig,
    settings: AnalyticsConfig,
    at: datetime,
    health: dict[str, CameraHealth],
    reader: WindowReader | None = None,
) -> Signals:
    reader = reader or WindowReader(client)
    tz = ZoneInfo(store.timezone)
    midnight = local_midnight(at, tz)
    today = reader.totals(store.id, snap(midnight, max(at, midnight + timedelta(seconds=1)), tz))
    baseline = []
    base_buckets: list[int] = []
    for d in range(1, settings.baseline_days + 1):
        start = today.window.start_dt.astimezone(tz) - timedelta(days=d)  # wall-clock days back
        end = today.window.end_dt.astimezone(tz) - timedelta(days=d)
        w = snap(start, end, tz)
        baseline.append(reader.totals(store.id, w))
        full_day = snap(local_midnight(start, tz), local_midnight(start, tz) + timedelta(hours=24), tz)
        base_buckets += reader.buckets(store.id, full_day)
    recent = reader.totals(store.id, snap(at - timedelta(seconds=settings.dead_zone_s), at, tz))
    samples = q.read_samples(client, store.id, 0)
    queue_now = q.read_queue_now(client, store.id)
    zones = set(queue_now.by_zone) | set(samples)
    peaks = {z: q.read_peaks(client, store.id, base_buckets, [z]) for z in zones}
    zone_last = {_s(m): int(s) for m, s in client.zrange(keys.analytics_zone_last(store.id), 0, -1, withscores=True)}
    camera_last = {_s(m): int(s) for m, s in client.zrange(keys.analytics_camera_last(store.id), 0, -1,
                                                          withscores=True)}
    return Signals(at, today, baseline, recent.counts["entries"] + recent.counts["reentries"], samples,
                   queue_now, peaks, zone_last, camera_last, health)


def _ms(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


def queue_spikes(s: Signals, settings: AnalyticsConfig) -> list[Anomaly]:
    out = []
    at_ms = int(s.at.timestamp() * 1000)
    max_age_ms = settings.queue_sample_max_age_s * 1000
    zones = sorted(set(s.samples) | set(s.queue_now.by_zone))
    for zone in zones:
        history = [(ts, d) for ts, d in s.samples.get(zone, []) if ts <= at_ms]
        now = s.queue_now.by_zone.get(zone)
        if now is not None and now[0] <= at_ms and (not history or now[0] >= history[-1][0]):
            history.append(now)
        if not history or at_ms - history[-1][0] > max_age_ms:
            continue
        depth = history[-1][1]
        peaks = s.peaks.get(zone, [])
        typical = sum(peaks) / len(peaks) if peaks else 0.0
        threshold = max(settings.queue_spike_min_depth, math.ceil(settings.queue_spike_factor * typical))
        if depth < threshold:
            continue
        since = history[-1][0]
        for ts, d in reversed(history):
            if d < threshold:
                break
            since = ts
        out.append(Anomaly(
            type="queue_spike", severity="high" if depth >= 2 * threshold else "medium", subject=zone,
            since=_ms(since),
            message=f"{depth} people queue at {zone} (spike threshold {threshold}; typical hourly peak "
                    f"{typical:.1f} over the last {settings.baseline_days} days)",
            suggested_action=f"Open another till or send staff to {zone}.",
            details={"queue_depth": depth, "threshold": threshold, "typical_peak": round(typical, 2)},
        ))
    return out


def conversion_drop(s: Signals, settings: AnalyticsConfig, store_id: str) -> list[Anomaly]:
    visitors, buyers = s.today.unique_visitors, s.today.purchasers
    base_visitors = sum(b.unique_visitors for b in s.baseline)
    base_buyers = sum(b.purchasers for b in s.baseline)
    base_tx = sum(b.transactions for b in s.baseline)
    days = sum(1 for b in s.baseline if b.unique_visitors) or 1
    if visitors < settings.conversion_min_visitors or base_visitors < settings.conversion_min_visitors * days:
        return []
    if not base_buyers:
        return []
    base_rate, rate = base_buyers / base_visitors, buyers / visitors
    if rate >= (1 - settings.conversion_drop_ratio) * base_rate:
        return []
    opened = [b for b, c in sorted(s.today.per_bucket.items()) if c["entries"] + c["reentries"]]
    since = datetime.fromtimestamp(opened[0], UTC) if opened else s.today.window.start_dt
    details: dict[str, float | int | str | None] = {
        "conversion_rate": round(rate, 4), "baseline_rate": round(base_rate, 4), "visitors": visitors,
        "purchasers": buyers, "transactions": s.today.transactions,
    }
    if s.today.transactions == 0 and base_tx:
        return [Anomaly(
            type="conversion_drop", severity="high", subject=store_id, since=since,
            message=f"No POS transactions today for {visitors} visitors (baseline conversion {base_rate:.0%}): "
                    "the POS feed looks stopped.",
            suggested_action="Check the POS export / import job for this store.", details=details,
        )]
    drop = 1 - rate / base_rate
    severe = drop >= min(0.9, 2 * settings.conversion_drop_ratio)
    return [Anomaly(
        type="conversion_drop", severity="high" if severe else "medium", subject=store_id, since=since,
        message=f"Conversion today {rate:.0%} vs {base_rate:.0%} over the same hours of the last "
                f"{settings.baseline_days} days ({drop:.0%} lower).",
        suggested_action="Check tills and queue times, stock of best sellers and staffing on the floor.",
        details=details,
    )]


def dead_zones(s: Signals, settings: AnalyticsConfig, store: StoreConfig) -> list[Anomaly]:
    if s.recent_entries < settings.dead_zone_min_entries:
        return []
    at_ms = int(s.at.timestamp() * 1000)
    limit_ms = settings.dead_zone_s * 1000
    configured = {z.id: z for c in store.cameras for z in c.zones}
    browse = [z for z, cfg in configured.items() if kind_of(cfg.type, EventType.ZONE_ENTER) is ZoneKind.BROWSE]
    browse += sorted(z for z in s.zone_last if z not in configured)
    out = []
    for zone in browse:
        last = s.zone_last.get(zone)
        idle_ms = None if last is None else at_ms - last
        if idle_ms is not None and idle_ms < limit_ms:
            continue
        long_idle = idle_ms is None or idle_ms >= 3 * limit_ms
        idle = "no visit recorded" if idle_ms is None else f"no visit for {idle_ms / 60000:.0f} min"
        out.append(Anomaly(
            type="dead_zone", severity="medium" if long_idle else "low", subject=zone,
            since=_ms(last) if last is not None else None,
            message=f"Zone {zone}: {idle} while {s.recent_entries} visitors entered in the last "
                    f"{settings.dead_zone_s / 60:.0f} min.",
            suggested_action=f"Check {zone}: blocked aisle, empty shelves, lighting, or a camera that no "
                             "longer sees it; consider moving a promotion there.",
            details={"idle_s": None if idle_ms is None else round(idle_ms / 1000), "recent_entries": s.recent_entries},
        ))
    return out


def stale_feeds(s: Signals, settings: AnalyticsConfig, store: StoreConfig) -> list[Anomaly]:
    out = []
    at_s = s.at.timestamp()
    for cam in sorted(set(s.health) | {c.id for c in store.cameras} | set(s.camera_last)):
        h = s.health.get(cam)
        if h is not None and h.state == "failed":
            out.append(Anomaly(
                type="stale_feed", severity="high", subject=cam, since=h.updated_at,
                message=f"Camera {cam} failed: {h.error or 'no reason given'}.",
                suggested_action="Check the camera's power, network and stream URL, then restart its actor.",
                details={"state": h.state},
            ))
            continue
        wall = h.extra.get("last_frame_wall") if h is not None else None
        if h is not None and h.state in _RUNNING and wall is not None:
            age = at_s - float(wall)
            if age > settings.stale_feed_s:
                out.append(Anomaly(
                    type="stale_feed", severity="high" if age > 10 * settings.stale_feed_s else "medium",
                    subject=cam, since=datetime.fromtimestamp(float(wall), UTC),
                    message=f"Camera {cam} ({h.state}) processed no frame for {age:.0f} s.",
                    suggested_action="Check the camera's stream and network; the actor reconnects on its own, "
                                     "restart it if this persists.",
                    details={"staleness_s": round(age, 1), "state": h.state},
                ))
            continue
        if h is not None or cam not in s.camera_last or not s.camera_last:
            continue
        newest = max(s.camera_last.values())
        gap_ms = newest - s.camera_last[cam]
        if gap_ms > settings.silent_camera_s * 1000:
            out.append(Anomaly(
                type="stale_feed", severity="medium", subject=cam, since=_ms(s.camera_last[cam]),
                message=f"Camera {cam} sent no event for {gap_ms / 60000:.0f} min while other cameras of the "
                        "store did.",
                suggested_action="Check the pipeline that feeds this camera's events.",
                details={"silent_s": round(gap_ms / 1000)},
            ))
    return out


def detect(s: Signals, settings: AnalyticsConfig, store: StoreConfig) -> AnomalyReport:
    found = (queue_spikes(s, settings) + conversion_drop(s, settings, store.id)
             + dead_zones(s, settings, store) + stale_feeds(s, settings, store))
    return AnomalyReport(store_id=store.id, evaluated_at=s.at, anomalies=found)

