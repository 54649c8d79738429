"""`storefleet inventory` end to end without Ray: synthetic files -> import (with its report) -> batch
forecast in one process -> alerts in Redis -> a question answered as JSON."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cluster.cli import app
from workloads.state import keys


def test_synth_import_forecast_ask(tmp_path, redis_url, redis_client, monkeypatch):
    fleet = {"inventory": {"data_dir": str(tmp_path / "lake")},
             "stores": [{"id": s, "cameras": [{"id": f"C{s}", "source": "synthetic:empty"}]} for s in ("S1", "S2")]}
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text(yaml.safe_dump(fleet))
    monkeypatch.setenv("REDIS_URL", redis_url)
    run = CliRunner().invoke
    r = run(app, ["inventory", "synth", str(tmp_path / "data"), "-c", str(cfg), "--skus", "6", "--days", "84"])
    assert r.exit_code == 0, r.output
    for ds in ("sales", "calendar", "snapshots", "deliveries"):
        r = run(app, ["inventory", "import", str(tmp_path / "data" / f"{ds}.csv"), "-d", ds, "-c", str(cfg)])
        assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("store_id,sku,date,quantity\nS1,SKU0000,2026-01-01,x\nS1,SKU0001,2026-01-01,1\n")
    r = run(app, ["inventory", "import", str(bad), "-d", "sales", "-c", str(cfg)])
    assert r.exit_code == 0 and "not a number" in r.output
    assert "bad.csv,1,quantity,error,,not a number: 'x'" in (tmp_path / "bad.csv.issues.csv").read_text()
    r = run(app, ["inventory", "forecast", "--local", "-c", str(cfg)])
    assert r.exit_code == 0 and "12 series in 2 stores" in r.output, r.output
    assert redis_client.xlen(keys.inventory_alerts_stream("S1")) > 0
    r = run(app, ["inventory", "ask", "what should we reorder in S2?", "-c", str(cfg), "--json"])
    answer = json.loads(r.stdout)
    assert answer["plan"] == {"stores": ["S2"], "skus": None, "category": None, "plan": "reorder_list"}
    assert {row["store_id"] for row in answer["rows"]} <= {"S2"}
