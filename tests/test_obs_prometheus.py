"""Observability end to end: a fleet on real footage (real Ray, Redis, OpenVINO), scraped by a real
Prometheus (Debian's, on loopback, 1 s scrape and rule interval) that loads the committed rules.

Checks that every catalogued metric is scraped with only its declared labels, that every panel query
of every committed dashboard returns data, that every rule evaluates without error, and that stopping
a live camera's source (an MJPEG stream over HTTP, like an IP camera) fires StoreFleetCameraFeedStale
for that camera only.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import ray
from ray import serve

from cluster import observability as obs
from cluster.fleet import start_fleet
from deployments import metrics as m
from deployments.logging import TRACE_HEADER
from workloads.config import FleetConfig

pytestmark = pytest.mark.integration

#: Metrics whose producer does not exist yet, so nothing can be scraped for them; panels and rules that
#: read only these are left out of "returns data" (they are still checked by promtool and its tests).
NOT_PRODUCED: dict[str, str] = {
    spec.exported: "the VLM deployment runs only when the fleet names a model (vLLM; minutes to load on CPU)"
    for spec in (m.VLM_LATENCY, m.VLM_INFLIGHT, m.VLM_OUTCOMES)
}

#: Labels Ray's exporter and Prometheus add to every series.
RAY_LABELS = {"__name__", "Component", "NodeAddress", "SessionName", "Version", "WorkerId", "otel_scope_name",
              "otel_scope_schema_url", "otel_scope_version", "job", "instance", "le"}

DOOR = {"id": "door", "points": [[560, 140], [560, 340]], "inside_point": [400, 240]}
PLAZA = {"id": "PLAZA", "type": "HIGH_VALUE", "polygon": [[250, 190], [550, 190], [550, 330], [250, 330]]}
STAFF_ONLY = {"id": "STAFF_ONLY", "type": "RESTRICTED", "polygon": [[400, 150], [768, 150], [768, 400], [400, 400]]}
QUEUE = {"id": "QUEUE", "type": "BILLING_QUEUE", "polygon": [[60, 190], [250, 190], [250, 300], [60, 300]]}
STORES = ("OBS_NORTH", "OBS_SOUTH")


class MjpegCamera:
    """An IP camera on loopback: vtest.avi frames as a multipart MJPEG stream at 25 fps (FFmpeg's
    default rate for MJPEG). `stop()` closes its connections and stops listening: the feed goes dark."""

    def __init__(self, vtest: str, port: int, frames: int = 100) -> None:
        cap = cv2.VideoCapture(vtest)
        self.jpegs = []
        for _ in range(frames):
            ok, img = cap.read()
            assert ok
            self.jpegs.append(cv2.imencode(".jpg", img)[1].tobytes())
        cap.release()
        self.stopped = threading.Event()
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while not cam.stopped.is_set():
                    jpg = cam.jpegs[i % len(cam.jpegs)]
                    i += 1
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                         % (len(jpg), jpg))
                    except OSError:
                        return
                    time.sleep(0.04)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}/stream.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if not self.stopped.is_set():
            self.stopped.set()
            self.server.shutdown()
            self.server.server_close()


class Prom:
    """The Prometheus HTTP API, just what the test asks."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.http.get("/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def names(self) -> set[str]:
        return set(self.http.get("/api/v1/label/__name__/values").json()["data"])

    def label_names(self, metric: str) -> set[str]:
        series = self.http.get("/api/v1/series", params={"match[]": metric}).json()["data"]
        return set().union(*(s.keys() for s in series)) if series else set()

    def rules(self) -> list[dict[str, Any]]:
        return [r for g in self.http.get("/api/v1/rules").json()["data"]["groups"] for r in g["rules"]]


def wait_for(what: str, check: Callable[[], tuple[bool, Any]], timeout_s: float, every_s: float = 2.0) -> None:
    """Poll `check` (-> done, detail) until done; fail with the last detail."""
    deadline = time.monotonic() + timeout_s
    while True:
        done, detail = check()
        if done:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached in {timeout_s:.0f}s; last: {detail}")
        time.sleep(every_s)


def _exported_names(spec: m.MetricSpec) -> list[str]:
    return [spec.exported + s for s in (("_bucket", "_sum", "_count") if spec.kind == "histogram" else ("",))]


def _reads_unproduced(expr: str) -> bool:
    names = obs.metric_names_in(expr)
    for r in obs.RECORDS:
        if r.record in names:
            names |= obs.metric_names_in(r.expr)
    return any(n.removesuffix(sfx) in NOT_PRODUCED for n in names for sfx in ("_bucket", "_sum", "_count", ""))


@pytest.fixture
def live_camera(vtest: str) -> Iterator[MjpegCamera]:
    cam = MjpegCamera(vtest, obs.free_port(18450, 18499))
    yield cam
    cam.stop()


@pytest.fixture
def prometheus(ray_cluster, tmp_path: Path) -> Iterator[Prom]:
    """Debian's Prometheus scraping this session's Ray node, with the committed rule files."""
    node = next(n for n in ray.nodes() if n["Alive"])
    cfg = obs.prometheus_config([f"127.0.0.1:{node['MetricsExportPort']}"], [str(p) for p in obs.rule_paths()],
                                scrape_interval="1s", evaluation_interval="1s")
    (tmp_path / "prometheus.yml").write_text(json.dumps(cfg))  # JSON is YAML
    server = obs.PrometheusServer(tmp_path / "prometheus.yml", tmp_path / "data", obs.free_port(19400, 19499))
    with server.start(log_file=tmp_path / "prometheus.log"):
        yield Prom(server.url)


