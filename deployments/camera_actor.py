"""One camera actor per camera: wires a `CameraRunner` to the detector, its store actor and Redis.

The loop runs on a thread started in `__init__`, so when Ray restarts a killed actor
(`max_restarts=-1`) the new instance resumes from its Redis checkpoint without anyone calling it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

import ray
import redis
from ray import serve

from cluster.assets import resolve_source
from deployments.metrics import CameraMetrics
from deployments.store_actor import NAMESPACE, store_actor_name
from workloads.camera_runner import CameraRunner, CameraStatus
from workloads.config import FleetConfig
from workloads.events import VisitorEvent
from workloads.sources import FramePump, open_source
from workloads.state.checkpoints import CameraCheckpoint, CameraHealth, CheckpointStore

log = logging.getLogger("storefleet.camera")


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
        cfg = FleetConfig.model_validate(fleet)
        store = cfg.store(store_id)
        camera = next(c for c in store.cameras if c.id == camera_id)
        self.camera_id = camera_id
        self.checkpoints = CheckpointStore(redis.Redis.from_url(redis_url))
        self.metrics = CameraMetrics(store_id, camera_id)
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
            ray.get(store_actor.append.remote(events))
            self.metrics.count_events([e.event_type for e in events])

        self.runner = CameraRunner(
            cfg,
            store,
            camera,
            make_pump,
            detect=lambda imgs, size: _detect(detector, imgs, size),
            send_events=send,
            load_checkpoint=self._load_checkpoint,
            save_checkpoint=self._save_checkpoint,
            publish_status=self._publish,
        )
        self._done = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera:{camera_id}", daemon=True)
        self._thread.start()

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
        m.fps.set(st.fps, m.tags)
        m.tracks.set(st.active_tracks, m.tags)
        if st.last_frame_wall:
            m.staleness.set(max(0.0, time.time() - st.last_frame_wall), m.tags)
        self._last_metrics = dataclasses.replace(st, counts=dict(st.counts))

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
