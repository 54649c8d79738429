"""One store actor per store: the single writer of that store's events in Redis.

Thin by design: validation lives in the event schema, idempotent storage and running counters in
`workloads.state.event_log`. The actor is a cache over Redis (`max_restarts=-1`): a restarted actor
has nothing to rebuild for the event log, because every counter is updated in the same atomic
script as the event it counts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray
import redis

from deployments.metrics import StoreMetrics
from workloads.events import VisitorEvent
from workloads.state.event_log import EventLog

log = logging.getLogger("storefleet.store")

NAMESPACE = "storefleet"


def store_actor_name(store_id: str) -> str:
    return f"store:{store_id}"


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.1, max_concurrency=8)
class StoreActor:
    def __init__(self, store_id: str, redis_url: str) -> None:
        self.store_id = store_id
        self.log = EventLog(redis.Redis.from_url(redis_url))
        self.metrics = StoreMetrics(store_id)
        log.info("store actor %s ready (%d events in Redis)", store_id, self.log.count(store_id))

    def append(self, events: list[VisitorEvent]) -> dict[str, Any]:
        """Store a batch idempotently; returns the ids accepted and the ids already stored."""
        wrong = [e.event_id for e in events if e.store_id != self.store_id]
        if wrong:
            raise ValueError(f"store actor {self.store_id} got events of another store: {wrong[:3]}")
        t0 = time.perf_counter()
        try:
            res = self.log.append(events)
        except redis.RedisError:
            self.metrics.redis_errors.inc(1, self.metrics.tags)
            raise
        self.metrics.appended(len(res.accepted), len(res.duplicates), time.perf_counter() - t0)
        return {"accepted": res.accepted, "duplicates": res.duplicates}

    def counters(self) -> dict[str, Any]:
        return self.log.counters(self.store_id)

    def ping(self) -> str:
        return self.store_id
