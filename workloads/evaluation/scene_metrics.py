"""Business accuracy of one pipeline run against a synthetic clip's ground truth.

Which true person is a visitor id? Every processed frame, the engine's tracked boxes are matched to
the true boxes (Hungarian on IoU >= 0.3); an event belongs to the person its visitor's box matched
most often within 1 s of the event (over the whole visit for zone exits). Events of unmatched boxes
(false detections) belong to nobody.

Metrics (each a count pair or an error, so scenes pool by summing):
    * entries / exits: inward (ENTRY + REENTRY) and outward door crossings of non-staff visitors,
      measured vs true.
    * unique visitors: distinct non-staff visitor ids with an ENTRY or REENTRY (store analytics'
      definition), vs true people who entered.
    * re-entry precision / recall: a REENTRY is right when its person really re-entered within 3 s
      of it *and* its visitor id's first ENTRY was that same person (the link is right, not just the
      label).
    * zone dwell: measured visits (ZONE_EXIT with its dwell) matched to true visits of the same person
      and zone with time overlap; mean absolute dwell error of matched visits, visit recall/precision.
    * queue depth: people in the billing queue each second, from the queue zone's visits, measured vs
      true; mean absolute error over seconds where either is non-zero.
    * staff exclusion precision / recall, per event: flagged `is_staff` vs the event's person being staff.
    * conversion: the product's rule (`conversion.conversion_rate`) on the measured events and the
      scene's POS transactions, vs the true conversion (true payers / true unique visitors).
    * tracking: MOTA and IDF1 of the engine's tracks vs the true boxes (motmetrics), people at least
      30 % visible; the others are neither required nor counted as false positives.

Example:
    >>> m = SceneMetrics(scene="s", entries=(10, 10), exits=(9, 10))
    >>> round(m.abs_error("entries"), 2), round(m.abs_error("exits"), 2)
    (0.0, 0.1)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from workloads.camera_engine import Observation
from workloads.config import CameraConfig, ZoneType
from workloads.evaluation.conversion import conversion_rate, unique_visitors
from workloads.evaluation.pipeline import PipelineRun
from workloads.events import EventType, VisitorEvent
from workloads.synthetic.truth import GroundTruth

MATCH_IOU = 0.3
REENTRY_TOLERANCE_S = 3.0
VISIT_OVERLAP = 0.2
#: People less visible than this are "don't care" for tracking metrics.
MIN_VISIBILITY = 0.3


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, M) IoU of `x1, y1, x2, y2` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(pred: npt.ArrayLike, true: npt.ArrayLike, min_iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """Optimal one-to-one matching (pred index, true index) with IoU >= min_iou."""
    m = iou_matrix(pred, true)
    if m.size == 0:
        return []
    rows, cols = linear_sum_assignment(-m)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if m[r, c] >= min_iou]


@dataclass
class SceneMetrics:
    """Measured vs true for one clip; pairs are (measured, true)."""

    scene: str
    entries: tuple[int, int] = (0, 0)
    exits: tuple[int, int] = (0, 0)
    unique_visitors: tuple[int, int] = (0, 0)
    reentry_tp: int = 0
    reentry_pred: int = 0
    reentry_true: int = 0
    reentry_found: int = 0
    visits_matched: int = 0
    visits_pred: int = 0
    visits_true: int = 0
    dwell_abs_err_s: float = 0.0  # summed over matched visits
    dwell_true_s: float = 0.0  # summed over matched visits
    queue_abs_err: float = 0.0  # summed over seconds
    queue_seconds: int = 0
    staff_tp: int = 0
    staff_flagged: int = 0
    staff_true: int = 0
    conversion: tuple[float, float] = (0.0, 0.0)
    purchased: tuple[int, int] = (0, 0)
    mota: float = float("nan")
    idf1: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)

    def abs_error(self, name: str) -> float:
        measured, true = getattr(self, name)
        return abs(measured - true) / true if true else float(measured != 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- identity


class PersonMap:
    """Which true person each visitor id's box was, frame by frame."""

    def __init__(self, truth: GroundTruth, observations: list[tuple[int, list[Observation]]]) -> None:
        self.fps = truth.fps
        self.by_visitor: dict[str, list[tuple[int, int | None, bool]]] = defaultdict(list)
        pids = np.array([p.pid for p in truth.persons])
        for f, obs in observations:
            present = np.flatnonzero(~np.isnan(truth.boxes[f, :, 0]))
            matches = dict(match_boxes([o.box for o in obs], truth.boxes[f, present]))
            for k, o in enumerate(obs):
                pid = int(pids[present[matches[k]]]) if k in matches else None
                self.by_visitor[o.visitor_id].append((f, pid, o.is_staff))

    def person(self, visitor_id: str, t0: float, t1: float | None = None) -> int | None:
        """Majority true person of a visitor between t0 and t1 (seconds of clip; ±1 s around t0 if no t1)."""
        rows = self.by_visitor.get(visitor_id, [])
        if not rows:
            return None
        lo, hi = (t0 - 1.0, t0 + 1.0) if t1 is None else (t0 - 0.5, t1 + 0.5)
        near = [pid for f, pid, _ in rows if lo <= f / self.fps <= hi]
        if not near:  # not observed then (e.g. a zone exit closed after the track was lost): nearest frame
            f_near = min(rows, key=lambda r: abs(r[0] / self.fps - t0))
            near = [f_near[1]]
        votes = Counter(near)
        pid, _ = votes.most_common(1)[0]
        return pid


