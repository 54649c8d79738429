"""End to end over real HTTP: the `api` application of ray_config.yaml on Ray Serve, store actors whose
own threads aggregate, a real Redis, and the `storefleet pos import` command against that server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import ray
from typer.testing import CliRunner

from cluster.bench_ingest import start_api, stop_serve
from cluster.cli import app as cli
from tests.analytics_data import POLY
from workloads.config import FleetConfig

pytestmark = pytest.mark.integration

PORT = 18231
FLEET = FleetConfig.model_validate({"stores": [
    {"id": sid, "name": name, "timezone": "Asia/Kolkata",
     "cameras": [{"id": f"{sid}_CAM", "source": "synthetic:empty",
     "zones": [{"id": "SKIN", "type": "PRODUCT", "polygon": POLY},
               {"id": "Q", "type": "BILLING_QUEUE", "polygon": POLY}]}]}
    for sid, name in (("SRV_A", "Koramangala"), ("SRV_B", "Indiranagar"))
]})
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


@pytest.fixture(scope="module")
def http(ray_cluster, redis_url: str) -> Iterator[httpx.Client]:
    stop_serve()  # Serve keeps the first HTTP port it started with: start ours on a clean slate
    fleet = start_api(FLEET, redis_url, PORT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as client:
            yield client
    finally:
        for actor in fleet.stores.values():
            ray.kill(actor, no_restart=True)
        stop_serve()  # and leave a clean slate for the next module


def visit(store: str, visitor: str, start: datetime, buys: bool) -> list[dict[str, Any]]:
    steps = [("ENTRY", 0, None, 0, None), ("ZONE_ENTER", 1, "SKIN", 0, None), ("ZONE_EXIT", 3, "SKIN", 120_000, None)]
    if buys:
        steps += [("ZONE_ENTER", 4, "Q", 0, 1), ("BILLING_QUEUE_JOIN", 4, "Q", 0, 1), ("ZONE_EXIT", 6, "Q", 120_000, 0)]
    steps.append(("EXIT", 8, None, 0, None))
    return [{"event_id": str(uuid.uuid4()), "store_id": store, "camera_id": f"{store}_CAM", "visitor_id": visitor,
             "event_type": t, "timestamp": (start + timedelta(minutes=m)).isoformat(), "zone_id": z, "dwell_ms": d,
             "metadata": {"queue_depth": q}} for t, m, z, d, q in steps]


def wait_aggregated(http: httpx.Client, timeout_s: float = 60) -> dict[str, Any]:
    """The actors' own threads apply events; /health shows when nothing is left."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = http.get("/health").json()
        if all(s["analytics_lag_events"] == 0 for s in health["stores"].values()) or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def test_the_api_over_serve_http(http, tmp_path) -> None:
    events = [e for i in range(6) for e in visit("SRV_A", f"a{i}", NOW + timedelta(minutes=i), buys=i < 4)]
    events += visit("SRV_B", "b0", NOW, buys=False)
    body = http.post("/events/ingest", json={"events": [*events, {"store_id": "SRV_A"}]}).json()
    assert (body["accepted"], body["rejected"]) == (len(events), 1)

    sales = tmp_path / "sales.csv"
    sales.write_text("transaction_id,timestamp,amount\n" + "".join(
        f"srv-{i},{(NOW + timedelta(minutes=i + 6, seconds=30)).isoformat()},{10 + i}\n" for i in range(3)))
    res = CliRunner().invoke(cli, ["pos", "import", str(sales), "--store", "SRV_A", "--api", str(http.base_url)])
    assert res.exit_code == 0, res.output
    assert '"accepted": 3' in res.output and '"matched": 3' in res.output

    health = wait_aggregated(http)
    assert health["stores"]["SRV_A"]["events_total"] == sum(e["store_id"] == "SRV_A" for e in events)
    window = {"from": (NOW - timedelta(hours=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    m = http.get("/stores/SRV_A/metrics", params=window).json()
    assert (m["unique_visitors"], m["purchasers"], m["conversion_rate"], m["avg_dwell_ms"]) == (6, 3, 0.5, 120_000)
    assert m["queue_joins"] == 4 and m["window"]["timezone"] == "Asia/Kolkata"
    f = http.get("/stores/SRV_A/funnel", params=window).json()
    assert (f["entry"], f["zone_visit"], f["billing_queue"], f["purchased"]) == (6, 6, 4, 3)
    assert http.get("/stores/SRV_A/heatmap", params=window).json()["SKIN"]["frequency"] == 6
    assert http.get("/stores/SRV_A/metrics").json()["unique_visitors"] in (0, 6)  # today, IST: NOW may be yesterday
    assert http.get("/stores/SRV_A/anomalies").status_code == 200
    chain = http.get("/chain/metrics", params=window).json()
    assert (chain["unique_visitors"], chain["purchasers"]) == (7, 3)
    ranking = http.get("/chain/stores/ranking", params={**window, "by": "conversion_rate"}).json()
    assert [(s["store_id"], s["name"]) for s in ranking["stores"]] == [("SRV_A", "Koramangala"),
                                                                       ("SRV_B", "Indiranagar")]
    assert http.get("/stores/NOPE/funnel").status_code == 404
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/events/ingest", "/stores/{store_id}/metrics", "/stores/{store_id}/funnel",
            "/stores/{store_id}/heatmap", "/stores/{store_id}/anomalies", "/chain/metrics",
            "/chain/stores/ranking", "/stores/{store_id}/pos/transactions", "/health"} <= set(paths)
    assert http.get("/docs").status_code == 200
