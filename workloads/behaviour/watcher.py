"""One store's behavioural-analysis loop (no Ray inside): escalations in, `ba_result`s and evidence out.

Per step:
    1. Escalations: read the store's escalation stream after this watcher's cursor. A `start` for the
       behavioural-analysis handler watches that visit; a `stop` marks it ended. Watch states and the
       cursor are written in one MULTI.
    2. Watched visits (every `analysis_interval_s`, and once more when ended): the pose pre-filter runs
       over the visit's stored keypoints. A motion not analysed before sends the last K frames to the
       vision-language model (all such visits of the step together, so the engine batches them); its
       verdict goes to the store's rules as a `ba_result`. An ended visit never analysed gets one result
       without the model: `no_match` (no motion) or `no_enough_data` (too few usable frames).
    3. Alerts: new alerts of the store (its alert stream, own cursor) get copies of the frames behind them:
       the visitor's HIGH_VALUE visits (of the alert's zone when it is one), up to the alert's time.
    4. Retention: visits that ended without suspicion lose their frames `visit_keep_s` later; evidence and
       suspicious visits go after `evidence_retention_days`.
Results carry ids derived from (visit, analysis number) and go through the rules' once-only stream
append, so a step repeated after a crash cannot apply a verdict twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel

from workloads.behaviour.evidence import EvidenceStore, alert_prefix
from workloads.behaviour.prefilter import Prefilter, PrefilterResult
from workloads.behaviour.settings import BehaviourConfig
from workloads.behaviour.verdict import Status, Verdict
from workloads.behaviour.visits import FrameRecord, VisitIndex, VisitRecord
from workloads.lp.models import Alert, BaResult, Escalation, derived_id
from workloads.lp.store import LpStore
from workloads.state import keys

log = logging.getLogger(__name__)

#: Escalation handler names this watcher answers (Intel's rules name it `ba_orchestrator`).
HANDLERS = frozenset({"ba_orchestrator", "behavioral_analysis", "behavioural_analysis"})
ESCALATION_CURSOR = "ba:escalations"
ALERT_CURSOR = "ba:alerts"
SWEEP_EVERY_S = 30.0


class WatchState(BaseModel):
    """The watcher's state for one escalated visit (Redis `sf:{S}:ba:watches`)."""

    visit_id: str
    escalation_id: str
    visitor_id: str
    zone_id: str
    camera_id: str | None = None
    started_ms: int
    stopped: bool = False
    done: bool = False
    analyses: int = 0
    model_calls: int = 0
    analysed_until_ms: int = 0
    suspicious: bool = False


@dataclass(frozen=True)
class AnalysisRequest:
    """What the model gets for one visit: the last K crops (JPEG) and what the pre-filter saw."""

    store_id: str
    visit_id: str
    visitor_id: str
    zone_id: str
    images: list[bytes]
    motions: list[str]


#: Runs many requests at once (the deployment batches them); same order out as in.
Analyzer = Callable[[list[AnalysisRequest]], list[Verdict]]


@dataclass
class StepStats:
    escalations: int = 0
    checks: int = 0
    prefilter_passed: int = 0
    model_calls: int = 0
    results: dict[str, int] = field(default_factory=dict)
    evidence_copied: int = 0
    swept_visits: int = 0
    prefilter_s: float = 0.0
    model_s: float = 0.0


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class _Cursor:
    def __init__(self, client: redis.Redis, store_id: str, stream: str, name: str) -> None:
        self.client, self.stream, self.key = client, stream, keys.consumer_cursor(store_id, name)

    def read(self, count: int = 200) -> tuple[list[dict[str, str]], str | None]:
        pos = self.client.get(self.key)
        res = self.client.xread({self.stream: _s(pos) if pos else "0-0"}, count=count)
        if not res:
            return [], None
        entries = res[0][1]
        rows = [{_s(k): _s(v) for k, v in f.items()} for _, f in entries]
        return rows, _s(entries[-1][0])


