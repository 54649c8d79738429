"""SceneScape region events -> visitor events: the translation as a table, then the adapter against a
real Mosquitto broker and a real Redis (EventLog sink), redelivery included."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest

from cluster.scenescape import ScenescapeAdapter, ScenescapeTranslator
from workloads.events import EventType, VisitorEvent
from workloads.lp.settings import ScenescapeConfig
from workloads.state.event_log import EventLog

SCENE = "302cf49a-97ec-402d-a324-c5077b280b7b"
AISLE = "5908cfbe-2090-4dc9-b200-6608e2c3be86"
CFG = {
    "host": "127.0.0.1",
    "scenes": [
        {"scene_id": SCENE, "store_id": "S1", "zones": {"aisle1": "HIGH_VALUE", "door": "EXIT"}},
        {"scene_name": "Backroom", "store_id": "S2", "camera_id": "ss-back", "zones": {AISLE: "RESTRICTED"}},
    ],
}


def region_event(region_name: str = "aisle1", region_id: str = AISLE, entered=(), exited=(), scene_id: str = SCENE,
                 scene_name: str = "Retail", ts: str = "2025-11-13T20:11:38.971Z") -> dict:
    return {
        "timestamp": ts, "scene_id": scene_id, "scene_name": scene_name, "region_id": region_id,
        "region_name": region_name, "counts": {"person": len(entered)},
        "objects": [{"id": p, "category": "person"} for p in entered],
        "entered": [{"id": p, "category": c, "confidence": 0.97} for p, c in entered],
        "exited": [{"object": {"id": p, "category": "person", "type": "person"}, "dwell": d} for p, d in exited],
        "metadata": {"title": region_name, "uuid": region_id},
    }


def topic(region_id: str = AISLE, kind: str = "count", scene_id: str = SCENE) -> str:
    return f"scenescape/event/region/{scene_id}/{region_id}/{kind}"


T = datetime(2025, 11, 13, 20, 11, 38, 971000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (region_event(entered=[("p1", "person")]), [("S1", "p1", EventType.ZONE_ENTER, "aisle1", 0)]),
        (region_event(entered=[("p1", "person"), ("car", "vehicle")]),
         [("S1", "p1", EventType.ZONE_ENTER, "aisle1", 0)]),
        (region_event(exited=[("p1", 19.6)]), [("S1", "p1", EventType.ZONE_EXIT, "aisle1", 19600)]),
        (region_event(region_name="door", region_id="d00r", entered=[("p1", "person")]),
         [("S1", "p1", EventType.ZONE_ENTER, "door", 0)]),
        (region_event(region_name="unmapped", region_id="x", entered=[("p1", "person")]), None),
        (region_event(scene_id="other", entered=[("p1", "person")]), None),
        # Matched by scene name, region by UUID; the camera id is configured.
        (region_event(scene_id="b-uuid", scene_name="Backroom", region_name="stock", entered=[("p7", "person")]),
         [("S2", "p7", EventType.ZONE_ENTER, AISLE, 0)]),
    ],
)
def test_translation(payload, expected) -> None:
    events = ScenescapeTranslator(ScenescapeConfig.model_validate(CFG)).translate(topic(), payload)
    if expected is None:
        assert events is None
        return
    assert [(e.store_id, e.visitor_id, e.event_type, e.zone_id, e.dwell_ms) for e in events] == expected
    assert all(e.timestamp == T for e in events)


def test_twin_topics_and_redeliveries_give_the_same_ids() -> None:
    tr = ScenescapeTranslator(ScenescapeConfig.model_validate(CFG))
    payload = region_event(entered=[("p1", "person")])
    a = tr.translate(topic(kind="count"), payload)
    b = tr.translate(topic(kind="objects"), payload)
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert a[0].camera_id == f"scenescape.{SCENE}"


def test_scene_needs_an_id_or_a_name() -> None:
    with pytest.raises(ValueError, match="scene_id or scene_name"):
        ScenescapeConfig.model_validate({"scenes": [{"store_id": "S1", "zones": {}}]})


# ---------------------------------------------------------------------------------------------- real broker


def _publish(host: str, port: int, messages: list[tuple[str, dict]]) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    pub.connect(host, port)
    pub.loop_start()
    for t, payload in messages:
        pub.publish(t, json.dumps(payload), qos=1).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()


def _wait(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _adapter(mqtt_broker, sink, client_id: str) -> ScenescapeAdapter:
    host, port = mqtt_broker
    cfg = ScenescapeConfig.model_validate({**CFG, "host": host, "port": port, "client_id": client_id,
                                           "topic": "scenescape/event/region/+/+/+"})
    a = ScenescapeAdapter(cfg, sink, retries=2, retry_wait_s=0.05)
    a.start()
    assert a.subscribed.wait(10), "adapter did not subscribe"
    return a


@pytest.mark.integration
def test_adapter_stores_events_once_from_a_real_broker(redis_client, mqtt_broker) -> None:
    log = EventLog(redis_client)
    adapter = _adapter(mqtt_broker, lambda events: log.append(events) and None, "ss-once")
    try:
        enter = region_event(entered=[("p1", "person")])
        leave = region_event(exited=[("p1", 12.5)], ts="2025-11-13T20:11:51.471Z")
        _publish(*mqtt_broker, [(topic(kind="count"), enter), (topic(kind="objects"), enter),
                                (topic(kind="count"), leave), (topic(kind="objects"), leave),
                                (topic(), {"region_name": "aisle1", "entered": [{"id": "p9", "category": "person"}]}),
                                ("scenescape/event/region/x/y/count", "{")])
        assert _wait(lambda: adapter.stats.messages == 6)
        events, _ = log.query("S1", limit=100, order="oldest")
        assert [(e.event_type, e.visitor_id, e.dwell_ms) for e in events] == [
            (EventType.ZONE_ENTER, "p1", 0), (EventType.ZONE_EXIT, "p1", 12500)]
        assert adapter.stats.malformed == 2
    finally:
        adapter.stop()


@pytest.mark.integration
def test_a_message_that_could_not_be_stored_comes_back(redis_client, mqtt_broker) -> None:
    log = EventLog(redis_client)
    calls = {"n": 0}

    def flaky(events: list[VisitorEvent]) -> None:
        calls["n"] += 1
        if calls["n"] <= 3:  # the store is down for the first message's two tries and one more
            raise ConnectionError("store actor restarting")
        log.append(events)

    adapter = _adapter(mqtt_broker, flaky, "ss-redeliver")
    try:
        _publish(*mqtt_broker, [(topic(), region_event(entered=[("p1", "person")])),
                                (topic(), region_event(exited=[("p1", 3.0)], ts="2025-11-13T20:11:41.971Z"))])
        assert _wait(lambda: log.count("S1") == 2, timeout=15)
        events, _ = log.query("S1", limit=100, order="oldest")
        assert [e.event_type for e in events] == [EventType.ZONE_ENTER, EventType.ZONE_EXIT]  # order kept
        assert adapter.stats.sink_failures == 3
    finally:
        adapter.stop()
