"""Per-camera person tracking: a thin wrapper over Roboflow's `trackers.ByteTrackTracker`.

The wrapper exists for three reasons: it translates our `TrackerConfig` (seconds, legacy
ByteTrack thresholds) into the library's units, it reports which confirmed tracks *ended* on a
frame (the zone state machine needs that to close visits), and it owns the id space so that ids
are never reused on one camera, even across a stream reset. All state is plain Python / numpy, so
the whole object pickles (the camera actor checkpoints it).

Mapping from `TrackerConfig` (quirks of trackers 2.6):
    * `lost_track_buffer` is in 30-fps frames: we pass `round(lost_track_buffer_s * 30)` and the
      camera's processed fps, and feed capture timestamps, so the buffer is enforced in seconds.
    * `minimum_matching_threshold` is the legacy ByteTrack *cost* threshold (1 - IoU, default 0.8);
      the library wants a minimum IoU, so we pass `1 - minimum_matching_threshold`.
    * New tracks only spawn from the first-stage ("high") detections, so the high/low split is set
      to `track_activation_threshold`; lower-scored boxes still extend existing tracks.
    * The Kalman state is SORT's (centre, area, aspect ratio) rather than the library's default
      corners: a walking person keeps their aspect ratio, so a predicted box keeps a person's shape.
      On TUD-Campus it turned IDF1 0.545 into 0.562 (the reference tracker: 0.558), the same on
      TUD-Stadtmitte (docs/accuracy.md).
    * The library gives a track its id when it is *matched*, never on the frame it spawns; with
      `minimum_consecutive_frames=1` the wrapper confirms a new track on its first frame instead (that
      setting means "every detection is a person": e.g. boxes that are already another tracker's output).

Observation-centric recovery (as in OC-SORT): the Kalman prediction of a person who turns (walks
along the corridor, then into the door) overshoots, and for the 25-30 px wide people near the door
its overlap with the next detection falls under the threshold, so ByteTrack spawns a new track and
the person's door crossing is lost. After ByteTrack, a track lost for under RESCUE_MAX_GAP_S takes
over a track spawned on this frame whose box overlaps the lost track's *last detection* (not its
prediction) by RESCUE_IOU, unless their colours clearly differ.

Stitching (when frames are passed): people who stop behind someone, or in a knot of three, vanish
for one to three seconds and come back as a new track, so the shopper who entered is not the one
who pays. A track newly confirmed near where a recently lost track could have walked to, with the
same height and similar colours, takes the lost track's id. Without images the colours are
unknown, and position alone over seconds swapped people on TUD-Stadtmitte, so this step needs frames.

Appearance gate (when frames are passed to `update`): ByteTrack associates by box overlap alone, so
when two people cross, a track can jump to the other person and stay there (on synthetic store
clips that is how a staff member's track, and its staff flag, passed to a shopper). Each confirmed
track keeps a running colour embedding (`workloads.appearance`) learned from frames where nobody
stands in front of it; an association between a track and an unoccluded detection whose colours
clearly differ (similarity below `APPEARANCE_VETO`) is vetoed. The veto plugs into the library as
its IoU metric, so ByteTrack's two-stage association is otherwise unchanged.

Example:
    >>> import numpy as np
    >>> from workloads.config import TrackerConfig
    >>> tr = PersonTracker(TrackerConfig(), fps=5.0)
    >>> for t in (0.0, 0.2):
    ...     out = tr.update(np.array([[0, 0, 40, 100]]), np.array([0.9]), timestamp=t)
    >>> out.track_ids.tolist(), out.ended
    ([0], [])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import supervision as sv
from scipy.optimize import linear_sum_assignment
from trackers import ByteTrackTracker
from trackers.utils.iou import BaseIoU
from trackers.utils.state_representations import XCYCSRStateEstimator

from workloads.appearance import Embedding, embed, in_front, occluded, similarity_matrix
from workloads.config import TrackerConfig

#: Default of `TrackerConfig.appearance_veto`: similarity below which a track and an unoccluded
#: detection are different people. On synthetic
#: clips the same person 2 s apart scored >= 0.58 in 99 % of pairs (>= 0.71 in 95 %), a uniform
#: against street clothes <= 0.21 in 99 %, two shoppers 0.40 at the median (docs/accuracy.md).
APPEARANCE_VETO = 0.45
#: Observation-centric recovery: a track lost for at most this long takes a new track's detection
#: when that detection overlaps the track's *last observed* box by at least RESCUE_IOU.
RESCUE_MAX_GAP_S = 0.5
RESCUE_IOU = 0.3
#: Stitching (needs frames): a track newly confirmed within STITCH_MAX_GAP_S of a track's loss, near
#: where a walker could have got to (STITCH_SPEED_H person heights per second, plus half a height),
#: of similar height and colours at least STITCH_MIN_SIMILARITY alike, continues the lost track.
STITCH_MAX_GAP_S = 3.0
STITCH_SPEED_H = 1.0
STITCH_MIN_SIMILARITY = 0.7
#: A new track may be stitched during its first STITCH_YOUNG_S (its first views are often occluded).
STITCH_YOUNG_S = 1.5
#: Running-embedding weight of a new observation, and observations before the model is trusted.
APPEARANCE_RATE = 0.2
APPEARANCE_MIN_SAMPLES = 3


class _AppearanceGatedIoU(BaseIoU):
    """IoU, zeroed where a confirmed track's colours clearly disagree with an unoccluded detection's.

    ByteTrack calls `compute(predicted track boxes, detection boxes)`; rows are recognised as tracks
    by their current state box (`tracker.tracks`), columns as detections by their box
    (`det_embeddings`, filled by `PersonTracker.update` for the frame).
    """

    def __init__(self, veto: float) -> None:
        self.veto = veto
        self.tracker: ByteTrackTracker | None = None
        self.models: dict[int, tuple[Embedding, int]] = {}  # raw track id -> (embedding, samples)
        self.det_embeddings: dict[bytes, Embedding] = {}  # detection box bytes -> embedding (this frame)
        self.learnable: set[bytes] = set()  # detections seen whole (no one in front) this frame

    def _compute(self, boxes_1: np.ndarray, boxes_2: np.ndarray) -> np.ndarray:
        iou = np.asarray(sv.box_iou_batch(boxes_1, boxes_2), dtype=np.float64)
        if not self.det_embeddings or not self.models:
            return iou
        assert self.tracker is not None
        states = [(t.get_state_bbox(), int(t.tracker_id)) for t in self.tracker.tracks if t.tracker_id != -1]
        rows = []
        for i, box in enumerate(boxes_1):
            tid = next((t for b, t in states if np.array_equal(b, box)), None)
            model = self.models.get(tid) if tid is not None else None
            if model is not None and model[1] >= APPEARANCE_MIN_SAMPLES:
                rows.append((i, model[0]))
        cols = [(j, self.det_embeddings.get(np.asarray(b, np.float32).tobytes())) for j, b in enumerate(boxes_2)]
        cols = [(j, e) for j, e in cols if e is not None]
        if rows and cols:
            sim = similarity_matrix([e for _, e in rows], [e for _, e in cols])
            for a, (i, _) in enumerate(rows):
                for b, (j, _) in enumerate(cols):
                    if sim[a, b] < self.veto:
                        iou[i, j] = 0.0
        return iou


@dataclass(frozen=True)
class TrackUpdate:
    """Confirmed tracks matched on one frame, plus the confirmed tracks that ended on it.

    Attributes:
        track_ids: (K,) int64, sorted ascending.
        boxes: (K, 4) float32 detection boxes (not Kalman estimates) `x1, y1, x2, y2`.
        scores: (K,) float32 detection scores.
        ended: ids of confirmed tracks the tracker dropped on this frame (lost for good).
    """

    track_ids: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    ended: list[int]


def _covered(box: npt.NDArray[np.float32], others: list[npt.NDArray[np.float64]], min_cover: float = 0.12) -> bool:
    """Whether any of `others` covers at least `min_cover` of `box`."""
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)
    for o in others:
        ix = min(box[2], o[2]) - max(box[0], o[0])
        iy = min(box[3], o[3]) - max(box[1], o[1])
        if ix > 0 and iy > 0 and ix * iy / area >= min_cover:
            return True
    return False


class PersonTracker:
    """ByteTrack for one camera, configured in seconds. Feed frames in capture-time order."""

    def __init__(self, cfg: TrackerConfig, fps: float, *, first_track_id: int = 0) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.cfg = cfg
        self.fps = float(fps)
        self._id_base = int(first_track_id)
        self._raw_next = 0  # one past the largest raw id this tracker has handed out
        self._tracker = self._new_tracker()

    def _new_tracker(self) -> ByteTrackTracker:
        self._gate = _AppearanceGatedIoU(getattr(self.cfg, "appearance_veto", APPEARANCE_VETO))
        tracker = ByteTrackTracker(
            iou=self._gate,
            state_estimator_class=XCYCSRStateEstimator,
            lost_track_buffer=max(1, round(self.cfg.lost_track_buffer_s * 30.0)),
            frame_rate=self.fps,
            track_activation_threshold=self.cfg.track_activation_threshold,
            minimum_consecutive_frames=self.cfg.minimum_consecutive_frames,
            minimum_iou_threshold=1.0 - self.cfg.minimum_matching_threshold,
            high_conf_det_threshold=self.cfg.track_activation_threshold,
        )
        self._gate.tracker = tracker
        return tracker

    def _confirmed_raw(self) -> set[int]:
        return {int(t.tracker_id) for t in self._tracker.tracks if t.tracker_id != -1}

    @property
    def alive_ids(self) -> list[int]:
        """Confirmed tracks the tracker still keeps (matched now or within the lost buffer)."""
        return sorted(self._id_base + i for i in self._confirmed_raw())

    def appearance(self, track_id: int, min_samples: int = APPEARANCE_MIN_SAMPLES) -> Embedding | None:
        """The running colour embedding of a confirmed track (None until it has `min_samples` clean views)."""
        gate = self.__dict__.get("_gate")
        model = gate.models.get(track_id - self._id_base) if gate is not None else None
        return model[0] if model is not None and model[1] >= min_samples else None

    def update(
        self,
        boxes: npt.ArrayLike,
        scores: npt.ArrayLike,
        timestamp: float | None = None,
        frame: npt.NDArray[np.uint8] | None = None,
    ) -> TrackUpdate:
        """Associate one frame's person boxes with tracks.

        Args:
            boxes: (N, 4) `x1, y1, x2, y2` pixels.
            scores: (N,) detection scores.
            timestamp: capture time in seconds (epoch), non-decreasing; None = fixed-rate mode
                (one call = one frame at `fps`). Do not mix the two modes on one tracker.
            frame: the BGR image; enables the appearance gate (see the module docstring).
        """
        xyxy = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        conf = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(xyxy) != len(conf):
            raise ValueError(f"boxes and scores disagree on N: {len(xyxy)} vs {len(conf)}")
        before = self._confirmed_raw()
        gate = self.__dict__.get("_gate") or _AppearanceGatedIoU(0.0)  # checkpoints from before the gate
        gate.det_embeddings, learnable = {}, set()
        if frame is not None and len(xyxy) and gate.tracker is not None:
            hidden = occluded(xyxy)
            for k, (box, is_hidden) in enumerate(zip(xyxy, hidden.tolist(), strict=True)):
                # A partly hidden person's visible pixels still veto a swap; only clear views teach.
                e = embed(frame, box, hide=in_front(xyxy, k) if is_hidden else None)
                if e is not None:
                    gate.det_embeddings[box.tobytes()] = e
                    if not is_hidden:
                        learnable.add(box.tobytes())
        gate.learnable = learnable
        known = {id(t) for t in self._tracker.tracks}
        result = self._tracker.update(sv.Detections(xyxy=xyxy, confidence=conf), timestamp=timestamp)
        self._rescue(result, [t for t in self._tracker.tracks if id(t) not in known], timestamp, gate)
        if self.cfg.minimum_consecutive_frames <= 1:
            self._confirm_spawned(result)
        if gate.det_embeddings:
            self._stitch(result, before, timestamp, gate)
        ended_raw = before - self._confirmed_raw()
        ended = sorted(self._id_base + i for i in ended_raw)
        tid = np.asarray(result.tracker_id, dtype=np.int64).reshape(-1)
        keep = tid != -1
        if keep.any():
            self._raw_next = max(self._raw_next, int(tid[keep].max()) + 1)
        last_obs = self.__dict__.setdefault("_last_obs", {})
        for raw in ended_raw:
            gate.models.pop(raw, None)
            last_obs.pop(raw, None)
        now = timestamp if timestamp is not None else self._frames / self.fps
        born = self.__dict__.setdefault("_born", {})
        for raw in ended_raw:
            born.pop(raw, None)
        for raw, box in zip(tid[keep].tolist(), np.asarray(result.xyxy, dtype=np.float64)[keep], strict=True):
            last_obs[raw] = (box, now)
            born.setdefault(raw, now)
        if gate.det_embeddings:
            # Learn only from detections no other track overlaps: one box over two people (the detector
            # merges people who stand close) would teach a track the other person's colours.
            states = {int(t.tracker_id): t.get_state_bbox() for t in self._tracker.tracks if t.tracker_id != -1}
            for raw, box in zip(tid[keep].tolist(), np.asarray(result.xyxy, dtype=np.float32)[keep], strict=True):
                e = gate.det_embeddings.get(box.tobytes()) if box.tobytes() in learnable else None
                others = [b for r, b in states.items() if r != raw]
                if e is not None and not _covered(box, others):
                    old = gate.models.get(raw)
                    new = e if old is None else (1 - APPEARANCE_RATE) * old[0] + APPEARANCE_RATE * e
                    gate.models[raw] = (new.astype(np.float32), 1 if old is None else old[1] + 1)
        gate.det_embeddings, gate.learnable = {}, set()
        if not keep.any():
            empty = np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
            return TrackUpdate(*empty, ended)
        order = np.argsort(tid[keep], kind="stable")
        out_boxes = np.asarray(result.xyxy, dtype=np.float32)[keep][order]
        out_conf = np.asarray(result.confidence, dtype=np.float32)[keep][order]
        return TrackUpdate(tid[keep][order] + self._id_base, out_boxes, out_conf, ended)

    def _rescue(
        self, result: sv.Detections, spawned: list[Any], timestamp: float | None, gate: _AppearanceGatedIoU
    ) -> None:
        """Observation-centric recovery: lost tracks take over new tracks near their last detection."""
        self._frames = self.__dict__.get("_frames", 0) + 1
        last_obs: dict[int, tuple[npt.NDArray[np.float64], float]] = self.__dict__.setdefault("_last_obs", {})
        now = timestamp if timestamp is not None else self._frames / self.fps
        lost = [
            t for t in self._tracker.tracks
            if t.tracker_id != -1 and t.time_since_update > 0 and int(t.tracker_id) in last_obs
            and now - last_obs[int(t.tracker_id)][1] <= RESCUE_MAX_GAP_S
        ]
        if not lost or not spawned:
            return
        new_boxes = np.array([np.asarray(t.get_state_bbox(), dtype=np.float64) for t in spawned])
        iou = np.asarray(
            sv.box_iou_batch(np.array([last_obs[int(t.tracker_id)][0] for t in lost]), new_boxes), dtype=np.float64
        )
        for i, t in enumerate(lost):
            model = gate.models.get(int(t.tracker_id))
            if model is None or model[1] < APPEARANCE_MIN_SAMPLES:
                continue
            for j, box in enumerate(new_boxes):
                e = gate.det_embeddings.get(box.astype(np.float32).tobytes())
                if e is not None and similarity_matrix([model[0]], [e])[0, 0] < gate.veto:
                    iou[i, j] = 0.0
        ids = np.asarray(result.tracker_id).reshape(-1)
        boxes = np.asarray(result.xyxy, dtype=np.float64).reshape(-1, 4)
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if iou[r, c] < RESCUE_IOU:
                continue
            old, new = lost[r], spawned[c]
            hit = np.flatnonzero((ids == new.tracker_id) & np.all(np.abs(boxes - new_boxes[c]) < 1e-3, axis=1))
            if not len(hit):
                continue
            old.update(new_boxes[c])
            self._tracker.tracks.remove(new)
            ids[hit[0]] = old.tracker_id
        result.tracker_id = ids

    def _stitch(
        self, result: sv.Detections, before: set[int], timestamp: float | None, gate: _AppearanceGatedIoU
    ) -> None:
        """Tracks confirmed on this frame continue recently lost look-alike tracks nearby (see module doc)."""
        last_obs: dict[int, tuple[npt.NDArray[np.float64], float]] = self.__dict__.setdefault("_last_obs", {})
        now = timestamp if timestamp is not None else self.__dict__.get("_frames", 0) / self.fps
        born: dict[int, float] = self.__dict__.setdefault("_born", {})
        ids = np.asarray(result.tracker_id).reshape(-1)
        boxes = np.asarray(result.xyxy, dtype=np.float64).reshape(-1, 4)
        fresh = [k for k in range(len(ids)) if ids[k] != -1 and now - born.get(int(ids[k]), now) <= STITCH_YOUNG_S]
        lost = [
            t for t in self._tracker.tracks
            if t.tracker_id != -1 and t.time_since_update > 0 and int(t.tracker_id) in last_obs
            and now - last_obs[int(t.tracker_id)][1] <= STITCH_MAX_GAP_S
        ]
        if not fresh or not lost:
            return
        score = np.zeros((len(lost), len(fresh)))
        for i, t in enumerate(lost):
            model = gate.models.get(int(t.tracker_id))
            if model is None or model[1] < APPEARANCE_MIN_SAMPLES:
                continue
            last_box, last_t = last_obs[int(t.tracker_id)]
            h_last = last_box[3] - last_box[1]
            reach = (0.5 + STITCH_SPEED_H * (now - last_t)) * h_last
            for j, k in enumerate(fresh):
                if last_t > born.get(int(ids[k]), now) + 1e-6:
                    continue  # both seen at once: two people, not one
                box = boxes[k]
                key = box.astype(np.float32).tobytes()
                e = gate.det_embeddings.get(key) if key in gate.learnable else None
                h = box[3] - box[1]
                far = np.hypot(*((box[:2] + box[2:]) / 2 - (last_box[:2] + last_box[2:]) / 2)) > reach
                if e is None or far or not 0.75 <= h / max(h_last, 1e-9) <= 1.33:
                    continue
                sim = float(similarity_matrix([model[0]], [e])[0, 0])
                if sim >= STITCH_MIN_SIMILARITY:
                    score[i, j] = sim
        rows, cols = linear_sum_assignment(-score)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if score[r, c] <= 0:
                continue
            old, k = lost[r], fresh[c]
            new = next(t for t in self._tracker.tracks if t.tracker_id == ids[k])
            for table in (gate.models, last_obs, born):
                table.pop(int(new.tracker_id), None)
            new.tracker_id = old.tracker_id
            self._tracker.tracks.remove(old)
            ids[k] = old.tracker_id
        result.tracker_id = ids

    def _confirm_spawned(self, result: sv.Detections) -> None:
        """Give tracks spawned on this frame their id now (the library waits for a second frame)."""
        ids = np.asarray(result.tracker_id).reshape(-1)
        boxes = np.asarray(result.xyxy, dtype=np.float64).reshape(-1, 4)
        for t in self._tracker.tracks:
            if t.tracker_id != -1 or t.time_since_update != 0:
                continue
            spawned = np.asarray(t.get_state_bbox(), dtype=np.float64)
            hit = np.flatnonzero((ids == -1) & np.all(np.abs(boxes - spawned) < 1e-3, axis=1))
            if len(hit):
                t.tracker_id = self._tracker._allocate_tracker_id()
                ids[hit[0]] = t.tracker_id
        result.tracker_id = ids

    def reset(self) -> list[int]:
        """Start over (stream discontinuity); returns the confirmed ids dropped. Ids are never reused."""
        dropped = self.alive_ids
        self._id_base += self._raw_next
        self._raw_next = 0
        self._tracker = self._new_tracker()
        return dropped
