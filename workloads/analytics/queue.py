"""Billing queues: the latest depth of each queue, recent depth samples and hourly peaks.

The latest depth is the `metadata.queue_depth` of the newest (by event time) billing-zone event of
each zone; the store's current depth is the sum over its billing zones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from workloads.analytics.aggregator import parse_queue_now
from workloads.state import keys


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass(frozen=True)
class QueueNow:
    """Latest reported depth per billing zone."""

    by_zone: dict[str, tuple[int, int]]  #: zone -> (ts_ms, depth)

    @property
    def depth(self) -> int:
        return sum(d for _, d in self.by_zone.values())

    @property
    def as_of(self) -> datetime | None:
        if not self.by_zone:
            return None
        return datetime.fromtimestamp(max(ts for ts, _ in self.by_zone.values()) / 1000, UTC)


def read_queue_now(client: redis.Redis, store_id: str) -> QueueNow:
    return QueueNow(parse_queue_now(client.hgetall(keys.analytics_queue_now(store_id))))


def read_samples(client: redis.Redis, store_id: str, since_ms: int) -> dict[str, list[tuple[int, int]]]:
    """Queue-depth samples at or after `since_ms`, per zone, oldest first."""
    out: dict[str, list[tuple[int, int]]] = {}
    for m in client.zrangebyscore(keys.analytics_queue_samples(store_id), since_ms, "+inf"):
        zone, ts, depth, _ = _s(m).rsplit("|", 3)
        out.setdefault(zone, []).append((int(ts), int(depth)))
    for samples in out.values():
        samples.sort()
    return out


def read_peaks(client: redis.Redis, store_id: str, buckets: Iterable[int], zones: Iterable[str]) -> list[int]:
    """Hourly peak depth of each (bucket, zone) pair that had queue events, in no particular order."""
    members = [f"{b}|{z}" for b in buckets for z in zones]
    if not members:
        return []
    scores = client.zmscore(keys.analytics_queue_peaks(store_id), members)
    return [int(s) for s in scores if s is not None]
