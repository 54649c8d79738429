"""`storefleet bench-ingest`: events/s through `POST /events/ingest` (batches of 500) into Redis, next to
a plain FastAPI + SQLite implementation of the same endpoint, measured in the same run.

Both sides get the same batches over HTTP from the same client (a few requests in flight), validate
each event with the same pydantic schema and answer the same per-event outcomes. Ours goes Serve HTTP
proxy -> API replica -> the store's StoreActor -> one Lua script per store batch in Redis (the event
hash, stream, time indexes and counters), and the analytics aggregator then tails the stream. The
baselines run under uvicorn (one worker) with SQLite in WAL mode, an index on (store, time) and
(store, type, time):
    * `sqlite_batch`: one transaction per request, `INSERT OR IGNORE` per event (the competent way);
    * `sqlite_per_event`: a commit per event, the way tutorial ORM code (`db.add(); db.commit()`) does;
    * `sqlite_same_work`: what our endpoint does, in one transaction per request: the batch validated
      the way our route does it, `INSERT OR IGNORE` per event, then for the inserted events the event
      log's running counters and the analytics aggregates (`aggregator.derive`: per-hour counts and
      visitor sets, last-seen times, queue depth, billing presences) as upserts. Ours keeps the same
      figures, the aggregates a moment later (the store actor's analytics thread).
Machines are shared and noisy: compare the ratios, not the absolute rates.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from workloads.config import FleetConfig

BATCH = 500
BASELINES = ("sqlite_batch", "sqlite_per_event", "sqlite_same_work")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_fleet(stores: int) -> FleetConfig:
    return FleetConfig.model_validate({"name": "bench-ingest", "stores": [
        {"id": f"BENCH_{i}", "timezone": "UTC", "cameras": [{"id": f"BENCH_{i}_CAM", "source": "synthetic:empty",
         "zones": [{"id": "SHELF", "type": "PRODUCT", "polygon": [[0, 0], [10, 0], [10, 10]]},
                   {"id": "QUEUE", "type": "BILLING_QUEUE", "polygon": [[0, 0], [10, 0], [10, 10]]}]}]}
        for i in range(stores)]})


def make_batches(cfg: FleetConfig, n_events: int, batch: int = BATCH, seed: int = 0) -> list[dict[str, Any]]:
    """Realistic visits (entry, shelf, queue, exit) spread over the fleet's stores, as JSON request bodies."""
    t0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    kinds = [("ENTRY", None), ("ZONE_ENTER", "SHELF"), ("ZONE_EXIT", "SHELF"), ("ZONE_ENTER", "QUEUE"),
             ("BILLING_QUEUE_JOIN", "QUEUE"), ("ZONE_EXIT", "QUEUE"), ("EXIT", None)]
    events = []
    for i in range(n_events):
        store = cfg.stores[(i // len(kinds)) % len(cfg.stores)]
        etype, zone = kinds[i % len(kinds)]
        events.append({
            "event_id": str(uuid.UUID(int=(seed << 64) + i)), "store_id": store.id, "camera_id": store.cameras[0].id,
            "visitor_id": f"v{i // len(kinds)}", "event_type": etype,
            "timestamp": (t0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "zone_id": zone, "dwell_ms": 30_000 if etype == "ZONE_EXIT" else 0, "is_staff": False,
            "confidence": 0.9, "metadata": {"queue_depth": 2 if zone == "QUEUE" else None, "sku_zone": None,
                                            "session_seq": i % len(kinds)},
        })
    return [{"events": events[i:i + batch]} for i in range(0, len(events), batch)]


def post_all(base_url: str, batches: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """POST every batch (`concurrency` in flight); events/s from the first request to the last answer."""
    local = threading.local()

    def send(body: dict[str, Any]) -> dict[str, int]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=120)
        for _ in range(20):
            res = local.client.post("/events/ingest", json=body)
            if res.status_code == 200:
                r = res.json()
                return {k: r[k] for k in ("accepted", "duplicates", "rejected")}
            if res.status_code != 503:
                raise RuntimeError(f"{base_url}: HTTP {res.status_code}: {res.text[:300]}")
            time.sleep(0.2)
        raise RuntimeError(f"{base_url}: still 503 after retries")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(send, batches))
    elapsed = time.perf_counter() - t0
    n = sum(len(b["events"]) for b in batches)
    totals = {k: sum(r[k] for r in replies) for k in ("accepted", "duplicates", "rejected")}
    return {"events": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed, 1), **totals}


def _wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout_s:.0f}s")


