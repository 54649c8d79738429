"""The shelf camera loop: frames at a low rate -> gap detector -> smoothed gaps per segment -> publish.

A camera with role `shelf` runs this instead of the person pipeline (`CameraRunner`): same frame
pump, same health reporting, no detector calls, no tracking, no visitor events. Shelves change
slowly and shoppers stand in front of them, so each segment's gap ratio is the median of its last
`smoothing_frames` frames (a shopper passing by hides a gap for a frame or two, not for the median).

No Ray here: `deployments.shelf_camera` plugs in Redis and the alert evaluation.

Example:
    >>> pump = lambda fps: FramePump(source, fps)  # doctest: +SKIP
    >>> runner = ShelfRunner(store, camera, pump, ClassicalGapDetector(), publish)  # doctest: +SKIP
    >>> runner.run().frames_processed  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from workloads.camera_runner import CameraStatus
from workloads.config import CameraConfig, StoreConfig
from workloads.inventory.gap_state import GapObservation
from workloads.inventory.shelf_gaps import GapDetector, SegmentGaps
from workloads.sources import FramePump

log = logging.getLogger(__name__)


class ShelfRunner:
    def __init__(
        self,
        store: StoreConfig,
        camera: CameraConfig,
        make_pump: Callable[[float], FramePump],
        detector: GapDetector,
        publish: Callable[[list[GapObservation]], None],
        publish_status: Callable[[CameraStatus], None] = lambda s: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`make_pump(fps)` opens the camera's frame pump at the analysis rate (see `fps`)."""
        self.store, self.camera, self.detector = store, camera, detector
        self.publish, self.publish_status, self.clock = publish, publish_status, clock
        self.segments = store.inventory.segments(camera.id)
        self.window = store.inventory.smoothing_frames
        self.history: dict[str, deque[SegmentGaps]] = {s.id: deque(maxlen=self.window) for s in self.segments}
        self.status = CameraStatus(store.id, camera.id)
        self.origin = datetime.fromtimestamp(clock(), UTC)
        self.last_index = -1
        self._stop = threading.Event()
        self.pump = make_pump(self.fps())
        if not self.segments:
            log.warning("shelf camera %s has no planogram segments: nothing to analyse", camera.id)

    def stop(self) -> None:
        self._stop.set()

    def fps(self) -> float:
        """Analysis rate: the camera's target, capped by the store's `shelf_max_fps`."""
        return min(self.camera.target_fps, self.store.inventory.shelf_max_fps)

    def smoothed(self, segment_id: str) -> tuple[float, tuple[int, ...], int]:
        """(median gap ratio, empty facings in at least half the frames, frames) of a segment."""
        hist = self.history[segment_id]
        ratios = [g.gap_ratio for g in hist]
        facings = hist[-1].facings
        counts = np.zeros(facings, dtype=int)
        for g in hist:
            for f in g.empty_facings:
                counts[f] += 1
        empty = tuple(int(f) for f in np.flatnonzero(counts * 2 > len(hist)))
        return float(np.median(ratios)), empty, len(hist)

    def process(self, index: int, pts_s: float, image: np.ndarray) -> list[GapObservation]:
        """Detect one frame's gaps and return the smoothed observation of every segment."""
        found = self.detector.detect(image, self.segments)
        at = self.origin + timedelta(seconds=pts_s)
        out = []
        aisle = {s.id: s.aisle for s in self.segments}
        for g in found:
            self.history[g.segment_id].append(g)
            ratio, empty, n = self.smoothed(g.segment_id)
            out.append(GapObservation(
                store_id=self.store.id, camera_id=self.camera.id, segment_id=g.segment_id, sku=g.sku,
                facings=g.facings, empty_facings=list(empty), gap_ratio=ratio, bare_fraction=g.bare_fraction,
                observed_at=at, frames=n, aisle=aisle.get(g.segment_id, ""),
            ))
        self.last_index = index
        return out

    def run(self) -> CameraStatus:
        """Analyse frames until the feed ends (play-once) or `stop()`; returns the final status."""
        self.pump.start()
        st = self.status
        st.state = "running"
        window: deque[float] = deque(maxlen=10)
        try:
            while not self._stop.is_set():
                frame = self.pump.get(timeout=0.5)
                if frame is None:
                    if self.pump.finished:
                        break
                    continue
                obs = self.process(frame.index, frame.pts_s, frame.image) if self.segments else []
                if obs:
                    self.publish(obs)
                now = self.clock()
                window.append(now)
                st.frames_processed += 1
                st.last_frame_ts = obs[0].observed_at.isoformat() if obs else st.last_frame_ts
                st.last_frame_wall = now
                st.first_frame_wall = st.first_frame_wall or now
                st.fps = (len(window) - 1) / max(window[-1] - window[0], 1e-6) if len(window) > 1 else 0.0
                self._refresh()
            st.state = "finished" if self.pump.finished and not self._stop.is_set() else "stopped"
        except Exception as e:
            st.state, st.error = "failed", f"{type(e).__name__}: {e}"
            raise
        finally:
            self.pump.stop()
            self._refresh()
        return st

    def _refresh(self) -> None:
        st, p = self.status, self.pump
        st.frames_read, st.frames_dropped, st.reconnects = p.frames_read, p.frames_dropped, p.reconnects
        if p.error and st.state == "running":
            st.error = p.error
        self.publish_status(st)
