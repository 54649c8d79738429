"""The batch forecast on Ray Data (the session's real Ray cluster) writes what the single-process run
writes, for every store x SKU of a synthetic chain."""

from __future__ import annotations

import pytest

from deployments.inventory_batch import bench, run_ray
from workloads.inventory import synth
from workloads.inventory.batch import BatchSettings
from workloads.inventory.lake import InventoryLake

pytestmark = pytest.mark.integration


def test_ray_data_batch_matches_the_single_process_run(ray_cluster, tmp_path):
    lake = InventoryLake(tmp_path / "lake")
    counts = synth.to_lake(synth.make_chain(["S1", "S2", "S3"], 8, 84, seed=4), lake)
    assert counts["sales"] == 3 * 8 * 84
    report = bench(lake.root, BatchSettings(horizon_days=7))
    assert report["same_forecasts"], report
    assert report["ray_data"]["series"] == report["single_process"]["series"] == 24
    runs = run_ray(lake.root, BatchSettings(horizon_days=7), stores=["S2"])
    assert [(r.store_id, r.series) for r in runs] == [("S2", 8)]
    assert lake.read("forecasts", "S2").num_rows == 8 * 7
