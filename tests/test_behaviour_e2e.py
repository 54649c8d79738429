"""Escalation -> frames -> pose pre-filter -> vLLM -> verdict -> alert, with real Ray, Redis and vLLM.

The model is the tiny random-weight Qwen2.5-VL of `models/vlm.py` (no weights can be downloaded), so
its verdict is noise; what is checked is the path: guided decoding keeps the answer valid JSON of the
verdict schema, the rules apply it (checkout bypass is CRITICAL exactly when the verdict was
`suspicious`), evidence frames are copied and served over HTTP, and a visit without a matching motion
ends as `no_match` without the model. One real vLLM case in the default run (it loads in a minute or
two on 2 CPU cores).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

pytest.importorskip("vllm", reason="the vLLM extra (requirements-llm.txt) is not installed")

from models.detections import Detections
from workloads.behaviour.evidence import open_store
from workloads.behaviour.prefilter import standing_pose
from workloads.behaviour.recorder import EvidenceRecorder
from workloads.behaviour.visits import VisitIndex
from workloads.config import FleetConfig
from workloads.events import EventType, VisitorEvent
from workloads.lp.models import Alert, BaResult
from workloads.state import keys

pytestmark = pytest.mark.integration
PORT = 18731
STORE, CAM = "S_BA", "C_BA"


class _Obs:
    def __init__(self, visitor_id: str, box: tuple[float, float, float, float]) -> None:
        self.visitor_id, self.box, self.is_staff = visitor_id, box, False


def _pose(wrist: tuple[float, float] | None = None, elbow: tuple[float, float] | None = None) -> np.ndarray:
    kp = standing_pose(cx=300, top=150)
    if wrist:
        kp[9, :2] = (wrist[0] + 200, wrist[1] + 100)
    if elbow:
        kp[7, :2] = (elbow[0] + 200, elbow[1] + 100)
    return kp


HANG, REACH, WAIST = _pose(), _pose((215, 95), (170, 95)), _pose((112, 180), (150, 140))


@pytest.fixture(scope="module")
def tiny_vlm() -> Path:
    from models.vlm import build_tiny_qwen25_vl, default_cache_dir

    return build_tiny_qwen25_vl(default_cache_dir())


def _event(visitor: str, et: EventType, at: datetime, zone: str | None = None) -> VisitorEvent:
    return VisitorEvent(store_id=STORE, camera_id=CAM, visitor_id=visitor, event_type=et, timestamp=at,
                        zone_id=zone, event_id=uuid.uuid4())


def _wait(what: str, fn, timeout: float = 240.0, every: float = 0.5):
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = fn()
        if out:
            return out
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _ba_results(client: redis.Redis) -> list[BaResult]:
    return [BaResult.model_validate_json(f[b"json"]) for _, f in client.xrange(keys.lp_ba_results(STORE))]


def _alerts(client: redis.Redis) -> list[Alert]:
    return [Alert.model_validate_json(f[b"json"]) for _, f in client.xrange(keys.lp_alerts_stream(STORE))]


def test_escalation_to_verdict_to_alert(ray_cluster: None, redis_url: str, tiny_vlm: Path, tmp_path: Path) -> None:
    from ray import serve

    serve.shutdown()  # Serve keeps the HTTP port it first started with: start ours on a clean slate
    try:
        _scenario(redis_url, tiny_vlm, tmp_path)
    finally:
        serve.shutdown()  # and leave a clean one for the next test


def _scenario(redis_url: str, tiny_vlm: Path, tmp_path: Path) -> None:
    import ray

    from cluster.fleet import Fleet, deploy_serve, load_serve_config
    from deployments.behaviour import watcher_actor_name


    client = redis.Redis.from_url(redis_url)
    for k in client.scan_iter(f"sf:{{{STORE}}}:*"):
        client.delete(k)
    cfg = FleetConfig.model_validate({
        "stores": [{"id": STORE, "cameras": [{"id": CAM, "source": "synthetic:empty", "zones": [
            {"id": "PHONES", "type": "HIGH_VALUE", "polygon": [[0, 0], [600, 0], [600, 500], [0, 500]]}]}]}],
        "behaviour": {"analysis_interval_s": 0.5, "evidence": {"root": str(tmp_path / "evidence")},
                      "vlm": {"model": str(tiny_vlm), "frames": 4, "max_pixels": 112 * 112, "min_pixels": 56 * 56,
                              "max_tokens": 96, "reason_max_chars": 40, "max_model_len": 2048, "cpu_kv_cache_gb": 1,
                              "timeout_s": 120}},
    })
    schema = load_serve_config(Path(__file__).parents[1] / "ray_config.yaml", cfg, redis_url, http_port=PORT)
    schema.applications = [a for a in schema.applications if a.name in ("api", "behaviour")]
    t0 = time.time()
    deploy_serve(schema, timeout_s=480)
    deployed_s = time.time() - t0
    fleet = Fleet(cfg, redis_url)
    fleet.start_stores()
    fleet.start_rules()  # rule actor + behavioural-analysis watcher of the store
    assert watcher_actor_name(STORE) in fleet.rules
    store_actor = fleet.stores[STORE]

    # The camera side: the real recorder, fed like the camera runner feeds it.
    recorder = EvidenceRecorder(cfg.behaviour.evidence, STORE, cfg.stores[0].cameras[0],
                                open_store(cfg.behaviour.evidence), VisitIndex(client, STORE))
    image = np.full((576, 768, 3), 90, np.uint8)
    cv2.rectangle(image, (250, 140), (350, 440), (40, 60, 200), -1)
    box = (240.0, 130.0, 360.0, 450.0)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def visit(visitor: str, poses: list[np.ndarray], t: datetime) -> datetime:
        enter = _event(visitor, EventType.ZONE_ENTER, t, "PHONES")
        ray.get(store_actor.append.remote([enter]))
        recorder.on_frame(image, t, [_Obs(visitor, box)], Detections(np.array([box]), np.array([0.9]), HANG[None]),
                          [enter])
        for i, kp in enumerate(poses):
            ts = t + timedelta(milliseconds=500 * (i + 1))
            recorder.on_frame(image, ts, [_Obs(visitor, box)],
                              Detections(np.array([box]), np.array([0.9]), kp[None]), [])
        end = t + timedelta(milliseconds=500 * (len(poses) + 1))
        exit_ = _event(visitor, EventType.ZONE_EXIT, end, "PHONES")
        recorder.on_frame(None, end, [], None, [exit_])
        ray.get(store_actor.append.remote([exit_]))
        return end

    # A shopper whose hand goes from the shelf to the waistband, and one who only browses.
    end = visit("V-THIEF", [HANG, REACH, REACH, WAIST, WAIST, WAIST, HANG], start)
    visit("V-BROWSE", [HANG] * 6, start + timedelta(seconds=1))

    results = _wait("both verdicts", lambda: (r := _ba_results(client)) and len(r) >= 2 and r, timeout=480)
    by_visitor = {r.visitor_id: r for r in results}
    thief, browse = by_visitor["V-THIEF"], by_visitor["V-BROWSE"]
    assert browse.status == "no_match" and browse.model_extra["analysis"] == "pose_prefilter"
    assert browse.frames_analyzed == 0  # the model never saw it
    assert thief.model_extra["analysis"] == "vlm", thief
    assert thief.status in ("suspicious", "no_match", "no_enough_data")
    assert "unusable model answer" not in thief.vlm_response  # guided decoding kept the JSON valid
    assert thief.frames_analyzed == 4 and 0.0 <= (thief.confidence or 0) <= 1.0
    assert "hand_to_waist (left)" in thief.model_extra["motions"]

    # The rules applied the verdict; leaving without checkout makes a bypass alert, CRITICAL iff suspicious.
    session = _wait("verdict applied", lambda: (raw := client.hget(keys.lp_sessions(STORE), "V-THIEF")) and
                    (s := __import__("json").loads(raw)).get("last_ba") and s)
    assert session["last_ba"]["status"] == thief.status
    ray.get(store_actor.append.remote([_event("V-THIEF", EventType.EXIT, end + timedelta(seconds=2))]))
    bypass = _wait("bypass alert", lambda: next((a for a in _alerts(client) if a.alert_type == "CHECKOUT_BYPASS"),
                                                None))
    assert bypass.severity == ("CRITICAL" if thief.status == "suspicious" else "WARNING")
    assert any(a.alert_type == "CONCEALMENT" for a in _alerts(client)) == (thief.status == "suspicious")

    # Evidence: the frames of the thief's visit were copied for the alert and are served over HTTP.
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as http:
        ev = _wait("evidence", lambda: (r := http.get(f"/api/v1/lp/alerts/{bypass.alert_id}/evidence")).status_code
                   == 200 and r.json()["frames"] and r.json())
        assert len(ev["frames"]) == 8 and {f["zone_id"] for f in ev["frames"]} == {"PHONES"}
        img = http.get(ev["frames"][0]["url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(img.content, np.uint8), cv2.IMREAD_COLOR) is not None
    totals = ray.get(fleet.rules[watcher_actor_name(STORE)].status.remote())["totals"]
    assert totals["model_calls"] == 1 and totals["prefilter_passed"] == 1
    print(f"\nbehaviour app deployed in {deployed_s:.0f} s; verdict {thief.status} ({thief.vlm_response!r})")
    fleet.stop()