# --------------------------------------------------------------------------------- the SQLite baseline


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, store_id TEXT, camera_id TEXT, visitor_id TEXT,
    event_type TEXT, ts TEXT, zone_id TEXT, dwell_ms INTEGER, is_staff INTEGER, confidence REAL, metadata TEXT);
CREATE INDEX IF NOT EXISTS by_time ON events (store_id, ts);
CREATE INDEX IF NOT EXISTS by_type ON events (store_id, event_type, ts);
"""
#: `sqlite_same_work`: the event log's counters and the analytics aggregates, one table per Redis structure.
_AGG_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (store_id TEXT, name TEXT, n INTEGER, PRIMARY KEY (store_id, name));
CREATE TABLE IF NOT EXISTS agg_counts (store_id TEXT, bucket INTEGER, name TEXT, n INTEGER,
    PRIMARY KEY (store_id, bucket, name));
CREATE TABLE IF NOT EXISTS agg_visitors (store_id TEXT, bucket INTEGER, stage TEXT, visitor_id TEXT,
    PRIMARY KEY (store_id, bucket, stage, visitor_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staff (store_id TEXT, visitor_id TEXT, PRIMARY KEY (store_id, visitor_id));
CREATE TABLE IF NOT EXISTS last_seen (store_id TEXT, kind TEXT, id TEXT, ts_ms INTEGER,
    PRIMARY KEY (store_id, kind, id));
CREATE TABLE IF NOT EXISTS queue_now (store_id TEXT, zone_id TEXT, ts_ms INTEGER, depth INTEGER,
    PRIMARY KEY (store_id, zone_id));
CREATE TABLE IF NOT EXISTS queue_samples (store_id TEXT, member TEXT, ts_ms INTEGER, PRIMARY KEY (store_id, member));
CREATE INDEX IF NOT EXISTS samples_by_time ON queue_samples (store_id, ts_ms);
CREATE TABLE IF NOT EXISTS queue_peaks (store_id TEXT, key TEXT, depth INTEGER, PRIMARY KEY (store_id, key));
CREATE TABLE IF NOT EXISTS presences (store_id TEXT, member TEXT, end_ms INTEGER, PRIMARY KEY (store_id, member));
CREATE TABLE IF NOT EXISTS pos_dirty (store_id TEXT, lo INTEGER, hi INTEGER);
"""


