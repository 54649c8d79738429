"""Reorder math on hand-computed cases, stockout risk, shelf-vs-backroom decisions, and the 48-hour
stockout alert end to end: files -> lake -> batch forecast -> decisions -> Redis alert stream."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from workloads.config import FleetConfig
from workloads.inventory import batch
from workloads.inventory.alerts import AlertKind, InventoryAlert, InventoryAlertLog
from workloads.inventory.decisions import DecisionSettings, ItemInputs, decide
from workloads.inventory.gap_state import GapObservation, ShelfGapState
from workloads.inventory.reorder import demand_over, reorder, stockout_risk
from workloads.inventory.service import InventoryService
from workloads.inventory.tables import Dataset
from workloads.lp.store import LpStore
from workloads.state import keys

Z95 = 1.6448536269514722


@pytest.mark.parametrize(
    ("kwargs", "safety", "up_to", "units", "packs"),
    [
        # P = 2 + 1 days; SS = z * 3 * sqrt(3) = 8.547; S = 30 + SS = 38.547; 18.547 short -> 4 packs of 6
        ({"on_hand": 20, "daily_forecast": [10.0] * 7, "sigma": 3, "lead_time_days": 2, "pack_size": 6},
         Z95 * 3 * math.sqrt(3), 30 + Z95 * 3 * math.sqrt(3), 24, 4),
        ({"on_hand": 50, "daily_forecast": [10.0] * 7, "sigma": 3, "lead_time_days": 2, "pack_size": 6},
         Z95 * 3 * math.sqrt(3), 30 + Z95 * 3 * math.sqrt(3), 0, 0),
        ({"on_hand": 2, "daily_forecast": [5.0], "sigma": 0, "lead_time_days": 0}, 0.0, 5.0, 3, 3),
        # short by 6, but the minimum order is 12: two packs of 6
        ({"on_hand": 4, "daily_forecast": [5.0] * 3, "sigma": 0, "lead_time_days": 1, "pack_size": 6,
          "min_order_units": 12}, 0.0, 10.0, 12, 2),
        ({"on_hand": 10, "on_order": 20, "daily_forecast": [10.0] * 7, "sigma": 0, "lead_time_days": 2},
         0.0, 30.0, 0, 0),
        # from mid-day: 0.5 x 10 + 20 + 0.5 x 20 = 35 over two days; packs of 10
        ({"on_hand": 0, "daily_forecast": [10.0, 20.0, 20.0], "sigma": 0, "lead_time_days": 1, "pack_size": 10,
          "start_fraction": 0.5}, 0.0, 35.0, 40, 4),
        # service level 0.5: z = 0, no safety stock
        ({"on_hand": 0, "daily_forecast": [4.0] * 7, "sigma": 9, "lead_time_days": 1, "service_level": 0.5},
         0.0, 8.0, 8, 8),
    ],
)
def test_reorder_hand_computed(kwargs, safety, up_to, units, packs):
    args = {"on_order": 0, "review_period_days": 1.0, "service_level": 0.95, **kwargs}
    plan = reorder(**args)
    assert plan.safety_stock == pytest.approx(safety, abs=1e-6)
    assert plan.order_up_to == pytest.approx(up_to, abs=1e-6)
    assert (plan.order_units, plan.packs) == (units, packs)


@pytest.mark.parametrize(
    ("daily", "days", "start", "expected"),
    [([10, 20], 1, 0, 10), ([10, 20], 1.5, 0, 20), ([10, 20], 1, 0.5, 15), ([10, 20], 4, 0, 70), ([], 3, 0, 0)],
)
def test_demand_over(daily, days, start, expected):
    assert demand_over(daily, days, start) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("on_hand", "sigma", "deliveries", "probability", "hours"),
    [
        (10, 0, [], 1.0, 24.0),  # 10 left, 10 a day: empty after one day
        (30, 0, [], 0.0, None),
        (10, 0, [(12.0, 50)], 0.0, None),  # the delivery comes before the shelf runs dry
        (3, 0, [(12.0, 50)], 1.0, 7.2),  # ... but not this time: 3 units last 7.2 h
        (20, 5, [], 0.5, 48.0),  # expected demand equals the stock: a coin flip
    ],
)
def test_stockout_risk(on_hand, sigma, deliveries, probability, hours):
    risk = stockout_risk(on_hand, [10.0] * 3, sigma, 48.0, deliveries)
    assert risk.probability == pytest.approx(probability, abs=1e-6)
    assert (risk.expected_at_h is None) == (hours is None)
    if hours is not None:
        assert risk.expected_at_h == pytest.approx(hours)


NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _gap(ratio: float, at: datetime) -> GapObservation:
    return GapObservation(store_id="S1", camera_id="C", segment_id="A1", sku="A", facings=4, empty_facings=[],
                          gap_ratio=ratio, bare_fraction=ratio, observed_at=at)


@pytest.mark.parametrize(
    ("shelf", "backroom", "gap", "capacity", "actions", "replenish"),
    [
        (5, 8, _gap(0.75, NOW), 12, [AlertKind.REPLENISH_FROM_BACKROOM], 8),  # camera (newer) sees the gap
        (5, 30, _gap(0.75, NOW), 12, [AlertKind.REPLENISH_FROM_BACKROOM], 9),  # ceil(12 x 0.75)
        (0, 8, _gap(0.2, NOW), 12, [], 0),  # the camera is newer than the count and sees a full shelf
        (0, 5, _gap(0.9, NOW - timedelta(days=1)), None, [AlertKind.REPLENISH_FROM_BACKROOM], 5),  # stale camera
        (0, 0, None, None, [AlertKind.SHELF_EMPTY_NO_STOCK], 0),
        (3, 0, None, None, [], 0),
    ],
)
def test_shelf_vs_backroom(shelf, backroom, gap, capacity, actions, replenish):
    item = ItemInputs(sku="A", on_hand=shelf + backroom, shelf_units=shelf, backroom_units=backroom,
                      snapshot_at=NOW - timedelta(hours=1), gap=gap, shelf_capacity=capacity)
    d = decide(item, NOW, DecisionSettings())
    assert d.actions == actions and d.replenish_units == replenish


def test_alerts_are_stored_once_per_kind_sku_and_day(redis_client):
    log = InventoryAlertLog(redis_client)
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    a = InventoryAlert.make("S1", "A", AlertKind.REORDER, date(2026, 3, 2), "order 6", 6, created_at=at)
    again = InventoryAlert.make("S1", "A", AlertKind.REORDER, date(2026, 3, 2), "order 12", 12, created_at=at)
    tomorrow = InventoryAlert.make("S1", "A", AlertKind.REORDER, date(2026, 3, 3), "order 6", 6,
                                   created_at=at + timedelta(days=1))
    assert log.publish([a]) == [a.alert_id]
    assert log.publish([again]) == []
    assert log.publish([again, tomorrow]) == [tomorrow.alert_id]
    assert redis_client.xlen(keys.inventory_alerts_stream("S1")) == 2
    assert [x.alert_id for x in log.recent("S1")] == [tomorrow.alert_id, a.alert_id]
    assert [x.message for x in log.recent("S1", kinds=[AlertKind.REORDER])][1] == "order 6"  # the first one stays
    shared = LpStore(redis_client).get_alert("S1", a.alert_id)  # and in the chain's shared alert store, once
    assert shared is not None and shared.alert_type == "INVENTORY_REORDER" and shared.details["quantity"] == 6
    assert redis_client.xlen(keys.lp_alerts_stream("S1")) == 2


def _service(tmp_path, redis_client, now: datetime) -> InventoryService:
    fleet = FleetConfig.model_validate({
        "inventory": {"data_dir": str(tmp_path / "lake")},
        "stores": [{"id": "S1", "cameras": [{"id": "C1", "source": "synthetic:empty"}]}],
    })
    return InventoryService(fleet, redis_client, clock=now.timestamp)


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("deliveries", "stockouts"),
    [("", ["FAST"]), ("S1,FAST,PO1,2026-03-02T10:00:00Z,100,expected\n", [])],
    ids=["no-delivery", "delivery-in-time"],
)
def test_48h_stockout_alert_end_to_end(tmp_path, redis_client, deliveries, stockouts):
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    svc = _service(tmp_path, redis_client, now)
    days = [date(2026, 3, 1) - timedelta(days=i) for i in range(56)]
    sales = "store_id,sku,date,quantity\n" + "".join(f"S1,{sku},{d},10\n" for d in days for sku in ("FAST", "SLOW"))
    snaps = ("store_id,sku,snapshot_at,product_name,on_hand,shelf_units,backroom_units,lead_time_days\n"
             "S1,FAST,2026-03-02T07:00:00Z,Fast mover,12,6,6,2\n"
             "S1,SLOW,2026-03-02T07:00:00Z,Slow mover,200,20,180,2\n")
    for ds, text in ((Dataset.SALES, sales), (Dataset.SNAPSHOTS, snaps),
                     (Dataset.DELIVERIES, "store_id,sku,delivery_id,expected_at,quantity,status\n" + deliveries)):
        assert svc.import_file(_write(tmp_path, f"{ds}.csv", text), ds).errors == 0
    runs = batch.run_local(svc.lake.root, batch.BatchSettings(horizon_days=7))
    assert [r.series for r in runs] == [2]
    new = svc.evaluate(now=now)["S1"]
    assert sorted(a.sku for a in new if a.kind is AlertKind.STOCKOUT_48H) == stockouts
    stream = redis_client.xrange(keys.inventory_alerts_stream("S1"))
    assert len(stream) == len(new)
    assert svc.evaluate(now=now)["S1"] == []  # same day, same decisions: nothing new
    if stockouts:
        fast = next(d for d in svc.decisions(["S1"], now)["S1"] if d.sku == "FAST")
        # 12 counted at 07:00, ~10 a day: about 0.4 sold by 08:00, empty a bit more than a day later
        assert fast.stockout_at is not None and timedelta(hours=24) < fast.stockout_at - now < timedelta(hours=32)


def test_camera_gap_raises_replenish_from_backroom(tmp_path, redis_client):
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    svc = _service(tmp_path, redis_client, now)
    snaps = ("store_id,sku,snapshot_at,on_hand,shelf_units,backroom_units\n"
             "S1,A,2026-03-02T07:00:00Z,30,10,20\nS1,B,2026-03-02T07:00:00Z,10,10,0\n")
    svc.import_file(_write(tmp_path, "s.csv", snaps), Dataset.SNAPSHOTS)
    obs = [_gap(0.75, now), _gap(1.0, now).model_copy(update={"segment_id": "B1", "sku": "B"})]
    new = svc.on_shelf_gaps(obs, now)
    kinds = {a.sku: a.kind for a in svc.alerts.recent("S1") if a.alert_id in new}
    assert kinds == {"A": AlertKind.REPLENISH_FROM_BACKROOM, "B": AlertKind.SHELF_EMPTY_NO_STOCK}
    assert set(ShelfGapState(redis_client).get("S1")) == {"A1", "B1"}
    assert svc.on_shelf_gaps(obs, now) == []


@pytest.mark.parametrize("start", [0.0, 1 / 3, 0.5, 0.7083333333333334, 0.9999999])
def test_hours_until_empty_ends_for_any_start_of_day(start):
    from workloads.inventory.reorder import hours_until_empty

    # float day boundaries (start + t / 24 landing a hair below an integer) once made this loop forever
    assert hours_until_empty(1e9, [1.0] * 14, (14 - start) * 24, [(5.0, 3.0)], start) is None
    assert hours_until_empty(12, [24.0] * 3, 72, [], start) == pytest.approx(12.0)
