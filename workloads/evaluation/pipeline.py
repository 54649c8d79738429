"""Run the camera pipeline over a synthetic clip in one process: detector -> CameraEventEngine -> events.

This is the code a camera actor runs (`workloads.camera_runner`), minus Ray and Redis: the same
frame sampling (`sample_ordinal` at the camera's `target_fps`), the same detector runtime in chunks of
`frames_per_call`, the same engine. Keeping Ray out makes a full evaluation fit on a 2-core box;
`storefleet eval --cluster` plays a scene through the real fleet (Serve detector, actors, Redis) to
show the two agree.

Besides the events, it records what the engine saw on every processed frame (`Observation`s:
visitor id, box, staff flag), so the evaluation can tell which true person each visitor id was.

Example:
    >>> run = run_scene(scene, detect)  # doctest: +SKIP
    >>> run.frames, len(run.events)  # doctest: +SKIP
    (900, 212)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from workloads.camera_engine import CameraEventEngine, Observation
from workloads.config import FleetConfig
from workloads.events import VisitorEvent
from workloads.sources import sample_ordinal
from workloads.synthetic.scene import EPOCH, Scene

DetectFn = Callable[[Sequence[npt.NDArray[np.uint8]]], list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]]
"""BGR frames in, per frame (boxes (N, 4) xyxy, scores (N,)) out."""


@dataclass
class PipelineRun:
    """What the pipeline produced on one clip.

    Attributes:
        events: every event, in emission order (close() included).
        observations: per processed frame, (frame index of the clip, what the engine tracked).
        frames: processed frames.
        detect_s, engine_s: time spent in the detector and in the engine.
    """

    events: list[VisitorEvent]
    observations: list[tuple[int, list[Observation]]] = field(default_factory=list)
    frames: int = 0
    detect_s: float = 0.0
    engine_s: float = 0.0


def run_scene(
    scene: Scene,
    detect: DetectFn,
    fleet: FleetConfig | None = None,
    *,
    chunk: int | None = None,
    detections: dict[int, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] | None = None,
) -> PipelineRun:
    """Play a scene through the detector and one camera engine, as a backfill camera would.

    Args:
        scene: the clip.
        detect: the detector (see `DetectFn`).
        fleet: fleet config (tracker settings, staff rules, camera zones); default `scene.fleet_config()`.
        chunk: frames per detector call; default the fleet's `detector.frames_per_call`.
        detections: a cache of detector outputs by frame index, read and filled in: re-running
            the engine on a clip (tracker or rule changes) then skips the detector.
    """
    fleet = fleet or scene.fleet_config()
    store, camera = fleet.cameras()[0]
    fps = min(camera.target_fps, scene.fps)
    ticks_per_frame = fps / scene.fps
    engine = CameraEventEngine(store, camera, fleet.tracker, fps, visitor_prefix=f"{camera.id}-{scene.seed}")
    chunk = chunk or fleet.detector.frames_per_call
    sampled = [f for f in range(scene.n_frames) if sample_ordinal(f, ticks_per_frame) is not None]
    if camera.max_frames is not None:
        sampled = sampled[: camera.max_frames]
    run = PipelineRun(events=[])
    for k in range(0, len(sampled), chunk):
        idx = sampled[k : k + chunk]
        images = [scene.render(f) for f in idx]
        t0 = time.perf_counter()
        if detections is not None and all(f in detections for f in idx):
            dets = [detections[f] for f in idx]
        else:
            dets = detect(images)
            if detections is not None:
                detections.update(zip(idx, dets, strict=True))
        t1 = time.perf_counter()
        for f, img, (boxes, scores) in zip(idx, images, dets, strict=True):
            ts = EPOCH + timedelta(seconds=f / scene.fps)
            run.events += engine.process(f, ts, boxes, scores, img)
            run.observations.append((f, list(engine.observations)))
        run.detect_s += t1 - t0
        run.engine_s += time.perf_counter() - t1
        run.frames += len(idx)
    run.events += engine.close(EPOCH + timedelta(seconds=scene.n_frames / scene.fps))
    return run
