"""One camera actor per camera: wires a `CameraRunner` to the detector, its store actor and Redis.

The loop runs on a thread started in `__init__`, so when Ray restarts a killed actor
(`max_restarts=-1`) the new instance resumes from its Redis checkpoint without anyone calling it.
A second thread publishes what changes with time alone (staleness, recent fps, Redis reachability):
the loop only publishes when it processes or flushes, so a stuck loop would otherwise freeze them.
Each detector call and each event batch gets a trace id in the structured logs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from typing import Any

import ray
import redis
from ray import serve

from cluster.assets import resolve_source
from deployments.logging import configure_logging, new_trace_id, trace
from deployments.metrics import CameraMetrics
from deployments.store_actor import NAMESPACE, store_actor_name
from workloads.behaviour.evidence import open_store
from workloads.behaviour.recorder import EvidenceRecorder
from workloads.behaviour.visits import VisitIndex
from workloads.camera_runner import CameraRunner, CameraStatus
from workloads.config import CameraConfig, CameraRole, FleetConfig, StoreConfig
from workloads.events import VisitorEvent
from workloads.sources import FramePump, open_source
from workloads.state.checkpoints import CameraCheckpoint, CameraHealth, CheckpointStore

log = logging.getLogger("storefleet.camera")

#: How often the actor publishes staleness, recent fps and Redis reachability.
PUBLISH_EVERY_S = 2.0
#: Window of the fps gauge: frames processed over about this many seconds.
FPS_WINDOW_S = 10.0
#: Runner states in which the camera is not expected to deliver frames.
AT_REST = frozenset({"finished", "stopped"})


def camera_actor_name(camera_id: str) -> str:
    return f"camera:{camera_id}"


class _One:
    """A single-frame call's response, shaped like a multi-frame one (a list of Detections)."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def result(self) -> list[Any]:
        return [self.response.result()]


def _detect(detector: Any, images: list[Any], size: int | None) -> Any:
    # One live frame goes through the cross-camera batch; a backfill chunk is already a batch.
    if len(images) == 1:
        return _One(detector.detect.remote(images[0], size))
    return detector.detect_many.remote(images, size)


