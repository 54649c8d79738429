"""A synthetic scene played by a real fleet: Serve detector, camera actor, store actor, Redis.

The in-process evaluation (`storefleet eval run`) runs the same engine and detector without Ray; this
checks that a camera whose source is `synthetic:<scene>?seed=N` counts the clip's true door crossings
through the whole cluster path too.
"""

from __future__ import annotations

import pytest
import redis

from cluster.fleet import start_fleet
from workloads.events import EventType
from workloads.state.event_log import EventLog
from workloads.synthetic.scene import build_scene

pytestmark = pytest.mark.integration

HTTP_PORT = 18531
STORE = "EVALSYN"
SECONDS = 24.0  # the queue scene: its first four shoppers come in within this


@pytest.fixture(scope="module")
def sprite_bank(prepared_detector) -> None:
    from cluster.cli_eval import ensure_sprite_bank

    ensure_sprite_bank(progress=False)


def test_synthetic_scene_through_the_fleet_counts_the_true_entries(ray_cluster, redis_url, sprite_bank):
    scene = build_scene("queue", 1)
    cfg = scene.fleet_config(store_id=STORE, input_size=960)
    cam = cfg.stores[0].cameras[0]
    cam.max_frames = int(SECONDS * cam.target_fps)
    client = redis.Redis.from_url(redis_url)
    for k in client.scan_iter(match=f"sf:{{{STORE}}}:*"):
        client.delete(k)

    fleet = start_fleet(cfg, redis_url, http_port=HTTP_PORT)
    try:
        final = fleet.wait(timeout_s=600)
    finally:
        fleet.stop()
    assert final[cam.id]["state"] == "finished" and final[cam.id]["frames_processed"] == cam.max_frames

    events, _ = EventLog(client).query(STORE, None, None, None, limit=1000, cursor=None)
    # The last processed frame is at (max_frames - 1) / fps; a crossing needs a frame or two after it.
    horizon = (cam.max_frames - 1) / cam.target_fps - 0.6
    true_entries = [e for e in scene.truth.events if e.event_type == EventType.ENTRY and e.t <= horizon]
    measured = [e for e in events if e.event_type == EventType.ENTRY]
    assert len(true_entries) >= 3
    assert len(measured) == len(true_entries), (len(measured), [e.t for e in true_entries])
    assert not any(e.is_staff for e in events)
    assert {e.camera_id for e in events} == {cam.id}
