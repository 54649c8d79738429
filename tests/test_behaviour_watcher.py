"""The camera-side recorder and the store's watcher over a real Redis (no Ray; the model is a plain callable)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from models.detections import Detections
from workloads.behaviour.evidence import FilesystemStore, alert_prefix
from workloads.behaviour.prefilter import standing_pose
from workloads.behaviour.recorder import EvidenceRecorder
from workloads.behaviour.settings import BehaviourConfig
from workloads.behaviour.verdict import Status, Verdict
from workloads.behaviour.visits import VisitIndex
from workloads.behaviour.watcher import AnalysisRequest, BehaviourWatcher, evidence_frames
from workloads.config import CameraConfig
from workloads.events import EventType, VisitorEvent
from workloads.lp.models import Alert, BaResult, Escalation
from workloads.state import keys

S, CAM, ZONE = "S1", "C1", "PHONES"
T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
BOX = (100.0, 50.0, 200.0, 350.0)


class _Obs:
    def __init__(self, visitor_id: str) -> None:
        self.visitor_id, self.box, self.is_staff = visitor_id, BOX, False


def _kp(wrist: tuple[float, float] | None = None, elbow: tuple[float, float] | None = None) -> np.ndarray:
    kp = standing_pose()
    if wrist:
        kp[9, :2] = wrist
    if elbow:
        kp[7, :2] = elbow
    return kp


HANG, REACH, WAIST = _kp(), _kp((215, 95), (170, 95)), _kp((112, 180), (150, 140))


def _event(visitor: str, et: EventType, at: datetime) -> VisitorEvent:
    return VisitorEvent(store_id=S, camera_id=CAM, visitor_id=visitor, event_type=et, timestamp=at, zone_id=ZONE,
                        event_id=uuid.uuid4())


def _record(rec: EvidenceRecorder, visitor: str, poses: list[np.ndarray], start: datetime) -> VisitorEvent:
    """A visit as the camera runner reports it: enter, one frame every 250 ms, exit. Returns the enter event."""
    enter = _event(visitor, EventType.ZONE_ENTER, start)
    image = np.full((400, 400, 3), 80, np.uint8)
    rec.on_frame(image, start, [_Obs(visitor)], Detections(np.array([BOX]), np.array([0.9]), HANG[None]), [enter])
    for i, kp in enumerate(poses, 1):
        rec.on_frame(image, start + timedelta(milliseconds=250 * i), [_Obs(visitor)],
                     Detections(np.array([BOX]), np.array([0.9]), kp[None]), [])
    rec.on_frame(None, start + timedelta(seconds=5), [], None,
                 [_event(visitor, EventType.ZONE_EXIT, start + timedelta(seconds=5))])
    return enter


def _escalate(client: redis.Redis, visitor: str, visit_id: str, action: str) -> None:
    esc = Escalation(escalation_id=f"esc-{visit_id}" + ("-stop" if action == "stop" else ""), action=action,
                     service="behavioral_analysis", handler="ba_orchestrator", rule_id="behavioral_analysis",
                     store_id=S, visitor_id=visitor, zone_id=ZONE, camera_id=CAM, visit_id=visit_id, at=T0,
                     params={"start_id": f"esc-{visit_id}"} if action == "stop" else {})
    client.xadd(keys.lp_escalations(S), {"escalation_id": esc.escalation_id, "json": esc.model_dump_json()})


@pytest.fixture
def setup(redis_client: redis.Redis, tmp_path):
    cfg = BehaviourConfig.model_validate({"evidence": {"root": str(tmp_path), "crop_fps": 2.0, "visit_keep_s": 60},
                                          "analysis_interval_s": 0.1})
    cam = CameraConfig(id=CAM, source="synthetic:empty", zones=[
        {"id": ZONE, "type": "HIGH_VALUE", "polygon": [(0, 0), (400, 0), (400, 400), (0, 400)]},
        {"id": "SHELF", "type": "PRODUCT", "polygon": [(0, 0), (400, 0), (400, 400), (0, 400)]}])
    store = FilesystemStore(tmp_path)
    rec = EvidenceRecorder(cfg.evidence, S, cam, store, VisitIndex(redis_client, S))
    return cfg, store, rec


def test_recorder_keeps_crops_at_the_configured_rate(redis_client: redis.Redis, setup) -> None:
    _cfg, store, rec = setup
    enter = _record(rec, "V1", [HANG] * 8, T0)  # 8 frames over 2 s at 4 fps -> kept at 2 fps
    idx = VisitIndex(redis_client, S)
    frames = idx.frames(str(enter.event_id))
    assert [f.ts_ms - frames[0].ts_ms for f in frames] == [0, 500, 1000, 1500, 2000]
    assert all(f.keypoints is not None for f in frames)
    assert store.get(frames[0].key)[:2] == b"\xff\xd8"  # a JPEG
    assert idx.visit(str(enter.event_id)).closed_ms == int((T0 + timedelta(seconds=5)).timestamp() * 1000)


@pytest.mark.parametrize(
    ("poses", "verdict", "expected"),
    [
        ([HANG] * 8, None, ("no_match", "pose_prefilter", 0)),  # nothing to see: the model is never called
        ([HANG], None, ("no_enough_data", "pose_prefilter", 0)),  # 2 pose frames < min_frames (3)
        ([HANG, REACH, REACH, WAIST, WAIST, WAIST, WAIST, HANG], Status.SUSPICIOUS, ("suspicious", "vlm", 4)),
        ([HANG, REACH, REACH, WAIST, WAIST, WAIST, WAIST, HANG], Status.NO_MATCH, ("no_match", "vlm", 4)),
    ],
    ids=["browse", "too-short", "motion-suspicious", "motion-cleared"],
)
def test_watcher_answers_escalations(redis_client: redis.Redis, setup, poses, verdict, expected) -> None:
    cfg, store, rec = setup
    cfg = cfg.model_copy(update={"prefilter": cfg.prefilter.model_copy(update={"min_frames": 3})})
    calls: list[AnalysisRequest] = []

    def analyze(reqs: list[AnalysisRequest]) -> list[Verdict]:
        calls.extend(reqs)
        return [Verdict(status=verdict, confidence=0.7, reason="test")] * len(reqs)

    enter = _record(rec, "V1", poses, T0)
    vid = str(enter.event_id)
    _escalate(redis_client, "V1", vid, "start")
    _escalate(redis_client, "V1", vid, "stop")
    w = BehaviourWatcher(redis_client, S, cfg, store, analyze, clock=lambda: (T0 + timedelta(seconds=10)).timestamp())
    w.step()
    w.step()  # nothing new: no second result
    rows = redis_client.xrange(keys.lp_ba_results(S))
    (result,) = [BaResult.model_validate_json(f[b"json"]) for _, f in rows]
    assert (result.status, result.model_extra["analysis"], result.frames_analyzed) == expected
    assert len(calls) == (1 if verdict else 0)
    if calls:
        assert len(calls[0].images) == 4 and calls[0].motions == ["hand_to_waist (left)"]
    assert w.watches()[vid].done
    assert VisitIndex(redis_client, S).visit(vid).pinned == (expected[0] == "suspicious")


def test_alert_evidence_and_retention(redis_client: redis.Redis, setup) -> None:
    cfg, store, rec = setup
    enter = _record(rec, "V1", [HANG] * 4, T0)
    _record(rec, "V2", [HANG] * 4, T0)
    alert = Alert(alert_id="al-1", alert_type="CHECKOUT_BYPASS", severity="WARNING", rule_id="checkout_bypass",
                  store_id=S, visitor_id="V1", zone_id="@exit", timestamp=T0 + timedelta(seconds=30),
                  created_at=T0 + timedelta(seconds=30))
    redis_client.xadd(keys.lp_alerts_stream(S), {"alert_id": alert.alert_id, "json": alert.model_dump_json()})
    now = [(T0 + timedelta(seconds=40)).timestamp()]
    w = BehaviourWatcher(redis_client, S, cfg, store, None, clock=lambda: now[0])
    w.step()
    frames = evidence_frames(redis_client, S, "al-1")
    assert len(frames) == 3 and {f["visit_id"] for f in frames} == {str(enter.event_id)}  # V1's visit only
    assert store.get(frames[0]["key"])[:2] == b"\xff\xd8"
    now[0] += 120  # past visit_keep_s: V2's visit (no alert) goes, V1's (pinned by the alert) stays
    assert w.sweep() == 1
    assert [v.visitor_id for v in VisitIndex(redis_client, S).visits()] == ["V1"]
    now[0] += cfg.evidence.evidence_retention_days * 86400
    assert w.sweep() == 1
    assert store.list(alert_prefix(S, "al-1")) == [] and evidence_frames(redis_client, S, "al-1") is None