class _Traced:
    """A pending detector call with a trace id: one debug line per batch with its latency and status."""

    def __init__(self, pending: Any, frames: int, fields: dict[str, str]) -> None:
        self.pending, self.frames, self.fields = pending, frames, fields
        self.trace_id = new_trace_id()
        self.t0 = time.perf_counter()

    def result(self) -> list[Any]:
        status = "error"
        try:
            out = self.pending.result()
            status = "ok"
            return out
        finally:
            with trace(self.trace_id):
                log.debug("detector batch", extra={**self.fields, "frames": self.frames, "status": status,
                                                   "latency_ms": round((time.perf_counter() - self.t0) * 1000, 1)})


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.25, max_concurrency=4)
class CameraActor:
    def __init__(
        self,
        fleet: dict[str, Any],
        store_id: str,
        camera_id: str,
        redis_url: str,
        detector_app: str = "detector",
    ) -> None:
        configure_logging()
        cfg = FleetConfig.model_validate(fleet)
        store = cfg.store(store_id)
        camera = next(c for c in store.cameras if c.id == camera_id)
        self.camera_id = camera_id
        self.checkpoints = CheckpointStore(redis.Redis.from_url(redis_url))
        self.metrics = CameraMetrics(store_id, camera_id)
        if camera.realtime:  # a backfill camera has no rate to keep up with
            self.metrics.target_fps.set(camera.target_fps, self.metrics.tags)
        # Its own short timeouts: a hung Redis must show as errors, not block the publisher.
        self._ping_redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._started = time.time()
        self._fps_samples: deque[tuple[float, int]] = deque()
        fields = {"store": store_id, "camera": camera_id}
        if camera.role is CameraRole.SHELF:  # shelf frames go to the gap detector, not the person pipeline
            self._start_shelf(cfg, store, camera, redis_url)
            return
        detector = serve.get_deployment_handle("Detector", app_name=detector_app)
        store_actor = ray.get_actor(store_actor_name(store_id), namespace=NAMESPACE)
        self.store_id = store_id
        uri = resolve_source(camera.source)
        self._last_metrics: CameraStatus | None = None

        def make_pump(start: int) -> FramePump:
            return FramePump(
                open_source(uri), camera.target_fps, camera.realtime, camera.loop, start, camera.max_frames,
                depth=2 * cfg.detector.frames_per_call,
            )

        def send(events: list[VisitorEvent]) -> None:
            with trace():
                t0, status, res = time.perf_counter(), "error", {}
                try:
                    res = ray.get(store_actor.append.remote(events))
                    status = "ok"
                finally:
                    log.info("event batch", extra={
                        **fields, "events": len(events), "accepted": len(res.get("accepted", ())),
                        "duplicates": len(res.get("duplicates", ())), "status": status,
                        "latency_ms": round((time.perf_counter() - t0) * 1000, 1)})
            self.metrics.count_events([e.event_type for e in events])

        # Behavioural analysis: person crops while someone is inside a HIGH_VALUE zone of this camera.
        recorder = None
        if cfg.behaviour.enabled and any(z.type == "HIGH_VALUE" for z in camera.zones):
            recorder = EvidenceRecorder(cfg.behaviour.evidence, store_id, camera, open_store(cfg.behaviour.evidence),
                                        VisitIndex(redis.Redis.from_url(redis_url), store_id))
        self.runner = CameraRunner(
            cfg,
            store,
            camera,
            make_pump,
            detect=lambda imgs, size: _Traced(_detect(detector, imgs, size), len(imgs), fields),
            send_events=send,
            load_checkpoint=self._load_checkpoint,
            save_checkpoint=self._save_checkpoint,
            publish_status=self._publish,
            on_frame=recorder.on_frame if recorder else None,
        )
        if recorder:  # before the loop starts: reload (or close, on a fresh start) this camera's open visits
            recorder.resume(fresh=self.runner.checkpoint is None, now_ms=round(time.time() * 1000))
        self._done = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera:{camera_id}", daemon=True)
        self._thread.start()
        threading.Thread(target=self._publish_forever, name=f"camera-metrics:{camera_id}", daemon=True).start()

    def _start_shelf(self, cfg: FleetConfig, store: StoreConfig, camera: CameraConfig, redis_url: str) -> None:
        """A shelf camera: frames at a low rate through the gap detector (`deployments.shelf_camera`)."""
        from deployments.shelf_camera import shelf_runner

        self.store_id = store.id
        self._last_metrics = None
        self.runner = shelf_runner(cfg, store, camera, redis_url, self._publish)  # type: ignore[assignment]
        self._done = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"camera:{camera.id}", daemon=True)
        self._thread.start()
        threading.Thread(target=self._publish_forever, name=f"camera-metrics:{camera.id}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except Exception as e:
            log.exception("camera %s failed", self.camera_id)
            self._error = f"{type(e).__name__}: {e}"
        finally:
            self._done.set()

    def _load_checkpoint(self) -> bytes | None:
        cp = self.checkpoints.get_checkpoint(self.store_id, self.camera_id)
        return cp.blob if cp else None

    def _save_checkpoint(self, blob: bytes) -> None:
        self.checkpoints.put_checkpoint(self.store_id, self.camera_id, CameraCheckpoint(blob, self.runner.last_index))

    def _publish(self, st: CameraStatus) -> None:
        self.checkpoints.put_health(st.store_id, st.camera_id, CameraHealth.from_mapping(dataclasses.asdict(st)))
        m, prev = self.metrics, self._last_metrics
        for attr, counter in (("frames_read", m.read), ("frames_processed", m.processed),
                              ("frames_dropped", m.dropped), ("reconnects", m.reconnects)):
            delta = getattr(st, attr) - (getattr(prev, attr) if prev else 0)
            if delta > 0:
                counter.inc(delta, m.tags)
        m.tracks.set(st.active_tracks, m.tags)
        self._last_metrics = dataclasses.replace(st, counts=dict(st.counts))

    def _publish_forever(self) -> None:
        while True:
            try:
                self._publish_liveness(time.time())
            except Exception:  # the publisher must outlive any one bad round
                log.exception("camera %s: publishing metrics failed", self.camera_id)
            time.sleep(PUBLISH_EVERY_S)

    def _publish_liveness(self, now: float) -> None:
        """Staleness (since the last frame, or since start when none came), fps over the last
        `FPS_WINDOW_S`, whether frames are expected, and whether Redis answers a PING."""
        st, m = self.runner.status, self.metrics
        m.staleness.set(max(0.0, now - (st.last_frame_wall or self._started)), m.tags)
        m.expected.set(0.0 if st.state in AT_REST else 1.0, m.tags)
        samples = self._fps_samples
        samples.append((now, st.frames_processed))
        while len(samples) > 2 and samples[1][0] <= now - FPS_WINDOW_S:
            samples.popleft()
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        m.fps.set((n1 - n0) / (t1 - t0) if t1 > t0 else 0.0, m.tags)
        try:
            self._ping_redis.ping()
        except redis.RedisError as e:
            m.redis_errors.inc(1, {"store": self.store_id})
            log.warning("camera %s: Redis does not answer: %s", self.camera_id, e)

    def status(self) -> dict[str, Any]:
        return dataclasses.asdict(self.runner.status)

    def wait(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Block until the feed is finished (play-once) or stopped; returns the final status."""
        self._done.wait(timeout_s)
        if self._error:
            raise RuntimeError(f"camera {self.camera_id}: {self._error}")
        return self.status()

    def stop(self) -> dict[str, Any]:
        """Stop after flushing events and writing a checkpoint."""
        self.runner.stop()
        self._done.wait(30)
        return self.status()