# ---------------------------------------------------------------------------------------------- metrics


def evaluate_run(
    truth: GroundTruth,
    run: PipelineRun,
    camera: CameraConfig,
    epoch: datetime,
    scene: str = "",
) -> SceneMetrics:
    """All accuracy metrics of one run (see the module docstring)."""
    t0 = epoch.timestamp()
    evs = run.events

    def rel(e: VisitorEvent) -> float:
        return e.timestamp.timestamp() - t0

    pmap = PersonMap(truth, run.observations)
    staff_pids = truth.staff_pids
    m = SceneMetrics(scene=scene)

    # counts ------------------------------------------------------------------------------------
    non_staff = [e for e in evs if not e.is_staff]
    true_ns = [e for e in truth.events if e.pid not in staff_pids]
    m.entries = (
        sum(e.event_type in (EventType.ENTRY, EventType.REENTRY) for e in non_staff),
        sum(e.event_type in (EventType.ENTRY, EventType.REENTRY) for e in true_ns),
    )
    m.exits = (
        sum(e.event_type == EventType.EXIT for e in non_staff),
        sum(e.event_type == EventType.EXIT for e in true_ns),
    )
    m.unique_visitors = (len(unique_visitors(evs)), truth.unique_visitors)

    # re-entry ----------------------------------------------------------------------------------
    first_entry: dict[str, VisitorEvent] = {}
    for e in evs:
        if e.event_type == EventType.ENTRY and e.visitor_id not in first_entry:
            first_entry[e.visitor_id] = e
    true_re = [e for e in true_ns if e.event_type == EventType.REENTRY]
    used: set[int] = set()
    pred_re = [e for e in non_staff if e.event_type == EventType.REENTRY]
    for e in pred_re:
        pid = pmap.person(e.visitor_id, rel(e))
        first = first_entry.get(e.visitor_id)
        linked = first is not None and pmap.person(first.visitor_id, rel(first)) == pid
        hit = next(
            (k for k, te in enumerate(true_re)
             if k not in used and te.pid == pid and abs(te.t - rel(e)) <= REENTRY_TOLERANCE_S),
            None,
        )
        if pid is not None and linked and hit is not None:
            used.add(hit)
            m.reentry_tp += 1
    m.reentry_pred, m.reentry_true, m.reentry_found = len(pred_re), len(true_re), len(used)

    # zone visits and dwell ---------------------------------------------------------------------
    pred_visits = []
    for e in evs:
        if e.event_type == EventType.ZONE_EXIT:
            end = rel(e)
            start = end - e.dwell_ms / 1000.0
            pred_visits.append((pmap.person(e.visitor_id, start, end), e.zone_id, start, end))
    true_visits = list(truth.visits)
    taken: set[int] = set()
    for pid, zid, s, t in sorted(pred_visits, key=lambda v: v[2]):
        best, best_k = 0.0, None
        for k, tv in enumerate(true_visits):
            if k in taken or tv.pid != pid or tv.zone_id != zid:
                continue
            inter = max(0.0, min(t, tv.end) - max(s, tv.start))
            union = max(t, tv.end) - min(s, tv.start)
            ov = inter / union if union > 0 else float(abs(s - tv.start) < 0.5)
            if ov > best:
                best, best_k = ov, k
        if best_k is not None and best >= VISIT_OVERLAP:
            taken.add(best_k)
            tv = true_visits[best_k]
            m.visits_matched += 1
            m.dwell_abs_err_s += abs((t - s) - tv.dwell_s)
            m.dwell_true_s += tv.dwell_s
    m.visits_pred, m.visits_true = len(pred_visits), len(true_visits)

    # queue depth -------------------------------------------------------------------------------
    queue_zones = {z.id for z in camera.zones if z.type == ZoneType.BILLING_QUEUE}
    pred_q = [(zid, s, t) for _, zid, s, t in pred_visits if zid in queue_zones]
    duration = truth.n_frames / truth.fps
    for zid in queue_zones:
        for sec in np.arange(0.0, duration, 1.0):
            true_d = truth.queue_depth_at(zid, float(sec))
            pred_d = sum(1 for z, s, t in pred_q if z == zid and s <= sec <= t)
            if true_d or pred_d:
                m.queue_abs_err += abs(pred_d - true_d)
                m.queue_seconds += 1

    # staff -------------------------------------------------------------------------------------
    for e in evs:
        pid = pmap.person(e.visitor_id, rel(e))
        is_true_staff = pid is not None and pid in staff_pids
        m.staff_flagged += int(e.is_staff)
        m.staff_true += int(is_true_staff)
        m.staff_tp += int(e.is_staff and is_true_staff)

    # conversion --------------------------------------------------------------------------------
    tx_times = [t0 + tx.t for tx in truth.transactions]
    conv, bought, _ = conversion_rate(evs, tx_times, [camera])
    true_buyers = {tx.pid for tx in truth.transactions} - staff_pids
    m.conversion = (conv, truth.conversion)
    m.purchased = (bought, len(true_buyers))

    # tracking ----------------------------------------------------------------------------------
    m.mota, m.idf1 = track_scores(truth, run.observations)
    return m


