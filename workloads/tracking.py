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
    * A track gets its id when it is *matched*, never on the frame it spawns, so even with
      `minimum_consecutive_frames=1` a person shows up on their second frame at the earliest.

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

import numpy as np
import numpy.typing as npt
import supervision as sv
from trackers import ByteTrackTracker

from workloads.config import TrackerConfig


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
        return ByteTrackTracker(
            lost_track_buffer=max(1, round(self.cfg.lost_track_buffer_s * 30.0)),
            frame_rate=self.fps,
            track_activation_threshold=self.cfg.track_activation_threshold,
            minimum_consecutive_frames=self.cfg.minimum_consecutive_frames,
            minimum_iou_threshold=1.0 - self.cfg.minimum_matching_threshold,
            high_conf_det_threshold=self.cfg.track_activation_threshold,
        )

    def _confirmed_raw(self) -> set[int]:
        return {int(t.tracker_id) for t in self._tracker.tracks if t.tracker_id != -1}

    @property
    def alive_ids(self) -> list[int]:
        """Confirmed tracks the tracker still keeps (matched now or within the lost buffer)."""
        return sorted(self._id_base + i for i in self._confirmed_raw())

    def update(
        self, boxes: npt.ArrayLike, scores: npt.ArrayLike, timestamp: float | None = None
    ) -> TrackUpdate:
        """Associate one frame's person boxes with tracks.

        Args:
            boxes: (N, 4) `x1, y1, x2, y2` pixels.
            scores: (N,) detection scores.
            timestamp: capture time in seconds (epoch), non-decreasing; None = fixed-rate mode
                (one call = one frame at `fps`). Do not mix the two modes on one tracker.
        """
        xyxy = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        conf = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(xyxy) != len(conf):
            raise ValueError(f"boxes and scores disagree on N: {len(xyxy)} vs {len(conf)}")
        before = self._confirmed_raw()
        result = self._tracker.update(sv.Detections(xyxy=xyxy, confidence=conf), timestamp=timestamp)
        ended = sorted(self._id_base + i for i in before - self._confirmed_raw())
        tid = np.asarray(result.tracker_id, dtype=np.int64).reshape(-1)
        keep = tid != -1
        if keep.any():
            self._raw_next = max(self._raw_next, int(tid[keep].max()) + 1)
        if not keep.any():
            empty = np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
            return TrackUpdate(*empty, ended)
        order = np.argsort(tid[keep], kind="stable")
        out_boxes = np.asarray(result.xyxy, dtype=np.float32)[keep][order]
        out_conf = np.asarray(result.confidence, dtype=np.float32)[keep][order]
        return TrackUpdate(tid[keep][order] + self._id_base, out_boxes, out_conf, ended)

    def reset(self) -> list[int]:
        """Start over (stream discontinuity); returns the confirmed ids dropped. Ids are never reused."""
        dropped = self.alive_ids
        self._id_base += self._raw_next
        self._raw_next = 0
        self._tracker = self._new_tracker()
        return dropped