def _store_same_work(db: sqlite3.Connection, cfg: FleetConfig, events: list[Any]) -> list[bool]:
    """`sqlite_same_work`'s writes for validated events, inside the caller's transaction: what the append script
    and the analytics aggregator write in Redis. Returns which events were new."""
    from workloads.analytics.aggregator import SAMPLE_HORIZON_MS, derive
    from workloads.analytics.settings import AnalyticsConfig

    new: list[bool] = []
    by_store: dict[str, list[Any]] = {}
    counters: dict[tuple[str, str], int] = {}
    for e in events:
        cur = db.execute(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (str(e.event_id), e.store_id, e.camera_id, e.visitor_id, e.event_type.value, e.timestamp.isoformat(),
             e.zone_id, e.dwell_ms, int(e.is_staff), e.confidence, e.metadata.model_dump_json()))
        new.append(bool(cur.rowcount))
        if not cur.rowcount:
            continue
        by_store.setdefault(e.store_id, []).append(e)
        t = e.event_type.value
        names = ["total", f"type:{t}", f"cam:{t}:{e.camera_id}"]
        names += ["staff", f"staff_type:{t}"] if e.is_staff else ["non_staff"]
        for name in names:
            counters[(e.store_id, name)] = counters.get((e.store_id, name), 0) + 1
    db.executemany("INSERT INTO counters VALUES (?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                   [(s, k, n) for (s, k), n in counters.items()])
    settings = AnalyticsConfig()
    for store_id, batch in by_store.items():
        d = derive(batch, cfg.store(store_id), settings)
        db.executemany("INSERT INTO agg_counts VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                       [(store_id, b, k, n) for b, c in d.counts.items() for k, n in c.items() if n])
        db.executemany("INSERT OR IGNORE INTO agg_visitors VALUES (?,?,?,?)",
                       [(store_id, b, st.value, v) for (b, st), vs in d.visitors.items() for v in vs])
        db.executemany("INSERT OR IGNORE INTO staff VALUES (?,?)", [(store_id, v) for v in d.staff])
        db.executemany("INSERT INTO last_seen VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET ts_ms = "
                       "max(ts_ms, excluded.ts_ms)",
                       [(store_id, "zone", z, ts) for z, ts in d.zone_last.items()]
                       + [(store_id, "camera", c, ts) for c, ts in d.camera_last.items()])
        db.executemany("INSERT INTO queue_now VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET ts_ms = excluded.ts_ms, "
                       "depth = excluded.depth WHERE excluded.ts_ms >= ts_ms",
                       [(store_id, z, ts, depth) for z, (ts, depth) in d.queue_latest.items()])
        if d.queue_samples:
            db.executemany("INSERT OR REPLACE INTO queue_samples VALUES (?,?,?)",
                           [(store_id, m, ts) for m, ts in d.queue_samples.items()])
            db.execute("DELETE FROM queue_samples WHERE store_id = ? AND ts_ms < ?",
                       (store_id, max(d.queue_samples.values()) - SAMPLE_HORIZON_MS))
        db.executemany("INSERT INTO queue_peaks VALUES (?,?,?) ON CONFLICT DO UPDATE SET depth = "
                       "max(depth, excluded.depth)", [(store_id, k, v) for k, v in d.queue_peaks.items()])
        db.executemany("INSERT OR REPLACE INTO presences VALUES (?,?,?)",
                       [(store_id, m, end) for m, end in d.presences.items()])
        if d.dirty is not None:
            db.execute("INSERT INTO pos_dirty VALUES (?,?,?)", (store_id, *d.dirty))
    return new


def baseline_app() -> Any:
    """The same endpoint, the plain way: FastAPI + SQLite (`SF_BASELINE_DB`, `SF_BASELINE_MODE`,
    `SF_BASELINE_STORES`)."""
    from fastapi import FastAPI
    from pydantic import ValidationError

    from deployments.api.ingest import EventResult, IngestRequest, IngestResponse
    from workloads.events import VisitorEvent, validate_batch

    mode = os.environ.get("SF_BASELINE_MODE", "sqlite_batch")
    per_event = mode == "sqlite_per_event"
    cfg = bench_fleet(int(os.environ.get("SF_BASELINE_STORES", "2")))
    db = sqlite3.connect(os.environ["SF_BASELINE_DB"], check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA + (_AGG_SCHEMA if mode == "sqlite_same_work" else ""))
    lock = threading.Lock()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def same_work(body: IngestRequest) -> list[EventResult]:
        """Our route's checks (one validation call per batch, known stores), then `_store_same_work`."""
        results = [EventResult(index=i, event_id=None, status="rejected") for i in range(len(body.events))]
        ok = [i for i, raw in enumerate(body.events) if isinstance(raw, dict) and "event_id" in raw]
        valid, _ = validate_batch([body.events[i] for i in ok])
        known = {s.id for s in cfg.stores}
        picked = [(ok[k], e) for k, e in valid.items() if e.store_id in known]
        with lock:
            db.execute("BEGIN")
            new = _store_same_work(db, cfg, [e for _, e in picked])
            db.execute("COMMIT")
        for (i, e), fresh in zip(picked, new, strict=True):
            results[i] = EventResult(index=i, event_id=str(e.event_id), status="accepted" if fresh else "duplicate")
        return results

    def ingest(body: IngestRequest) -> IngestResponse:
        if mode == "sqlite_same_work":
            results = same_work(body)
            n = {s: sum(r.status == s for r in results) for s in ("accepted", "duplicate", "rejected")}
            return IngestResponse(accepted=n["accepted"], duplicates=n["duplicate"], rejected=n["rejected"],
                                  results=results)
        results = []
        with lock:
            if not per_event:
                db.execute("BEGIN")
            for i, raw in enumerate(body.events):
                try:
                    if not isinstance(raw, dict) or "event_id" not in raw:
                        raise ValueError("event_id required")
                    e = VisitorEvent.model_validate(raw)
                except (ValidationError, ValueError):
                    results.append(EventResult(index=i, event_id=None, status="rejected"))
                    continue
                if per_event:
                    db.execute("BEGIN")
                cur = db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (str(e.event_id), e.store_id, e.camera_id, e.visitor_id, e.event_type.value,
                     e.timestamp.isoformat(), e.zone_id, e.dwell_ms, int(e.is_staff), e.confidence,
                     e.metadata.model_dump_json()))
                if per_event:
                    db.execute("COMMIT")
                results.append(EventResult(index=i, event_id=str(e.event_id),
                                           status="accepted" if cur.rowcount else "duplicate"))
            if not per_event:
                db.execute("COMMIT")
        n = {s: sum(r.status == s for r in results) for s in ("accepted", "duplicate", "rejected")}
        return IngestResponse(accepted=n["accepted"], duplicates=n["duplicate"], rejected=n["rejected"],
                              results=results)

    # Postponed annotations name classes imported in this function: give FastAPI the classes themselves.
    ingest.__annotations__ = {"body": IngestRequest, "return": IngestResponse}
    app.post("/events/ingest", response_model=IngestResponse)(ingest)
    return app


@contextmanager
def baseline_server(mode: str, folder: Path, stores: int) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SF_BASELINE_DB": str(folder / f"{mode}.sqlite"), "SF_BASELINE_MODE": mode,
           "SF_BASELINE_STORES": str(stores)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "cluster.bench_ingest:baseline_app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/health")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def same_work_counts_match(folder: Path, client: Any, cfg: FleetConfig) -> bool:
    """Whether `sqlite_same_work`'s hourly counts equal the store actors' aggregates in Redis. Every side is
    sent the same visits (only the event ids differ), so the same work must give the same figures."""
    from workloads.state import keys

    with sqlite3.connect(folder / "sqlite_same_work.sqlite") as db:
        theirs = {(s, int(b), k): int(n) for s, b, k, n in db.execute("SELECT * FROM agg_counts")}
    ours = {}
    for store in cfg.stores:
        for b in client.zrange(keys.analytics_buckets(store.id), 0, -1):
            for k, n in client.hgetall(keys.analytics_counts(store.id, int(b))).items():
                ours[(store.id, int(b), k.decode())] = int(n)
    return bool(ours) and ours == theirs