def track_scores(truth: GroundTruth, observations: list[tuple[int, list[Observation]]]) -> tuple[float, float]:
    """MOTA and IDF1 of the engine's tracks on the processed frames (motmetrics)."""
    from workloads.evaluation.mot import motmetrics

    mm = motmetrics()
    acc = mm.MOTAccumulator(auto_id=True)
    ids: dict[str, int] = {}
    for f, obs in observations:
        present = [i for i in range(len(truth.persons)) if not np.isnan(truth.boxes[f, i, 0])]
        care = [i for i in present if truth.visibility[f, i] >= MIN_VISIBILITY]
        dont = [i for i in present if truth.visibility[f, i] < MIN_VISIBILITY]
        boxes = np.array([o.box for o in obs]).reshape(-1, 4)
        # Tracks on barely visible people are neither hits nor false positives: drop them first.
        if dont and len(boxes):
            drop = {p for p, _ in match_boxes(boxes, truth.boxes[f, dont], 0.5)}
            keep = [k for k in range(len(obs)) if k not in drop]
        else:
            keep = list(range(len(obs)))
        hyp = [ids.setdefault(obs[k].visitor_id, len(ids)) for k in keep]
        if care and keep:
            dist = 1.0 - iou_matrix(truth.boxes[f, care], boxes[keep])
        else:
            dist = np.zeros((len(care), len(keep)))
        dist = np.where(dist > 0.5, np.nan, dist)
        acc.update([truth.persons[i].pid for i in care], hyp, dist)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1"], name="scene")
    return float(summary["mota"].iloc[0]), float(summary["idf1"].iloc[0])