class BehaviourWatcher:
    """Not thread-safe: one loop drives it.

    Args:
        client: Redis.
        store_id: The store.
        cfg: Behaviour settings.
        store: Where crops are (the camera's recorder writes them).
        analyze: The vision-language model; None when none is deployed.
        clock: Wall clock in seconds (retention and check intervals).
    """

    def __init__(self, client: redis.Redis, store_id: str, cfg: BehaviourConfig, store: EvidenceStore,
                 analyze: Analyzer | None, clock: Callable[[], float] = time.time) -> None:
        self.client, self.store_id, self.cfg, self.store = client, store_id, cfg, store
        self.analyze, self.clock = analyze, clock
        self.index = VisitIndex(client, store_id)
        self.lp = LpStore(client)
        self.prefilter = Prefilter.from_file(cfg.prefilter.patterns_path())
        self._esc = _Cursor(client, store_id, keys.lp_escalations(store_id), ESCALATION_CURSOR)
        self._alerts = _Cursor(client, store_id, keys.lp_alerts_stream(store_id), ALERT_CURSOR)
        self._checked: dict[str, float] = {}
        self._swept = 0.0
        self.totals = StepStats()

    # ------------------------------------------------------------------ the loop

    def step(self) -> StepStats:
        st = StepStats()
        self._read_escalations(st)
        self._check_visits(st)
        self._copy_alert_evidence(st)
        if self.clock() - self._swept >= SWEEP_EVERY_S:
            self.sweep(st)
        self._add_totals(st)
        return st

    def watches(self) -> dict[str, WatchState]:
        raw = self.client.hgetall(keys.ba_watches(self.store_id))
        return {_s(k): WatchState.model_validate_json(v) for k, v in raw.items()}

    # ------------------------------------------------------------------ 1. escalations

    def _read_escalations(self, st: StepStats) -> None:
        rows, last = self._esc.read()
        if last is None:
            return
        watches = self.watches()
        changed: dict[str, WatchState] = {}
        for row in rows:
            esc = Escalation.model_validate_json(row["json"])
            st.escalations += 1
            if esc.action == "start":
                if esc.handler not in HANDLERS or not esc.visit_id or not esc.zone_id:
                    continue
                if esc.visit_id not in watches:
                    w = WatchState(visit_id=esc.visit_id, escalation_id=esc.escalation_id,
                                   visitor_id=esc.visitor_id, zone_id=esc.zone_id, camera_id=esc.camera_id,
                                   started_ms=_ms(esc.at))
                    watches[esc.visit_id] = changed[esc.visit_id] = w
            else:
                start_id = esc.params.get("start_id")
                for w in watches.values():
                    if w.escalation_id == start_id and not w.stopped:
                        w.stopped = True
                        changed[w.visit_id] = w
        pipe = self.client.pipeline(transaction=True)
        if changed:
            pipe.hset(keys.ba_watches(self.store_id), mapping={k: w.model_dump_json() for k, w in changed.items()})
        pipe.set(self._esc.key, last)
        pipe.execute()

    # ------------------------------------------------------------------ 2. pre-filter and model

    def _check_visits(self, st: StepStats) -> None:
        now = self.clock()
        todo: list[tuple[WatchState, list[FrameRecord], PrefilterResult]] = []
        for w in self.watches().values():
            if w.done:
                continue
            if not w.stopped and now - self._checked.get(w.visit_id, 0.0) < self.cfg.analysis_interval_s:
                continue
            self._checked[w.visit_id] = now
            frames = self.index.frames(w.visit_id)
            t0 = time.perf_counter()
            poses = [p for f in frames if (p := f.pose()) is not None]
            res = self.prefilter.run(poses)
            st.prefilter_s += time.perf_counter() - t0
            st.checks += 1
            todo.append((w, frames, res))

        calls: list[tuple[WatchState, list[FrameRecord], list[str]]] = []
        finals: list[tuple[WatchState, BaResult]] = []
        for w, frames, res in todo:
            fresh = [m for m in res.matches if round(m.end_ts * 1000) > w.analysed_until_ms]
            if fresh:
                st.prefilter_passed += 1
                motions = sorted({f"{m.pattern}" + (f" ({m.side})" if m.side else "") for m in fresh})
                calls.append((w, frames, motions))
                w.analysed_until_ms = max(round(m.end_ts * 1000) for m in fresh)
            elif w.stopped and w.analyses == 0:
                enough = res.usable_frames >= self.cfg.prefilter.min_frames
                status = Status.NO_MATCH if enough else Status.NO_ENOUGH_DATA
                reason = ("no hand-to-waist, pocket or bag motion in the pose keypoints" if enough else
                          f"{res.usable_frames} usable pose frames, {self.cfg.prefilter.min_frames} needed")
                finals.append((w, self._result(w, frames, Verdict(status=status, confidence=1.0 if enough else 0.0,
                                                                      reason=reason), 0, "pose_prefilter")))
            if w.stopped and not fresh:
                w.done = True

        verdicts = self._run_model(calls, st)
        for (w, frames, motions), verdict in zip(calls, verdicts, strict=True):
            k = min(len(frames), self.cfg.vlm.frames)
            model = self.analyze is not None
            finals.append((w, self._result(w, frames, verdict, k if model else 0,
                                           "vlm" if model else "pose_prefilter", motions)))
            if w.stopped:
                w.done = True

        for w, result in finals:
            w.analyses += 1
            w.suspicious = w.suspicious or result.status == Status.SUSPICIOUS
            self.lp.add_ba_result(self.store_id, result)
            st.results[result.status] = st.results.get(result.status, 0) + 1
        if todo:
            watches = {w.visit_id: w for w, *_ in todo}
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(keys.ba_watches(self.store_id), mapping={k: w.model_dump_json() for k, w in watches.items()})
            for w in watches.values():
                visit = self.index.visit(w.visit_id)
                if visit and w.suspicious and not visit.pinned:
                    pipe.hset(keys.ba_visits(self.store_id), w.visit_id,
                              visit.model_copy(update={"pinned": True}).model_dump_json())
            pipe.execute()

    def _run_model(self, calls: list[tuple[WatchState, list[FrameRecord], list[str]]], st: StepStats) -> list[Verdict]:
        if not calls:
            return []
        if self.analyze is None:
            return [Verdict(status=Status.NO_ENOUGH_DATA, confidence=0.0,
                            reason=f"pose matched ({', '.join(m)}) but no vision-language model is deployed")
                    for _, _, m in calls]
        reqs = []
        for w, frames, motions in calls:
            images = []
            for f in frames[-self.cfg.vlm.frames:]:
                try:
                    images.append(self.store.get(f.key))
                except KeyError:
                    continue
            reqs.append(AnalysisRequest(self.store_id, w.visit_id, w.visitor_id, w.zone_id, images, motions))
        t0 = time.perf_counter()
        try:
            verdicts = self.analyze(reqs)
        except Exception as e:  # a failed model call must not stall the store's loop
            log.exception("behavioural analysis call failed")
            verdicts = [Verdict(status=Status.NO_ENOUGH_DATA, confidence=0.0,
                                reason=f"analysis failed: {type(e).__name__}")] * len(reqs)
        st.model_s += time.perf_counter() - t0
        st.model_calls += len(reqs)
        for w, *_ in calls:
            w.model_calls += 1
        return verdicts

    def _result(self, w: WatchState, frames: list[FrameRecord], v: Verdict, analysed: int, source: str,
                motions: list[str] | None = None) -> BaResult:
        last = frames[-1].ts_ms if frames else w.started_ms
        last_ts = datetime.fromtimestamp(last / 1000, UTC)
        return BaResult(
            result_id=derived_id("ba", self.store_id, w.visit_id, w.analyses), visitor_id=w.visitor_id,
            zone_id=w.zone_id, status=str(v.status), confidence=v.confidence, frames_analyzed=analysed,
            vlm_response=v.reason, last_frame_ts=last_ts, timestamp=last_ts,
            visit_id=w.visit_id, escalation_id=w.escalation_id, analysis=source, motions=motions or [],
        )

    # ------------------------------------------------------------------ 3. alert evidence

    def _copy_alert_evidence(self, st: StepStats) -> None:
        rows, last = self._alerts.read(count=100)
        if last is None:
            return
        visits = self.index.visits()
        pipe = self.client.pipeline(transaction=True)
        now_ms = round(self.clock() * 1000)
        for row in rows:
            alert = Alert.model_validate_json(row["json"])
            frames = self.copy_evidence(alert, visits)
            if frames:
                st.evidence_copied += len(frames)
                pipe.set(keys.ba_evidence(self.store_id, alert.alert_id), json.dumps(frames))
                pipe.zadd(keys.ba_evidence_by_time(self.store_id), {alert.alert_id: now_ms})
                for vid in {f["visit_id"] for f in frames}:
                    rec = next(v for v in visits if v.visit_id == vid)
                    pipe.hset(keys.ba_visits(self.store_id), vid,
                              rec.model_copy(update={"pinned": True}).model_dump_json())
        pipe.set(self._alerts.key, last)
        pipe.execute()

    def copy_evidence(self, alert: Alert, visits: list[VisitRecord]) -> list[dict[str, Any]]:
        """Copy the frames behind `alert` into its evidence prefix; returns what was copied."""
        mine = [v for v in visits if v.visitor_id == alert.visitor_id]
        if alert.zone_id and any(v.zone_id == alert.zone_id for v in mine):
            mine = [v for v in mine if v.zone_id == alert.zone_id]
        until = _ms(alert.timestamp) + 1000
        out: list[dict[str, Any]] = []
        dst = alert_prefix(self.store_id, alert.alert_id)
        for v in sorted(mine, key=lambda v: v.opened_ms):
            if v.opened_ms > until:
                continue
            for f in self.index.frames(v.visit_id):
                if f.ts_ms > until:
                    break
                name = f"{v.visit_id}-{f.ts_ms}.jpg"
                try:
                    self.store.copy(f.key, dst + name)
                except KeyError:
                    continue
                out.append({"name": name, "key": dst + name, "visit_id": v.visit_id, "zone_id": v.zone_id,
                            "camera_id": v.camera_id, "ts_ms": f.ts_ms})
        return out

    # ------------------------------------------------------------------ 4. retention

    def sweep(self, st: StepStats | None = None) -> int:
        """Delete what retention says is due; returns the number of visits removed."""
        now = self.clock()
        self._swept = now
        ev = self.cfg.evidence
        keep_ms, open_ms = ev.visit_keep_s * 1000, ev.open_visit_max_s * 1000
        retention_ms = ev.evidence_retention_days * 86400 * 1000
        now_ms = now * 1000
        watches = self.watches()
        removed = 0
        for v in self.index.visits():
            w = watches.get(v.visit_id)
            if v.closed_ms is None:
                due = now_ms - v.opened_ms > open_ms
            elif v.pinned:
                due = now_ms - v.closed_ms > retention_ms
            else:
                due = now_ms - v.closed_ms > keep_ms and (w is None or w.done)
            if due:
                self.store.delete_prefix(v.prefix())
                self.index.forget(v.visit_id)
                self._checked.pop(v.visit_id, None)
                removed += 1
        old = self.client.zrangebyscore(keys.ba_evidence_by_time(self.store_id), "-inf", now_ms - retention_ms)
        for raw in old:
            alert_id = _s(raw)
            self.store.delete_prefix(alert_prefix(self.store_id, alert_id))
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(keys.ba_evidence(self.store_id, alert_id))
            pipe.zrem(keys.ba_evidence_by_time(self.store_id), alert_id)
            pipe.execute()
        if st is not None:
            st.swept_visits += removed
        return removed

    def _add_totals(self, st: StepStats) -> None:
        t = self.totals
        for name in ("escalations", "checks", "prefilter_passed", "model_calls", "evidence_copied", "swept_visits",
                     "prefilter_s", "model_s"):
            setattr(t, name, getattr(t, name) + getattr(st, name))
        for k, n in st.results.items():
            t.results[k] = t.results.get(k, 0) + n


def evidence_frames(client: redis.Redis, store_id: str, alert_id: str) -> list[dict[str, Any]] | None:
    """The evidence list of an alert (None: nothing was copied for it)."""
    raw = client.get(keys.ba_evidence(store_id, alert_id))
    return json.loads(raw) if raw else None
