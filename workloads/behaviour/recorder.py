"""Camera side of behavioural analysis: keep person crops while someone is inside a HIGH_VALUE zone.

The camera runner calls `on_frame` after the event engine processed a frame, with the engine's
events and observations (visitor -> box) and the detector's keypoints. A HIGH_VALUE ZONE_ENTER opens
a visit (named by that event's id), its ZONE_EXIT closes it; in between, the visitor's crop and
keypoints are stored at `crop_fps`. Why here and not in the engine: the engine is pure state that is
checkpointed; crops are side effects, and this recorder rebuilds its few open visits from Redis
after a restart (`resume`). Replayed frames rewrite the same keys (timestamps name frames).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from workloads.behaviour.evidence import EvidenceStore, crop_person, frame_key
from workloads.behaviour.settings import EvidenceConfig
from workloads.behaviour.visits import FrameRecord, VisitIndex, VisitRecord
from workloads.config import CameraConfig, ZoneType
from workloads.events import EventType, VisitorEvent

log = logging.getLogger(__name__)


class Observed(Protocol):
    """What the recorder needs of `CameraEventEngine.observations` entries."""

    visitor_id: str
    box: tuple[float, float, float, float]
    is_staff: bool


@dataclass
class _Open:
    visit_id: str
    last_ms: int | None
    frames: int


def _ms(ts: datetime) -> int:
    return round(ts.timestamp() * 1000)


def match_keypoints(
    box: Sequence[float], boxes: npt.NDArray[np.float32] | None, keypoints: npt.NDArray[np.float32] | None
) -> npt.NDArray[np.float32] | None:
    """The keypoints of the detection whose box is `box` (the tracker hands back detection boxes; the
    best IoU >= 0.9 is taken to be the same detection)."""
    if boxes is None or keypoints is None or len(boxes) == 0:
        return None
    b = np.asarray(box, dtype=np.float64)
    bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(bx[:, 2], b[2]) - np.maximum(bx[:, 0], b[0]), 0, None)
    iy = np.clip(np.minimum(bx[:, 3], b[3]) - np.maximum(bx[:, 1], b[1]), 0, None)
    inter = ix * iy
    union = (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = inter / np.maximum(union, 1e-9)
    i = int(np.argmax(iou))
    return np.asarray(keypoints[i], dtype=np.float32) if iou[i] >= 0.9 else None


class EvidenceRecorder:
    """Per camera; not thread-safe (the camera loop's thread calls it)."""

    def __init__(
        self, cfg: EvidenceConfig, store_id: str, camera: CameraConfig, store: EvidenceStore, index: VisitIndex
    ) -> None:
        self.cfg, self.store_id, self.camera_id = cfg, store_id, camera.id
        self.store, self.index = store, index
        self.zones = {z.id for z in camera.zones if z.type == ZoneType.HIGH_VALUE}
        self.period_ms = 1000.0 / cfg.crop_fps
        self._open: dict[tuple[str, str], _Open] = {}
        self.frames_written = 0

    @property
    def active(self) -> bool:
        """False for cameras without a HIGH_VALUE zone: nothing to do, ever."""
        return bool(self.zones)

    def resume(self, fresh: bool, now_ms: int) -> None:
        """After (re)start: reload this camera's open visits, or close them when the engine starts fresh
        (its tracks, and so those visits' people, are gone)."""
        for v in self.index.open_visits(self.camera_id):
            if fresh:
                self.index.close_visit(v.visit_id, now_ms)
            else:
                frames = self.index.frames(v.visit_id)
                self._open[(v.visitor_id, v.zone_id)] = _Open(
                    v.visit_id, frames[-1].ts_ms if frames else None, len(frames))

    def on_frame(
        self,
        image: npt.NDArray[np.uint8] | None,
        ts: datetime,
        observations: Iterable[Observed],
        detections: Any,
        events: Iterable[VisitorEvent],
    ) -> None:
        """One processed frame: open/close visits from its events, then store due crops.

        `image` and `detections` are None at the end of a stream (only events then)."""
        if not self.zones:
            return
        for e in events:
            if e.zone_id not in self.zones:
                continue
            key = (e.visitor_id, e.zone_id)
            if e.event_type == EventType.ZONE_ENTER:
                vid = str(e.event_id)
                self.index.open_visit(VisitRecord(visit_id=vid, camera_id=self.camera_id, visitor_id=e.visitor_id,
                                                  zone_id=e.zone_id, opened_ms=_ms(e.timestamp)))
                self._open[key] = _Open(vid, None, self.index.frame_count(vid))
            elif e.event_type == EventType.ZONE_EXIT:
                v = self._open.pop(key, None)
                if v is not None:
                    self.index.close_visit(v.visit_id, _ms(e.timestamp))
        if image is None or not self._open:
            return
        now = _ms(ts)
        boxes = getattr(detections, "boxes", None)
        kps = getattr(detections, "keypoints", None)
        seen = {o.visitor_id: o for o in observations if not o.is_staff}
        for (visitor, zone), v in self._open.items():
            o = seen.get(visitor)
            if o is None or v.frames >= self.cfg.max_frames_per_visit:
                continue
            if v.last_ms is not None and now - v.last_ms < self.period_ms - 1:
                continue
            try:
                jpeg, rect = crop_person(image, o.box, self.cfg.crop_margin, self.cfg.crop_max_side,
                                         self.cfg.jpeg_quality)
            except ValueError:
                continue
            kp = match_keypoints(o.box, boxes, kps)
            key = frame_key(self.store_id, visitor, zone, v.visit_id, now)
            self.store.put(key, jpeg)  # bytes first: an indexed frame always has its image
            self.index.add_frame(v.visit_id, FrameRecord(
                ts_ms=now, key=key, box=tuple(float(x) for x in o.box), crop=rect,
                keypoints=kp.round(2).tolist() if kp is not None else None))
            v.last_ms, v.frames = now, v.frames + 1
            self.frames_written += 1
