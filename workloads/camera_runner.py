"""The per-camera loop: frames -> detector -> tracker/zones -> event batches -> store, with checkpoints.

Why a class without Ray: the ordering rules that make a crash lose and duplicate nothing live here
and are testable with plain callables. `deployments.camera_actor` only plugs in the Serve handle,
the store actor and Redis.

Exactly-once, by construction:
1. Events get ids derived from (camera, frame index, visitor, type, zone).
2. A batch is sent to the store (which appends idempotently) and acknowledged *before* the
   checkpoint (engine state + last frame index) is written.
3. After a crash the runner restores the last checkpoint and replays frames after it: events it
   re-creates carry the same ids and the store drops them as duplicates.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from workloads.camera_engine import CameraEventEngine
from workloads.config import CameraConfig, FleetConfig, StoreConfig
from workloads.events import VisitorEvent
from workloads.sources import FramePump

log = logging.getLogger(__name__)


class Pending(Protocol):
    def result(self) -> Any: ...


@dataclass
class Checkpoint:
    """What a camera needs to resume: where it was and the tracker/zone state at that point."""

    frame_index: int  #: last frame whose events are acknowledged by the store
    origin: datetime  #: wall time of frame 0; event time = origin + pts
    engine: bytes
    finished: bool = False

    def dumps(self) -> bytes:
        return pickle.dumps(asdict(self), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, blob: bytes) -> Checkpoint:
        return cls(**pickle.loads(blob))


@dataclass
class CameraStatus:
    """Feed health, published for `GET /health` and metrics."""

    store_id: str
    camera_id: str
    state: str = "starting"  #: starting | running | reconnecting | finished | failed | stopped
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    events_sent: int = 0
    fps: float = 0.0
    last_frame_ts: str | None = None  #: feed time of the last processed frame (ISO-8601)
    last_frame_wall: float | None = None  #: unix time it was processed
    first_frame_wall: float | None = None  #: unix time the first frame of this run was processed
    active_tracks: int = 0
    error: str | None = None
    restored_from: int | None = None
    counts: dict[str, int] = field(default_factory=dict)


class CameraRunner:
    def __init__(
        self,
        fleet: FleetConfig,
        store: StoreConfig,
        camera: CameraConfig,
        make_pump: Callable[[int], FramePump],
        detect: Callable[[list[Any], int | None], Pending],
        send_events: Callable[[list[VisitorEvent]], Any],
        load_checkpoint: Callable[[], bytes | None],
        save_checkpoint: Callable[[bytes], None],
        publish_status: Callable[[CameraStatus], None] = lambda s: None,
        max_inflight: int = 2,
        clock: Callable[[], float] = time.time,
        on_frame: Callable[[Any, datetime, Any, Any, list[VisitorEvent]], None] | None = None,
    ) -> None:
        self.fleet, self.store, self.camera = fleet, store, camera
        self.detect, self.send_events = detect, send_events
        self.save_checkpoint, self.publish_status = save_checkpoint, publish_status
        self.max_inflight = max_inflight
        # Called after each processed frame with (image, ts, engine observations, detections, its events),
        # and once at the end of the stream with (None, ts, [], None, closing events): evidence crops.
        self.on_frame = on_frame
        self.clock = clock
        self.status = CameraStatus(store.id, camera.id)
        self._stop = threading.Event()
        self._pending_events: list[VisitorEvent] = []
        self._last_flush = clock()
        blob = load_checkpoint()
        self.checkpoint: Checkpoint | None = Checkpoint.loads(blob) if blob else None
        fps = min(camera.target_fps, 1000.0)
        if self.checkpoint:
            self.engine = CameraEventEngine.restore(self.checkpoint.engine)
            self.origin = self.checkpoint.origin
            start = self.checkpoint.frame_index + 1
            self.status.restored_from = self.checkpoint.frame_index
            # A live feed resumes at "now": frames during the downtime were never seen, so event time is
            # re-anchored to the wall clock at the first frame (ids do not depend on it).
            self._reanchor = camera.realtime
            log.info("camera %s resumes after frame %d", camera.id, self.checkpoint.frame_index)
        else:
            self.origin = datetime.fromtimestamp(clock(), UTC)
            prefix = f"{camera.id}-{self.origin:%y%m%d%H%M%S}"
            self.engine = CameraEventEngine(store, camera, fleet.tracker, fps, visitor_prefix=prefix)
            start = 0
        self.last_index = start - 1
        self.pump = make_pump(start)

    _reanchor = False

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> CameraStatus:
        """Process until the feed ends (play-once) or `stop()`; returns the final status."""
        if self.checkpoint and self.checkpoint.finished:
            self.status.state = "finished"
            self.publish_status(self.status)
            return self.status
        self.pump.start()
        inflight: deque[tuple[list[Any], Pending]] = deque()
        per_call = 1 if self.camera.realtime else self.fleet.detector.frames_per_call
        fps_window: deque[float] = deque(maxlen=30)
        self.status.state = "running"
        try:
            while not self._stop.is_set():
                frames = self.pump.get_many(per_call, timeout=0.2)
                if frames:
                    inflight.append((frames, self.detect([f.image for f in frames], self.camera.input_size)))
                if inflight and (len(inflight) >= self.max_inflight or not frames):
                    self._handle(*inflight.popleft(), fps_window)
                if not frames and not inflight and self.pump.finished:
                    break
                self._maybe_flush()
            while inflight:
                self._handle(*inflight.popleft(), fps_window)
            finished = self.pump.finished and not self._stop.is_set()
            if finished:
                closing = self.engine.close(self._ts(self.last_index + 1))
                if self.on_frame:
                    self.on_frame(None, self._ts(self.last_index + 1), [], None, closing)
                self._pending_events += closing
            self._flush(finished=finished)
            self.status.state = "finished" if finished else "stopped"
        except Exception as e:
            self.status.state = "failed"
            self.status.error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self.pump.stop()
            self._refresh_status()
        return self.status

    def _ts(self, index: int) -> datetime:
        fps = self.pump.native_fps or self.camera.target_fps
        return self.origin + timedelta(seconds=index / fps)

    def _handle(self, frames: list[Any], pending: Pending, fps_window: deque[float]) -> None:
        results = pending.result()
        st = self.status
        for frame, dets in zip(frames, results, strict=True):
            if self._reanchor:
                fps = self.pump.native_fps or self.camera.target_fps
                self.origin = datetime.fromtimestamp(self.clock(), UTC) - timedelta(seconds=frame.index / fps)
                self._reanchor = False
            ts = self._ts(frame.index)
            new = self.engine.process(frame.index, ts, dets.boxes, dets.scores, frame.image)
            if self.on_frame:
                self.on_frame(frame.image, ts, getattr(self.engine, "observations", []), dets, new)
            self._pending_events += new
            self.last_index = frame.index
            now = self.clock()
            fps_window.append(now)
            st.frames_processed += 1
            st.last_frame_ts = ts.isoformat()
            st.last_frame_wall = now
            st.first_frame_wall = st.first_frame_wall or now
        if len(fps_window) > 1:
            st.fps = (len(fps_window) - 1) / max(fps_window[-1] - fps_window[0], 1e-6)

    def _maybe_flush(self) -> None:
        due = self.clock() - self._last_flush >= self.fleet.event_batch_interval_s
        if due or len(self._pending_events) >= self.fleet.event_batch_max:
            self._flush()

    def _flush(self, finished: bool = False) -> None:
        events, self._pending_events = self._pending_events, []
        for e in events:
            self.status.counts[e.event_type] = self.status.counts.get(e.event_type, 0) + 1
        for i in range(0, len(events), self.fleet.event_batch_max):
            self.send_events(events[i : i + self.fleet.event_batch_max])  # returns only once stored
        self.status.events_sent += len(events)
        if self.last_index >= 0 or finished:
            cp = Checkpoint(self.last_index, self.origin, self.engine.snapshot(), finished)
            self.save_checkpoint(cp.dumps())
        self._last_flush = self.clock()
        self._refresh_status()

    def _refresh_status(self) -> None:
        st, p = self.status, self.pump
        st.frames_read, st.frames_dropped, st.reconnects = p.frames_read, p.frames_dropped, p.reconnects
        st.active_tracks = self.engine.active_tracks
        if p.error and st.state == "running":
            st.error = p.error
        self.publish_status(st)
