"""The camera loop's crash contract, with plain callables in place of Ray and Redis:
a run that dies mid-way and resumes from its checkpoint stores exactly the events of a clean run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from models.detections import Detections
from tests.test_sources import ScriptedSource
from workloads.camera_runner import CameraRunner
from workloads.config import FleetConfig
from workloads.sources import FramePump

N_FRAMES = 60
FLEET = FleetConfig.model_validate({
    "event_batch_interval_s": 1e-6,  # flush after every frame: many checkpoints to crash between
    "stores": [{"id": "S1", "cameras": [{
        "id": "C1", "source": "scripted", "target_fps": 10, "loop": False, "realtime": False,
        "tripwires": [{"id": "door", "points": [[560, 100], [560, 400]], "inside_point": [300, 250]}],
        "zones": [{"id": "PLAZA", "type": "PRODUCT", "polygon": [[250, 150], [500, 150], [500, 350], [250, 350]],
                   "min_inside_s": 0.2, "exit_grace_s": 0.3}],
    }]}],
})


def walker_boxes(index: int) -> Detections:
    """Two people: one walks in through the door, across the plaza and out; one walks the other way."""
    people = []
    x1 = 720 - index * 12  # right to left: ENTRY, plaza visit
    x2 = 100 + index * 12  # left to right: plaza visit, EXIT
    for x in (x1, x2):
        if 0 < x < 760:
            people.append([x - 20, 180, x + 20, 300])  # feet at y=300
    boxes = np.array(people, np.float32).reshape(-1, 4)
    return Detections(boxes=boxes, scores=np.full(len(boxes), 0.9, np.float32),
                      keypoints=np.zeros((len(boxes), 17, 3), np.float32))


@dataclass
class Done:
    value: Any

    def result(self) -> Any:
        return self.value


class Crash(RuntimeError):
    pass


class Harness:
    """Store, checkpoint slot and detector for runners that share them, as a restarted actor would."""

    def __init__(self, clock_start: int = 0, live: bool = False) -> None:
        self.clock_start, self.live = clock_start, live
        self.stored: dict[str, Any] = {}
        self.appends = 0
        self.checkpoint: bytes | None = None
        self.fail_on_append: int | None = None

    def send(self, events: list[Any]) -> None:
        self.appends += 1
        if self.fail_on_append == self.appends:
            raise Crash("store went away")
        for e in events:
            self.stored.setdefault(str(e.event_id), e)  # idempotent by id, like the Redis script

    def runner(self) -> CameraRunner:
        store = FLEET.stores[0]
        # `live` marks the camera realtime (event-time semantics); the scripted pump still runs unpaced.
        camera = store.cameras[0].model_copy(update={"realtime": self.live})

        def make_pump(start: int) -> FramePump:
            return FramePump(ScriptedSource(N_FRAMES), camera.target_fps, False, False, start, depth=8)

        def save(blob: bytes) -> None:
            self.checkpoint = blob

        return CameraRunner(
            FLEET, store, camera, make_pump,
            detect=lambda imgs, size: Done([walker_boxes(int(img[0, 0, 0])) for img in imgs]),
            send_events=self.send, load_checkpoint=lambda: self.checkpoint, save_checkpoint=save,
            clock=iter(float(i) for i in range(self.clock_start, self.clock_start + 10**6)).__next__,
        )


def clean_run() -> Harness:
    h = Harness()
    status = h.runner().run()
    assert status.state == "finished" and status.frames_processed == N_FRAMES
    return h


def test_clean_run_produces_the_walk() -> None:
    types = sorted(e.event_type for e in clean_run().stored.values())
    assert types.count("ENTRY") == 1 and types.count("EXIT") == 1
    assert types.count("ZONE_ENTER") == 2 and types.count("ZONE_EXIT") == 2


@pytest.mark.parametrize("crash_at", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_crash_then_resume_stores_exactly_the_clean_runs_events(crash_at: float) -> None:
    reference = clean_run()
    assert reference.appends >= 4
    h = Harness()
    h.fail_on_append = 1 + round(crash_at * (reference.appends - 1))
    with pytest.raises(Crash):
        h.runner().run()
    resumed = h.runner()  # a "restarted actor": same Redis (checkpoint + store), new process state
    assert resumed.status.restored_from is not None
    assert resumed.run().state == "finished"
    assert set(h.stored) == set(reference.stored)


def test_finished_camera_does_not_replay_after_restart() -> None:
    h = Harness()
    h.runner().run()
    before = dict(h.stored)
    again = h.runner().run()
    assert again.state == "finished" and again.frames_processed == 0 and h.stored == before


def test_a_fresh_run_never_reuses_an_earlier_runs_ids() -> None:
    """Without a checkpoint (e.g. deleted), a new run must not collide with stored events."""
    first, second = Harness(clock_start=0), Harness(clock_start=86_400)
    first.runner().run()
    second.runner().run()
    assert first.stored and second.stored
    assert not set(first.stored) & set(second.stored)
    assert not {e.visitor_id for e in first.stored.values()} & {e.visitor_id for e in second.stored.values()}


def test_live_camera_resumes_on_the_wall_clock_after_downtime() -> None:
    h = Harness(live=True)
    h.fail_on_append = 3
    with pytest.raises(Crash):
        h.runner().run()
    h.clock_start = 50_000  # the actor comes back much later
    h.runner().run()
    late = [e for e in h.stored.values() if e.timestamp.timestamp() >= 50_000]
    assert late, "events after the restart carry the wall-clock time of their frames"
