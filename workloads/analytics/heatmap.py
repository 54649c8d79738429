"""Zone heatmap over a window: visit frequency, average dwell and a 0-100 score per zone.

`frequency` counts ZONE_ENTER events of non-staff visitors, `avg_dwell_ms` averages the dwell of
finished visits (ZONE_EXIT), and `normalized` is 100 x frequency / the busiest zone's frequency,
so the busiest zone scores 100 and a zone nobody visited scores 0. Every configured zone appears,
plus zones only external pipelines have reported. With `bucket=hour` (or `day`, in the store's local
days) each zone also carries its series.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from workloads.analytics.aggregator import split_zone_field
from workloads.analytics.buckets import local_midnight
from workloads.analytics.window import WindowTotals
from workloads.config import StoreConfig

BucketSize = Literal["hour", "day"]


class HeatBucket(BaseModel):
    start: datetime = Field(description="Start of the bucket (UTC); buckets without visits are left out.")
    frequency: int
    avg_dwell_ms: int


class ZoneHeat(BaseModel):
    frequency: int = Field(description="Visits (ZONE_ENTER of non-staff visitors) in the window.")
    avg_dwell_ms: int = Field(description="Mean dwell of finished visits in the window.")
    normalized: int = Field(ge=0, le=100, description="100 x frequency / the busiest zone's frequency.")
    zone_type: str | None = Field(None, description="Type from the fleet config; null for zones it does not list.")
    sku_zone: str | None = Field(None, description="Product category of the zone, when configured.")
    buckets: list[HeatBucket] | None = Field(None, description="Per-bucket series, when `bucket` was asked for.")


def _zone_figures(counts: Counter[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, n in counts.items():
        parsed = split_zone_field(name)
        if parsed is not None:
            zone, metric = parsed
            out.setdefault(zone, {})[metric] = n
    return out


def _avg(f: dict[str, int]) -> int:
    return round(f.get("dwell_ms", 0) / f["dwell_n"]) if f.get("dwell_n") else 0


def compute(t: WindowTotals, store: StoreConfig, bucket: BucketSize | None = None) -> dict[str, ZoneHeat]:
    configured = {z.id: z for c in store.cameras for z in c.zones}
    figures = _zone_figures(t.counts)
    zone_ids = list(configured) + sorted(set(figures) - set(configured))
    top = max((f.get("visits", 0) for f in figures.values()), default=0)
    series: dict[str, list[HeatBucket]] = {z: [] for z in zone_ids}
    if bucket is not None:
        tz = ZoneInfo(store.timezone)
        grouped: dict[int, Counter[str]] = {}
        for b, counts in sorted(t.per_bucket.items()):
            key = b if bucket == "hour" else int(local_midnight(datetime.fromtimestamp(b, UTC), tz).timestamp())
            grouped.setdefault(key, Counter()).update(counts)
        for start, counts in grouped.items():
            for zone, f in _zone_figures(counts).items():
                if f.get("visits") or f.get("dwell_n"):
                    series[zone].append(HeatBucket(start=datetime.fromtimestamp(start, UTC),
                                                   frequency=f.get("visits", 0), avg_dwell_ms=_avg(f)))
    out = {}
    for z in zone_ids:
        f = figures.get(z, {})
        visits = f.get("visits", 0)
        cfg = configured.get(z)
        out[z] = ZoneHeat(
            frequency=visits, avg_dwell_ms=_avg(f), normalized=round(100 * visits / top) if top else 0,
            zone_type=cfg.type.value if cfg else None, sku_zone=cfg.sku_zone if cfg else None,
            buckets=series[z] if bucket is not None else None,
        )
    return out
