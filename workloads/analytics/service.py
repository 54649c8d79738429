"""The store side of analytics: one object per store that owns every analytics write.

The store actor holds one `StoreAnalytics`: a thread calls `catch_up` (tail the event stream, apply
aggregates, re-match POS), and POS batches call `record_transactions`. One lock serialises the two,
so a transaction and a billing presence committed at the same moment are never matched from two
half views; across processes the aggregator's WATCH keeps a batch from being applied twice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import redis

from workloads.analytics.aggregator import Aggregator
from workloads.analytics.pos import PosLedger, Recorded, Transaction
from workloads.analytics.settings import AnalyticsConfig
from workloads.config import StoreConfig


class StoreAnalytics:
    def __init__(self, client: redis.Redis, store: StoreConfig, settings: AnalyticsConfig) -> None:
        self.store, self.settings = store, settings
        self.aggregator = Aggregator(client, store, settings)
        self.ledger = PosLedger(client, store.id, ZoneInfo(store.timezone), settings.purchase_window_s)
        self._lock = threading.Lock()

    def catch_up(self, batch: int = 500, max_events: int | None = None) -> int:
        """Apply every event not applied yet (or at least `max_events`); returns how many were applied."""
        done = 0
        while max_events is None or done < max_events:
            with self._lock:
                n = self.aggregator.step(batch)
                self.ledger.rematch_dirty()
            if n == 0:
                break
            done += n
        return done

    def record_transactions(self, transactions: Sequence[Transaction]) -> list[Recorded]:
        with self._lock:
            return self.ledger.record(transactions)

    def lag(self) -> int:
        return self.aggregator.lag()
