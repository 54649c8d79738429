"""Point of sale through real store actors (Ray) and Redis: the matching rules over HTTP whichever side
arrives first, per-row rejections, and the CSV import (`storefleet pos import`) of real CDNOW sales."""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from cluster.cli_pos import PosImportError, import_csv
from tests.analytics_data import POLY
from tests.analytics_ray import api_client, catch_up, store_actors
from workloads.config import FleetConfig

pytestmark = pytest.mark.integration

FLEET = FleetConfig.model_validate({"stores": [
    {"id": sid, "timezone": "UTC", "cameras": [{"id": f"{sid}_CAM", "source": "synthetic:empty", "zones": [
        {"id": "SHELF", "type": "PRODUCT", "polygon": POLY}, {"id": "Q", "type": "BILLING_QUEUE", "polygon": POLY},
        {"id": "TILL", "type": "CHECKOUT", "polygon": POLY}]}]}
    for sid in ("POS_A", "POS_B", "POS_CDNOW")
]})


@pytest.fixture(scope="module")
def api(ray_cluster, redis_url: str) -> Iterator[Any]:
    with store_actors(FLEET, redis_url) as handles:
        client = api_client(FLEET, redis_url)
        client.handles = handles  # type: ignore[attr-defined]
        client.redis = redis.Redis.from_url(redis_url)  # type: ignore[attr-defined]
        yield client


DAY = datetime(2026, 5, 1, 10, tzinfo=UTC)


def t(minute: float) -> str:
    return (DAY + timedelta(minutes=minute)).isoformat()


def billing(store: str) -> list[dict[str, Any]]:
    """ann and bob queue together; kim (staff) works the till; cat enters but never reaches billing."""
    rows = [("ann", "ENTRY", 0, None, 0, False), ("ann", "ZONE_ENTER", 10, "Q", 0, False),
            ("ann", "BILLING_QUEUE_JOIN", 10, "Q", 0, False), ("ann", "ZONE_EXIT", 14, "Q", 240_000, False),
            ("bob", "ENTRY", 1, None, 0, False), ("bob", "ZONE_ENTER", 12, "Q", 0, False),
            ("bob", "ZONE_EXIT", 15.5, "Q", 210_000, False),
            ("kim", "ZONE_ENTER", 29, "TILL", 0, True), ("kim", "ZONE_EXIT", 31, "TILL", 120_000, True),
            ("cat", "ENTRY", 40, None, 0, False), ("cat", "ZONE_ENTER", 42, "SHELF", 0, False)]
    return [{"event_id": f"{i:08d}-0000-4000-8000-{abs(hash(store)) % 10**12:012d}", "store_id": store,
             "camera_id": f"{store}_CAM", "visitor_id": v, "event_type": e, "timestamp": t(m), "zone_id": z,
             "dwell_ms": d, "is_staff": s} for i, (v, e, m, z, d, s) in enumerate(rows)]


SALES = [
    {"transaction_id": "ann-pays", "timestamp": t(14.1), "amount": 12.5},  # two in the window: ann left just now
    {"transaction_id": "bob-pays", "timestamp": t(15.6), "amount": 3, "items": 1},
    {"transaction_id": "staff-only", "timestamp": t(30)},  # only staff in billing: nobody
    {"transaction_id": "nobody", "timestamp": t(120)},  # nobody in billing at all
]
MATCHES = {"ann-pays": "ann", "bob-pays": "bob", "staff-only": None, "nobody": None}


def post_sales(api, store: str, sales: list[Any]) -> dict[str, Any]:
    res = api.post(f"/stores/{store}/pos/transactions", json={"transactions": sales})
    assert res.status_code == 200, res.text
    return res.json()


@pytest.mark.parametrize(("store", "sales_first"), [("POS_A", True), ("POS_B", False)])
def test_matching_over_http_whichever_side_arrives_first(api, store, sales_first) -> None:
    if sales_first:
        body = post_sales(api, store, SALES)
        assert (body["accepted"], body["matched"]) == (4, 0)
    assert api.post("/events/ingest", json={"events": billing(store)}).json()["accepted"] == len(billing(store))
    catch_up(api.handles)
    body = post_sales(api, store, SALES)  # first time, or a retry of the same batch
    assert {r["transaction_id"]: r["matched_visitor_id"] for r in body["results"]} == MATCHES
    assert body["accepted" if not sales_first else "duplicates"] == 4
    window = {"from": DAY.isoformat(), "to": (DAY + timedelta(hours=3)).isoformat()}
    m = api.get(f"/stores/{store}/metrics", params=window).json()
    assert (m["unique_visitors"], m["purchasers"], m["conversion_rate"], m["transactions"],
            m["matched_transactions"]) == (3, 2, 0.6667, 4, 2)
    f = api.get(f"/stores/{store}/funnel", params=window).json()
    assert (f["entry"], f["zone_visit"], f["billing_queue"], f["purchased"]) == (3, 1, 0, 0)
    assert [s["reached"] for s in f["stages"]] == [3, 1, 2, 2]