def test_metrics_panels_rules_and_stale_feed_alert_on_a_real_fleet(
    ray_cluster, prepared_detector, redis_url, vtest, live_camera, prometheus
) -> None:
    cfg = FleetConfig.model_validate({
        "detector": {"precision": "INT8", "input_size": 640, "max_batch_size": 4},
        "event_batch_interval_s": 0.5,
        "stores": [
            {"id": "OBS_NORTH", "cameras": [
                # A live file camera that keeps running, and the IP camera whose feed the test cuts.
                {"id": "N_DOOR", "source": vtest, "realtime": True, "loop": True, "target_fps": 4,
                 "tripwires": [DOOR], "zones": [PLAZA, QUEUE, {**STAFF_ONLY, "id": "STAFF_N"}]},
                {"id": "N_LIVE", "source": live_camera.url, "realtime": True, "target_fps": 3},
            ]},
            {"id": "OBS_SOUTH", "cameras": [
                # Backfill: chunks through detect_many, then finished (must never count as stale).
                {"id": "S_BACKFILL", "source": vtest, "realtime": False, "loop": False, "target_fps": 5,
                 "max_frames": 120, "tripwires": [DOOR], "zones": [{**PLAZA, "id": "PLAZA_S"}, STAFF_ONLY]},
            ]},
        ],
    })
    http_port = obs.free_port(18400, 18449)
    serve.shutdown()  # Serve keeps the HTTP port it first started with: start ours on a clean slate
    fleet = start_fleet(cfg, redis_url, http_port=http_port)
    try:
        # A request through the real Serve proxy carries our trace id back.
        api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
        res = api.get("/health", headers={TRACE_HEADER: "obs-test-1"})
        assert res.status_code == 200 and res.headers[TRACE_HEADER] == "obs-test-1"
        _post_ingest(api)

        # 1. Every catalogued metric that has a producer is scraped, with only its declared labels.
        expected = {n: s for s in m.CATALOGUE.values() if s.exported not in NOT_PRODUCED for n in _exported_names(s)}
        wait_for("every metric scraped", lambda: (not (missing := set(expected) - prometheus.names()), missing), 180)
        for spec in {s.name: s for s in expected.values()}.values():
            extra = prometheus.label_names(spec.exported + ("_count" if spec.kind == "histogram" else ""))
            assert extra - RAY_LABELS <= set(spec.labels), (spec.name, extra - RAY_LABELS)

        # 2. Every panel query of every committed dashboard returns data for the test's stores.
        queries = [(path.name, p["title"], t["expr"])
                   for path in sorted(obs.DASHBOARDS_DIR.glob("*.json"))
                   for p in json.loads(path.read_text())["panels"] for t in p.get("targets", [])]
        assert queries, "no dashboards committed"
        checked = [(d, t, e) for d, t, e in queries if not _reads_unproduced(e)]
        stores = "|".join(STORES)

        def empty_panels() -> tuple[bool, list[str]]:
            empty = [f"{d} / {t}: {e}" for d, t, e in checked if not prometheus.query(obs.expand(e, store=stores))]
            return not empty, empty

        wait_for("every panel returns data", empty_panels, 240, every_s=5)

        # 3. Every rule the committed files define is loaded and evaluates without error.
        rules = prometheus.rules()
        assert len(rules) == len(obs.RECORDS) + len(obs.alerts())
        assert [r["name"] for r in rules if r["health"] != "ok" or r.get("lastError")] == []

        # 4. Cutting the IP camera's feed fires the stale-feed alert, for that camera only.
        assert not _firing(prometheus, "StoreFleetCameraFeedStale")
        live_camera.stop()
        wait_for("stale-feed alert firing", lambda: (("OBS_NORTH", "N_LIVE") in _firing(
            prometheus, "StoreFleetCameraFeedStale"), _firing(prometheus, "StoreFleetCameraFeedStale")), 180)
        assert _firing(prometheus, "StoreFleetCameraFeedStale") == {("OBS_NORTH", "N_LIVE")}
        statuses = fleet.statuses()
        assert statuses["S_BACKFILL"]["state"] == "finished"
        assert statuses["N_LIVE"]["reconnects"] > 0  # the pump keeps retrying the dark source
    finally:
        fleet.stop()
        serve.shutdown()  # and leave one for the next test


def _post_ingest(api: httpx.Client) -> None:
    """An edge pipeline's batch (one good event, sent twice, and one bad one) and a till's sale: the
    HTTP write paths record their outcomes."""
    now = datetime.now(UTC)
    good = {"event_id": str(uuid.uuid4()), "store_id": "OBS_SOUTH", "camera_id": "S_BACKFILL",
            "visitor_id": "edge-1", "event_type": "ENTRY", "timestamp": now.isoformat()}
    bad = {**good, "event_id": str(uuid.uuid4()), "event_type": "TELEPORT"}
    for _ in range(2):
        res = api.post("/events/ingest", json={"events": [good, bad]})
        assert res.status_code == 200, res.text
    assert res.json()["duplicates"] == 1 and res.json()["rejected"] == 1
    sale = {"transaction_id": f"obs-{uuid.uuid4().hex[:8]}", "timestamp": now.isoformat(), "amount": 12.5}
    res = api.post("/stores/OBS_NORTH/pos/transactions", json={"transactions": [sale]})
    assert res.status_code == 200 and res.json()["accepted"] == 1, res.text


def _firing(prom: Prom, alertname: str) -> set[tuple[str, str]]:
    res = prom.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')
    return {(r["metric"].get("store", ""), r["metric"].get("camera", "")) for r in res}
