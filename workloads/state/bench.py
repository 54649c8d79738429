"""How much the batched Lua append buys over writing events one by one, measured in one run.

Three ways to store the same events, each in its own throw-away store (deleted afterwards, so the
benchmark can run against a live Redis):
    * batched: `EventLog.append` with `batch` events per call (one round trip per batch);
    * per_event: `EventLog.append` with one event per call (one EVALSHA round trip per event);
    * naive: plain commands, one round trip each (HSETNX, then XADD, ZADD x2, HINCRBY x4), not
      atomic - what the script replaces.

Example:
    >>> r = bench_append("redis://127.0.0.1:6379/0", n_events=20_000, batch=64)  # doctest: +SKIP
    >>> print(r.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from workloads.events import BOUNDARY_TYPES, EventType, VisitorEvent
from workloads.state import keys
from workloads.state.event_log import EventLog

__all__ = ["BenchResult", "bench_append", "make_events"]

_TYPES = list(EventType)


@dataclass(frozen=True, slots=True)
class BenchResult:
    """Events per second of each way; `ratio` is batched over naive."""

    n_events: int
    batch: int
    batched_eps: float
    per_event_eps: float
    naive_eps: float

    @property
    def ratio(self) -> float:
        return self.batched_eps / self.naive_eps if self.naive_eps else float("inf")

    def summary(self) -> str:
        return (
            f"append {self.n_events} events: batched({self.batch}) {self.batched_eps:,.0f} ev/s, "
            f"one script call per event {self.per_event_eps:,.0f} ev/s, "
            f"naive commands {self.naive_eps:,.0f} ev/s -> batched is {self.ratio:.1f}x naive"
        )


def make_events(store_id: str, n: int, cameras: int = 4) -> list[VisitorEvent]:
    """`n` valid, distinct events spread over cameras, types and one hour."""
    t0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        etype = _TYPES[i % len(_TYPES)]
        out.append(
            VisitorEvent(
                store_id=store_id,
                camera_id=f"C{i % cameras}",
                visitor_id=f"v{i // 3}",
                event_type=etype,
                timestamp=t0 + timedelta(milliseconds=i * 37),
                zone_id=None if etype in BOUNDARY_TYPES else f"Z{i % 5}",
                is_staff=i % 17 == 0,
            )
        )
    return out


def _naive_append(client: redis.Redis, e: VisitorEvent) -> bool:
    s, eid, etype, doc = e.store_id, str(e.event_id), e.event_type.value, e.model_dump_json()
    if not client.hsetnx(keys.event_by_id(s), eid, doc):
        return False
    client.xadd(keys.events_stream(s), {"event_id": eid, "json": doc})
    client.zadd(keys.events_by_time(s), {eid: e.ts_ms})
    client.zadd(keys.events_by_type_time(s, etype), {eid: e.ts_ms})
    counters = keys.event_counters(s)
    client.hincrby(counters, "total", 1)
    client.hincrby(counters, f"type:{etype}", 1)
    client.hincrby(counters, f"cam:{etype}:{e.camera_id}", 1)
    client.hincrby(counters, "staff" if e.is_staff else "non_staff", 1)
    return True


def _drop_store(client: redis.Redis, store_id: str) -> None:
    client.delete(
        keys.event_by_id(store_id), keys.events_stream(store_id), keys.events_by_time(store_id),
        keys.event_counters(store_id), *(keys.events_by_type_time(store_id, t.value) for t in _TYPES),
    )
    client.srem(keys.stores(), store_id)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_append(url: str, n_events: int = 20_000, batch: int = 64, slow_events: int = 2_000) -> BenchResult:
    """Events/s of batched vs one-by-one appends against the Redis at `url`.

    The two one-by-one ways run on the first `slow_events` events only (they are 10-100x slower;
    the rate is what is compared). Object creation is outside the timings, JSON encoding inside.
    """
    client = redis.Redis.from_url(url)
    tag = uuid.uuid4().hex[:8]
    stores = {mode: f"bench-{tag}-{mode}" for mode in ("batched", "per_event", "naive")}
    n_slow = min(n_events, slow_events)
    try:
        log = EventLog(client)
        log.append(make_events(f"bench-{tag}-warmup", 10))  # loads the script, opens the connection
        _drop_store(client, f"bench-{tag}-warmup")

        evs = make_events(stores["batched"], n_events)
        t = time.perf_counter()
        for i in range(0, n_events, batch):
            log.append(evs[i : i + batch])
        batched = _rate(n_events, time.perf_counter() - t)

        evs = make_events(stores["per_event"], n_slow)
        t = time.perf_counter()
        for e in evs:
            log.append([e])
        per_event = _rate(n_slow, time.perf_counter() - t)

        evs = make_events(stores["naive"], n_slow)
        t = time.perf_counter()
        for e in evs:
            _naive_append(client, e)
        naive = _rate(n_slow, time.perf_counter() - t)

        assert log.count(stores["batched"]) == n_events, "batched append lost events"
    finally:
        for s in stores.values():
            _drop_store(client, s)
        client.close()
    return BenchResult(n_events, batch, batched, per_event, naive)


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path

    from cluster.redis_server import resolve_redis

    with tempfile.TemporaryDirectory() as d:
        redis_url, server = resolve_redis(Path(d))
        try:
            if server is not None:
                print(f"embedded redis-server started in {server.start_seconds * 1000:.0f} ms")  # type: ignore[operator]
            n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
            print(bench_append(redis_url, n_events=n).summary())
        finally:
            if server is not None:
                server.stop()