def sqlite_rows(folder: Path, mode: str) -> int:
    with sqlite3.connect(folder / f"{mode}.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


# ------------------------------------------------------------------------------------------- POS import


def cdnow_csv(folder: Path) -> Path | None:
    """The CDNOW sales (69,659 real CD purchases, 1997-98, in `Lifetimes==0.11.3`) as a POS CSV: each
    day's sales a minute apart from 09:00 UTC. None when the package is not installed."""
    import csv
    import importlib.util

    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"
    path = folder / "cdnow.csv"
    per_day: dict[str, int] = {}
    with source.open() as f, path.open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["transaction_id", "timestamp", "amount", "items"])
        next(f)
        for n, line in enumerate(f, 1):
            customer, day, cds, dollars = line.split()
            k = per_day[day] = per_day.get(day, -1) + 1
            ts = datetime.strptime(day, "%Y%m%d").replace(hour=9, tzinfo=UTC) + timedelta(minutes=k)
            w.writerow([f"cdnow-{n}-{customer}", ts.isoformat(), dollars, cds])
    return path


def bench_pos_import(base_url: str, store_id: str, folder: Path, say: Any) -> dict[str, Any]:
    """`storefleet pos import` of the whole CDNOW file through the API (rows/s), then again (all duplicates)."""
    from cluster.cli_pos import import_csv

    path = cdnow_csv(folder)
    if path is None:
        return {"skipped": "Lifetimes==0.11.3 (requirements-dev.txt) is not installed"}
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for run in ("first", "again"):
            say(f"POS import of CDNOW ({run}) ...")
            t0 = time.perf_counter()
            s = import_csv(path, store_id, client)
            dt = time.perf_counter() - t0
            out[run] = {"rows": s.rows, "accepted": s.accepted, "duplicates": s.duplicates,
                        "rejected": s.rejected, "rows_per_s": round(s.rows / dt, 1)}
    return out


# ------------------------------------------------------------------------------------------- ours


def stop_serve(timeout_s: float = 180.0) -> None:
    """`serve.shutdown()`, then wait until the controller is really gone: on a loaded machine its graceful
    shutdown can outlast Serve's 30 s wait, and a deploy meanwhile would join the old instance and its port."""
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    serve.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Serve controller was still alive {timeout_s:.0f}s after serve.shutdown()")


def start_api(cfg: FleetConfig, redis_url: str, http_port: int) -> Any:
    """The `api` application of ray_config.yaml and one store actor per store, on an initialised Ray."""
    from cluster.fleet import DEFAULT_SERVE_CONFIG, Fleet, deploy_serve, load_serve_config

    schema = load_serve_config(DEFAULT_SERVE_CONFIG, cfg, redis_url, http_port)
    schema.applications = [a for a in schema.applications if a.name == "api"]
    deploy_serve(schema)
    fleet = Fleet(cfg, redis_url)
    fleet.start_stores()
    return fleet