def test_bad_transactions_are_rejected_one_by_one(api) -> None:
    body = post_sales(api, "POS_A", [
        {"transaction_id": "ok-1", "timestamp": t(200)},
        {"timestamp": t(200)},
        {"transaction_id": "x", "timestamp": "2026-05-01T10:00:00"},
        {"transaction_id": "y", "timestamp": t(200), "amount": -1},
        {"transaction_id": "z", "timestamp": t(200), "till": 3},
        ["not", "a", "transaction"],
    ])
    assert [r["status"] for r in body["results"]] == ["accepted"] + ["rejected"] * 5
    assert [r["errors"][0]["field"] for r in body["results"][1:]] == [
        "transactions[1].transaction_id", "transactions[2].timestamp", "transactions[3].amount",
        "transactions[4].till", "transactions[5]"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/stores/NOPE/pos/transactions", {"transactions": []}, 404),
        ("/stores/POS_A/pos/transactions", {"transactions": [{"transaction_id": "a", "timestamp": t(0)}] * 501}, 422),
        ("/stores/POS_A/pos/transactions", {"sales": []}, 422),
    ],
)
def test_pos_refusals(api, path, body, status) -> None:
    assert api.post(path, json=body).status_code == status


def cdnow_csv(folder: Path, rows: int) -> tuple[Path, Counter[str]]:
    """The first `rows` CDNOW sales (real 1997-98 CD purchases) as our POS CSV: each day's sales one minute
    apart from 09:00 UTC; returns the file and sales per day."""
    spec = importlib.util.find_spec("lifetimes")
    assert spec and spec.submodule_search_locations, "Lifetimes==0.11.3 (requirements-dev.txt) ships the data"
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"
    per_day: Counter[str] = Counter()
    path = folder / "cdnow.csv"
    with source.open() as f, path.open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["transaction_id", "timestamp", "amount", "items"])
        next(f)  # header: customer_id date number_of_cds dollar_value
        for line_no, line in enumerate(f, 1):
            if line_no > rows:
                break
            customer, day, cds, dollars = line.split()
            n = per_day[day]
            per_day[day] += 1
            ts = datetime.strptime(day, "%Y%m%d").replace(hour=9, tzinfo=UTC) + timedelta(minutes=n)
            w.writerow([f"cdnow-{line_no}-{customer}", ts.isoformat(), dollars, cds])
    return path, per_day


def test_import_of_real_cdnow_sales_is_complete_and_idempotent(api, tmp_path) -> None:
    path, per_day = cdnow_csv(tmp_path, 3000)
    progress: list[int] = []
    first = import_csv(path, "POS_CDNOW", api, on_progress=progress.append)
    assert (first.rows, first.accepted, first.rejected, first.matched) == (3000, 3000, 0, 0)
    assert sum(progress) == 3000 and len(progress) == 6
    again = import_csv(path, "POS_CDNOW", api, batch_size=250)
    assert (again.accepted, again.duplicates) == (0, 3000)
    busiest = max(per_day, key=per_day.__getitem__)
    day = datetime.strptime(busiest, "%Y%m%d").replace(tzinfo=UTC)
    m = api.get("/stores/POS_CDNOW/metrics", params={"from": day.isoformat(),
                                                     "to": (day + timedelta(days=1)).isoformat()}).json()
    assert m["transactions"] == per_day[busiest] and m["matched_transactions"] == 0


def test_import_reports_bad_rows_by_line_and_refuses_a_bad_header(api, tmp_path) -> None:
    good = tmp_path / "sales.csv"
    good.write_text("transaction_id,timestamp,amount\n"
                    "imp-1,2026-05-02T10:00:00,5\n"  # local time, read in --assume-tz
                    "imp-2,2026-05-02 10:01:00+00:00,abc\n"
                    ",2026-05-02T10:02:00Z,1\n"
                    "imp-4,2026-05-02T10:03:00Z,1,extra\n")
    s = import_csv(good, "POS_A", api, assume_tz=ZoneInfo("Asia/Kolkata"))
    assert (s.rows, s.accepted, s.rejected) == (4, 1, 3)
    assert [e.split(":")[0] for e in s.errors] == ["line 3", "line 4", "line 5"]
    assert "amount" in s.errors[0] and "transaction_id" in s.errors[1] and "more fields" in s.errors[2]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,when\n1,2\n")
    with pytest.raises(PosImportError, match="header must name transaction_id, timestamp"):
        import_csv(bad, "POS_A", api)
    with pytest.raises(PosImportError, match="404"):
        import_csv(good, "NOPE", api, assume_tz=ZoneInfo("UTC"))
