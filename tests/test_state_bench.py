"""The append benchmark runs against a live Redis and cleans up after itself."""

from __future__ import annotations

import redis

from workloads.state.bench import bench_append


def test_bench_append_compares_and_leaves_no_keys(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.set("someone-elses-key", "kept")
    r = bench_append(redis_url, n_events=600, batch=50, slow_events=150)
    assert r.batched_eps > 0 and r.per_event_eps > 0 and r.naive_eps > 0
    assert r.ratio > 1.5  # one round trip per 50 events vs ~9 per event; generous for noisy CI boxes
    assert "batched(50)" in r.summary()
    assert redis_client.keys("*") == [b"someone-elses-key"]
