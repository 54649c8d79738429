"""Synthetic store days for analytics tests: realistic visits, staff, queues and POS sales, seeded."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from workloads.analytics.pos import Transaction
from workloads.config import StoreConfig
from workloads.events import EventMetadata, EventType, VisitorEvent

POLY = [[0, 0], [10, 0], [10, 10]]


def store_config(store_id: str = "S1", timezone: str = "UTC", camera: str = "C1") -> StoreConfig:
    return StoreConfig.model_validate({"id": store_id, "name": f"Store {store_id}", "timezone": timezone, "cameras": [{
        "id": camera, "source": "synthetic:empty", "zones": [
            {"id": "SKIN", "type": "PRODUCT", "sku_zone": "SKINCARE", "polygon": POLY},
            {"id": "PHONES", "type": "HIGH_VALUE", "sku_zone": "ELECTRONICS", "polygon": POLY},
            {"id": "Q", "type": "BILLING_QUEUE", "polygon": POLY},
            {"id": "TILL", "type": "CHECKOUT", "polygon": POLY},
        ]}]})


def event(store: str, visitor: str, etype: str, ts: datetime, zone: str | None = None, dwell_ms: int = 0,
          staff: bool = False, depth: int | None = None, camera: str = "C1") -> VisitorEvent:
    return VisitorEvent(event_id=uuid.uuid4(), store_id=store, camera_id=camera, visitor_id=visitor,
                        event_type=EventType(etype), timestamp=ts, zone_id=zone, dwell_ms=dwell_ms, is_staff=staff,
                        metadata=EventMetadata(queue_depth=depth))


def store_day(store: str, start: datetime, visitors: int, seed: int, camera: str = "C1"
              ) -> tuple[list[VisitorEvent], list[Transaction]]:
    """Visits spread over ~10 hours from `start`; some browse, queue, pay (a POS sale right after the queue),
    abandon or come back; two staff members walk everywhere; a few sales have nobody in billing."""
    rng = random.Random(seed)
    events: list[VisitorEvent] = []
    sales: list[Transaction] = []
    for i in range(visitors):
        v = f"{store}-v{i}"
        t = start + timedelta(seconds=rng.uniform(0, 10 * 3600))
        events.append(event(store, v, "ENTRY", t, camera=camera))
        for zone in rng.sample(["SKIN", "PHONES"], rng.randint(0, 2)):
            t += timedelta(seconds=rng.uniform(5, 60))
            dwell = int(rng.uniform(2, 300) * 1000)
            events.append(event(store, v, "ZONE_ENTER", t, zone, camera=camera))
            if rng.random() < 0.5:
                events.append(event(store, v, "ZONE_DWELL", t + timedelta(seconds=1), zone, 1000, camera=camera))
            t += timedelta(milliseconds=dwell)
            events.append(event(store, v, "ZONE_EXIT", t, zone, dwell, camera=camera))
        if rng.random() < 0.6:
            t += timedelta(seconds=rng.uniform(5, 60))
            depth = rng.randint(1, 6)
            events.append(event(store, v, "ZONE_ENTER", t, "Q", depth=depth, camera=camera))
            events.append(event(store, v, "BILLING_QUEUE_JOIN", t, "Q", depth=depth, camera=camera))
            wait = int(rng.uniform(10, 400) * 1000)
            t += timedelta(milliseconds=wait)
            events.append(event(store, v, "ZONE_EXIT", t, "Q", wait, depth=max(0, depth - 1), camera=camera))
            if rng.random() < 0.2:
                events.append(event(store, v, "BILLING_QUEUE_ABANDON", t, "Q", wait, camera=camera))
            elif rng.random() < 0.8:
                sales.append(Transaction(transaction_id=f"{store}-tx{i}",
                                         timestamp=t + timedelta(seconds=rng.uniform(0, 120)),
                                         amount=round(rng.uniform(5, 200), 2)))
        if rng.random() < 0.1:
            events.append(event(store, v, "EXIT", t + timedelta(seconds=30), camera=camera))
            events.append(event(store, v, "REENTRY", t + timedelta(seconds=300), camera=camera))
        events.append(event(store, v, "EXIT", t + timedelta(seconds=rng.uniform(30, 600)), camera=camera))
    for s in range(2):
        staff = f"{store}-staff{s}"
        for k in range(20):
            t = start + timedelta(minutes=30 * k + s)
            events.append(event(store, staff, "ENTRY", t, camera=camera) if k == 0 else
                          event(store, staff, "ZONE_ENTER", t, rng.choice(["SKIN", "Q", "TILL"]), staff=k > 3,
                                camera=camera))
    for k in range(5):  # sales with nobody in billing
        sales.append(Transaction(transaction_id=f"{store}-lonely{k}", timestamp=start - timedelta(hours=2, minutes=k)))
    rng.shuffle(events)
    return events, sales
