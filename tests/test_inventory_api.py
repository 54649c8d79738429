"""Inventory over HTTP (FastAPI app, real Redis, real lake): uploads, store views, restock, alerts, questions
and the chain heatmap, each with the roles of the API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import inventory
from deployments.api.context import ApiContext, get_ctx, set_context
from workloads.access import KeyRing, ResolvedKey, Role
from workloads.config import FleetConfig
from workloads.inventory import batch

RING = KeyRing([ResolvedKey("hq", "hq-secret", Role.HQ), ResolvedKey("s1", "s1-secret", Role.STORE, "S1"),
                ResolvedKey("sre", "sre-secret", Role.SRE)])
HQ, S1, SRE = ({"X-API-Key": k} for k in ("hq-secret", "s1-secret", "sre-secret"))
CSV = {"Content-Type": "text/csv"}
TODAY = datetime.now(UTC).date()


@pytest.fixture
def client(tmp_path, redis_url, redis_client):
    fleet = FleetConfig.model_validate({
        "inventory": {"data_dir": str(tmp_path / "lake")},
        "stores": [{"id": sid, "cameras": [{"id": f"C{sid}", "source": "synthetic:empty"}]} for sid in ("S1", "S2")],
    })
    ctx = ApiContext.create(fleet, redis_url)
    ctx.keys = RING
    set_context(ctx)
    app = FastAPI()
    app.include_router(inventory.router)
    return TestClient(app)


def _sales() -> str:
    days = [TODAY - timedelta(days=i) for i in range(1, 57)]
    return "sku,date,quantity\n" + "".join(f"MILK,{d},10\nTEA,{d},2\n" for d in days)


SNAP = ("sku,snapshot_at,product_name,category,on_hand,shelf_units,backroom_units,pack_size\n"
        f"MILK,{TODAY}T00:00:00Z,Whole milk 1L,dairy,12,0,12,6\n"
        f"TEA,{TODAY}T00:00:00Z,Green tea 40x,beverages,200,50,150,10\n")


@pytest.mark.parametrize(
    ("key", "store", "status"),
    [(S1, "S1", 200), (HQ, "S2", 200), (S1, "S2", 403), (SRE, "S1", 403), (None, "S1", 401)],
)
def test_upload_roles(client, key, store, status):
    r = client.post(f"/stores/{store}/inventory/snapshots", content=SNAP, headers={**CSV, **(key or {})})
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["stored"]["new"] == 2 and r.json()["issues"] == []


def test_bad_upload_is_refused_with_every_problem(client):
    r = client.post("/stores/S1/inventory/sales", content="sku,date,quantity\nMILK,yesterday,x\n",
                    headers={**CSV, **S1})
    assert r.status_code == 422
    issues = r.json()["detail"]["issues"]
    assert {(i["row"], i["column"]) for i in issues} == {(1, "date"), (1, "quantity")}
    r = client.post("/stores/S1/inventory/sales", content="a,b", headers={"Content-Type": "image/png", **S1})
    assert r.status_code == 415


def test_store_view_restock_alerts_and_questions(client):
    for dataset, body in (("sales", _sales()), ("snapshots", SNAP)):
        assert client.post(f"/stores/S1/inventory/{dataset}", content=body, headers={**CSV, **HQ}).status_code == 200
    svc = inventory.service(get_ctx())  # the service the routes use
    batch.run_local(svc.lake.root, batch.BatchSettings(horizon_days=7))
    view = client.get("/stores/S1/inventory", headers=S1).json()
    milk = next(i for i in view["items"] if i["sku"] == "MILK")
    assert milk["shelf_empty"] and milk["replenish_units"] == 12 and milk["forecast_7d"] > 0
    assert view["forecast_run"].startswith("fc-")
    restock = client.get("/stores/S1/inventory/restock", headers=S1).json()
    assert [line["sku"] for line in restock["replenish_from_backroom"]] == ["MILK"]
    assert "MILK" in {line["sku"] for line in restock["reorder"]}
    svc.evaluate(["S1"])
    kinds = {a["kind"] for a in client.get("/stores/S1/inventory/alerts", headers=S1).json()}
    assert {"REPLENISH_FROM_BACKROOM", "REORDER"} <= kinds
    a = client.post("/inventory/ask", json={"question": "What do I need to restock today?"}, headers=S1).json()
    assert a["plan"]["plan"] == "restock_today" and a["sql"].startswith("select")
    assert {r["store_id"] for r in a["rows"]} == {"S1"} and a["planner"] == "rules"
    assert client.post("/inventory/ask", json={"question": "what is our stock worth?", "store_id": "S2"},
                       headers=S1).status_code == 403
    assert client.post("/inventory/ask", json={"question": "sing me a song"}, headers=S1).status_code == 422


@pytest.mark.parametrize(("key", "status"), [(HQ, 200), (S1, 403), (SRE, 403)])
def test_heatmap_is_chain_wide(client, key, status):
    client.post("/stores/S2/inventory/snapshots", content=SNAP, headers={**CSV, **HQ})
    r = client.get("/chain/inventory/heatmap", headers=key)
    assert r.status_code == status
    if status == 200:
        cells = {(c["store_id"], c["area"]): c for c in r.json()["cells"]}
        assert cells[("S2", "dairy")]["empty_shelves"] == 1 and r.json()["stores"] == ["S1", "S2"]
