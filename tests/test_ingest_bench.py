"""`storefleet bench-ingest` end to end on a small load: every side stores exactly what it was sent and a
replay is all duplicates, and the same-work baseline ends with the aggregates our store actors keep (the rates
themselves are reported, never asserted)."""

from __future__ import annotations

import pytest

from cluster.bench_ingest import BASELINES, run_bench

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_bench_ingest_stores_everything_on_every_side(ray_cluster) -> None:
    out = run_bench(n_events=1000, concurrency=2, stores=2, rounds=1)
    for side in (*BASELINES, "storefleet"):
        assert out[side]["rows_stored"] == out[side]["expected_rows"] == out[side]["accepted"] == 1000, side
        assert out[side]["events_per_s"] > 0
    assert out["storefleet_replay"]["duplicates"] == 1000 and out["storefleet_replay"]["accepted"] == 0
    assert set(out["ratio"]) == set(BASELINES)
    assert out["same_work_counts_match"]  # the like-for-like baseline keeps the figures our store actors keep
    pos = out["pos_import"]  # all of CDNOW through the POS route, then again
    assert pos["first"]["accepted"] == pos["again"]["duplicates"] == pos["first"]["rows"] == 69_659
