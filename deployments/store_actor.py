"""One store actor per store: the single writer of that store's events and analytics in Redis.

Thin by design: validation lives in the event schema, idempotent storage and running counters in
`workloads.state.event_log`, aggregates and POS matching in `workloads.analytics`. The actor is a
cache over Redis (`max_restarts=-1`): a restarted actor has nothing to rebuild for the event log,
because every counter is updated in the same atomic script as the event it counts, and its
analytics thread resumes from the cursor committed with the last applied batch.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import ray
import redis

from deployments.metrics import IngestMetrics, StoreAnalyticsMetrics, StoreMetrics
from workloads.analytics import buckets, metrics, queue
from workloads.analytics.pos import Transaction
from workloads.analytics.service import StoreAnalytics
from workloads.analytics.settings import AnalyticsConfig
from workloads.analytics.window import WindowReader
from workloads.config import StoreConfig
from workloads.events import VisitorEvent
from workloads.state.event_log import EncodedBatch, EventLog

log = logging.getLogger("storefleet.store")

NAMESPACE = "storefleet"
#: How often the conversion and queue-depth gauges are refreshed.
PUBLISH_EVERY_S = 15.0


def store_actor_name(store_id: str) -> str:
    return f"store:{store_id}"


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.1, max_concurrency=8)
class StoreActor:
    """Args:
    store_id: The store.
    redis_url: Redis holding the store's state.
    store: The store's config (`StoreConfig` as a dict). Without it the actor only stores events:
        analytics need the store's time zone and zone types.
    analytics: `AnalyticsConfig` as a dict (default settings when None).
    """

    def __init__(
        self, store_id: str, redis_url: str, store: dict[str, Any] | None = None,
        analytics: dict[str, Any] | None = None,
    ) -> None:
        self.store_id = store_id
        self.client = redis.Redis.from_url(redis_url)
        self.log = EventLog(self.client)
        self.metrics = StoreMetrics(store_id)
        IngestMetrics.export_zero(store_id)
        self.analytics: StoreAnalytics | None = None
        self._stop = threading.Event()
        if store is not None:
            cfg = StoreConfig.model_validate(store)
            if cfg.id != store_id:
                raise ValueError(f"store actor {store_id} got the config of store {cfg.id}")
            self.analytics = StoreAnalytics(self.client, cfg, AnalyticsConfig.model_validate(analytics or {}))
            self.gauges = StoreAnalyticsMetrics(store_id)
            self.reader = WindowReader(self.client)
            threading.Thread(target=self._aggregate, name=f"analytics-{store_id}", daemon=True).start()
        else:
            log.warning("store actor %s has no store config: analytics are off", store_id)
        log.info("store actor %s ready (%d events in Redis)", store_id, self.log.count(store_id))

    def append(self, events: list[VisitorEvent] | EncodedBatch) -> dict[str, Any]:
        """Store a batch idempotently; returns the ids accepted and the ids already stored.

        Cameras send `VisitorEvent`s; the HTTP ingest sends an `EncodedBatch` its API replica validated
        and encoded, which is trusted as is (it is ~50x cheaper to send than pydantic models, and the
        rows need neither a second validation nor a second encoding here).
        """
        if isinstance(events, EncodedBatch):
            if events.store_id != self.store_id:
                raise ValueError(f"store actor {self.store_id} got a batch of store {events.store_id}")
        elif wrong := [e.event_id for e in events if e.store_id != self.store_id]:
            raise ValueError(f"store actor {self.store_id} got events of another store: {wrong[:3]}")
        t0 = time.perf_counter()
        try:
            res = self.log.append(events)
        except redis.RedisError:
            self.metrics.redis_errors.inc(1, self.metrics.tags)
            raise
        self.metrics.appended(len(res.accepted), len(res.duplicates), time.perf_counter() - t0)
        return {"accepted": res.accepted, "duplicates": res.duplicates}

    def record_transactions(self, transactions: list[Transaction]) -> list[dict[str, Any]]:
        """Store POS transactions idempotently and match them to visitors; one result per transaction."""
        return [{"transaction_id": r.transaction_id, "status": r.status, "visitor_id": r.visitor_id}
                for r in self._analytics().record_transactions(transactions)]

    def analytics_catch_up(self) -> int:
        """Apply every stored event to the aggregates now (the thread does it anyway); returns how many."""
        return self._analytics().catch_up()

    def analytics_lag(self) -> int:
        """Events stored but not yet in the aggregates."""
        return self._analytics().lag()

    def counters(self) -> dict[str, Any]:
        return self.log.counters(self.store_id)

    def ping(self) -> str:
        return self.store_id

    def _analytics(self) -> StoreAnalytics:
        if self.analytics is None:
            raise RuntimeError(f"store actor {self.store_id} was started without its store config")
        return self.analytics

    def _aggregate(self) -> None:
        assert self.analytics is not None
        last_publish = 0.0
        while not self._stop.is_set():
            try:
                applied = self.analytics.catch_up()
                if time.monotonic() - last_publish >= PUBLISH_EVERY_S:
                    self._publish()
                    last_publish = time.monotonic()
                if not applied:
                    self.analytics.aggregator.wait_for_events(1000)
            except redis.RedisError as e:
                self.metrics.redis_errors.inc(1, self.metrics.tags)
                log.warning("analytics of store %s: Redis error, retrying in 1 s: %s", self.store_id, e)
                self._stop.wait(1.0)

    def _publish(self) -> None:
        """Today's conversion and the current queue depth as Prometheus gauges."""
        assert self.analytics is not None
        tz = ZoneInfo(self.analytics.store.timezone)
        window = buckets.resolve(None, None, tz, datetime.now(UTC))
        report = metrics.compute(self.reader.totals(self.store_id, window),
                                 queue.read_queue_now(self.client, self.store_id))
        self.gauges.publish(conversion=report.conversion_rate, queue_depth=report.queue_depth_current)
