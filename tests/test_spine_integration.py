"""The spine end to end: real vtest.avi frames -> Serve detector (OpenVINO INT8) -> camera actor
(tracking, zones) -> store actor -> Redis -> HTTP, and crash safety of both actors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import ray
import redis

from cluster.fleet import start_fleet
from workloads.config import FleetConfig
from workloads.events import VisitorEvent
from workloads.state import keys
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration

HTTP_PORT = 18123
DOOR = {"id": "door", "points": [[560, 140], [560, 340]], "inside_point": [400, 240]}
PLAZA = {
    "id": "PLAZA",
    "type": "PRODUCT",
    "sku_zone": "SKINCARE",
    "polygon": [[250, 190], [550, 190], [550, 330], [250, 330]],
}
QUEUE = {"id": "QUEUE", "type": "BILLING_QUEUE", "polygon": [[60, 190], [250, 190], [250, 300], [60, 300]]}


def fleet_config(vtest: str, store_id: str, cameras: list[dict[str, Any]], batch: int = 4) -> FleetConfig:
    return FleetConfig.model_validate(
        {
            "detector": {"precision": "INT8", "input_size": 640, "max_batch_size": batch},
            "event_batch_interval_s": 0.5,
            "stores": [
                {
                    "id": store_id,
                    "cameras": [{"source": vtest, "loop": False, "realtime": False, **c} for c in cameras],
                }
            ],
        }
    )


def stored(url: str, store_id: str) -> tuple[list[VisitorEvent], int]:
    """All events of a store and the length of its stream (a duplicate would show as a longer stream)."""
    log = EventLog(redis.Redis.from_url(url))
    events, cursor = [], None
    while True:
        page, cursor = log.query(store_id, None, None, None, limit=500, cursor=cursor)
        events += page
        if cursor is None:
            break
    return events, redis.Redis.from_url(url).xlen(keys.events_stream(store_id))


def test_vtest_frames_become_events_in_redis_and_over_http(ray_cluster, prepared_detector, redis_url, vtest):
    cfg = fleet_config(
        vtest,
        "SPINE",
        [
            {
                "id": "SPINE_A",
                "target_fps": 5,
                "max_frames": 200,
                "tripwires": [DOOR],
                "zones": [PLAZA, QUEUE],
            },
            {"id": "SPINE_B", "target_fps": 2, "max_frames": 60, "zones": [{**PLAZA, "id": "PLAZA_B"}]},
        ],
    )
    fleet = start_fleet(cfg, redis_url, http_port=HTTP_PORT)
    try:
        final = fleet.wait(timeout_s=600)
    finally:
        fleet.stop()
    assert {s["state"] for s in final.values()} == {"finished"}
    assert final["SPINE_A"]["frames_processed"] == 200 and final["SPINE_B"]["frames_processed"] == 60

    events, stream_len = stored(redis_url, "SPINE")
    sent = sum(s["events_sent"] for s in final.values())
    assert len(events) == stream_len == sent > 0
    types = {e.event_type for e in events}
    assert {"ENTRY", "ZONE_ENTER", "ZONE_EXIT"} <= types, types
    assert all(e.store_id == "SPINE" and e.camera_id in {"SPINE_A", "SPINE_B"} for e in events)
    plaza_exits = [e for e in events if e.event_type == "ZONE_EXIT" and e.zone_id == "PLAZA"]
    assert plaza_exits and all(e.dwell_ms > 0 and e.metadata.sku_zone == "SKINCARE" for e in plaza_exits)

    base = f"http://127.0.0.1:{HTTP_PORT}"
    with httpx.Client(base_url=base, timeout=10) as http:
        stores = http.get("/stores").json()
        assert stores[0]["id"] == "SPINE" and stores[0]["events_total"] == len(events)
        page = http.get("/stores/SPINE/events", params={"type": "ENTRY", "limit": 2}).json()
        assert 0 < len(page["events"]) <= 2 and all(e["event_type"] == "ENTRY" for e in page["events"])
        seen, cursor = [], None
        while True:  # paging returns every event exactly once
            params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            body = http.get("/stores/SPINE/events", params=params).json()
            seen += [e["event_id"] for e in body["events"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(str(e.event_id) for e in events)
        assert http.get("/stores/NOPE/events").status_code == 404
        health = http.get("/health").json()
        cams = {c["camera_id"]: c for c in health["cameras"]}
        assert health["redis"] is True
        assert cams["SPINE_A"]["frames_processed"] == 200 and cams["SPINE_A"]["state"] == "finished"
        assert "/stores/{store_id}/events" in http.get("/openapi.json").json()["paths"]


def _what(e: VisitorEvent) -> tuple[Any, ...]:
    """An event without its run-specific parts: type, zone, track number, order in visit, dwell."""
    return (e.event_type, e.zone_id, e.visitor_id.rsplit("-", 1)[1], e.metadata.session_seq, e.dwell_ms)


def _wait_frames(actor: Any, at_least: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ray.get(actor.status.remote(), timeout=10)["frames_processed"] >= at_least:
                return
        except ray.exceptions.RayError:
            pass  # restarting
        time.sleep(0.2)
    raise TimeoutError(f"camera did not reach {at_least} frames")


def test_killing_camera_and_store_actors_loses_and_duplicates_nothing(
    ray_cluster, prepared_detector, redis_url, vtest
):
    # Batch size 1 keeps inference bit-identical between runs, so both runs see the same boxes.
    cam = {
        "id": "CRASH_CAM",
        "target_fps": 5,
        "max_frames": 150,
        "tripwires": [DOOR],
        "zones": [PLAZA, QUEUE],
    }
    cfg = fleet_config(vtest, "CRASH", [cam], batch=1)
    client = redis.Redis.from_url(redis_url)

    fleet = start_fleet(cfg, redis_url, http_port=HTTP_PORT)
    fleet.wait(timeout_s=600)
    fleet.stop()
    reference, _ = stored(redis_url, "CRASH")
    assert len(reference) > 5
    for k in client.scan_iter(match="sf:{CRASH}:*"):
        client.delete(k)

    fleet = start_fleet(cfg, redis_url, http_port=HTTP_PORT)
    camera, store = fleet.cameras["CRASH_CAM"], fleet.stores["CRASH"]
    _wait_frames(camera, 40)
    ray.kill(camera, no_restart=False)  # restarts, resumes from its Redis checkpoint
    _wait_frames(camera, 20)
    ray.kill(store, no_restart=False)  # in-flight appends are retried against the new instance
    final = ray.get(camera.wait.remote(600))
    fleet.stop()

    assert final["state"] == "finished" and final["restored_from"] is not None
    events, stream_len = stored(redis_url, "CRASH")
    assert stream_len == len(events), "an event was stored twice"
    # Each run has its own visitor-id prefix (its feed origin), so compare what happened, not ids.
    assert sorted(map(_what, events)) == sorted(map(_what, reference)), "events lost or invented"
    counters = EventLog(client).counters("CRASH")
    assert counters["total"] == sum(counters["by_type"].values()) == len(events)