def run_bench(n_events: int = 20_000, concurrency: int = 4, stores: int = 2, rounds: int = 3,
              console: Console | None = None) -> dict[str, Any]:
    """All sides up at once, then `rounds` rounds that post fresh batches to each side in turn, so a
    load change on the shared machine hits every side alike; rates are the medians over the rounds."""
    import statistics

    import ray
    import redis

    from cluster.fleet import init_ray
    from cluster.redis_server import EmbeddedRedis
    from workloads.state.event_log import EventLog

    say = console.print if console else (lambda *_: None)
    cfg = bench_fleet(stores)
    sides = [*BASELINES, "storefleet"]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    out: dict[str, Any] = {"events": n_events, "batch": BATCH, "concurrency": concurrency, "stores": stores,
                           "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="sf-bench-ingest-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        urls = {mode: stack.enter_context(baseline_server(mode, folder, stores)) for mode in BASELINES}
        server = stack.enter_context(EmbeddedRedis(folder / "redis"))
        say("starting Ray, the Serve api application and the store actors ...")
        if not ray.is_initialized():  # a caller's Ray (tests) is left running, with Serve stopped
            init_ray(num_cpus=4, log_to_driver=False)
            stack.callback(ray.shutdown)
        stop_serve()  # Serve keeps the HTTP port it first started with
        stack.callback(stop_serve)
        port = free_port()
        fleet = start_api(cfg, server.url, port)
        stack.callback(fleet.stop)
        urls["storefleet"] = f"http://127.0.0.1:{port}"
        for url in urls.values():  # warm-up: imports, connections, Lua script load
            post_all(url, make_batches(cfg, 2 * BATCH, seed=99), concurrency)
        ray.get([a.analytics_catch_up.remote() for a in fleet.stores.values()])
        for r in range(rounds):
            for k, side in enumerate(sides):
                say(f"round {r + 1}/{rounds}: {side} ...")
                runs[side].append(post_all(urls[side], make_batches(cfg, n_events, seed=1 + r * len(sides) + k),
                                           concurrency))
            t0 = time.perf_counter()
            ray.get([a.analytics_catch_up.remote() for a in fleet.stores.values()])
            runs["storefleet"][-1]["aggregation_drain_s"] = round(time.perf_counter() - t0, 3)
        log = EventLog(redis.Redis.from_url(server.url))
        stored = {"storefleet": sum(log.count(s.id) for s in cfg.stores) - 2 * BATCH}
        stored |= {mode: sqlite_rows(folder, mode) - 2 * BATCH for mode in BASELINES}
        out["same_work_counts_match"] = same_work_counts_match(folder, log.client, cfg)
        replay = make_batches(cfg, n_events, seed=1 + len(sides) - 1)  # round 1's storefleet events again
        out["storefleet_replay"] = post_all(urls["storefleet"], replay, concurrency)
        out["pos_import"] = bench_pos_import(urls["storefleet"], cfg.stores[0].id, folder, say)
    for side in sides:
        rates = [run["events_per_s"] for run in runs[side]]
        out[side] = {"events_per_s": round(statistics.median(rates), 1), "rounds": rates,
                     "rows_stored": stored[side], "expected_rows": rounds * n_events,
                     "accepted": sum(run["accepted"] for run in runs[side])}
    out["storefleet"]["aggregation_drain_s"] = [run.get("aggregation_drain_s") for run in runs["storefleet"]]
    ours = out["storefleet"]["events_per_s"]
    out["ratio"] = {m: round(ours / out[m]["events_per_s"], 2) for m in BASELINES}
    return out


def bench_ingest_command(
    events: Annotated[int, typer.Option(help="Events per side (sent in batches of 500).")] = 20_000,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 4,
    stores: Annotated[int, typer.Option(help="Stores the events are spread over (one store actor each).")] = 2,
    rounds: Annotated[int, typer.Option(help="Rounds over all sides; rates are the medians.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Also write the results as JSON here.")] = None,
) -> None:
    """Ingest throughput over HTTP: StoreFleet (Serve -> store actors -> Redis) vs FastAPI + SQLite."""
    console = Console(stderr=True)
    results = run_bench(events, concurrency, stores, rounds, console)
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
