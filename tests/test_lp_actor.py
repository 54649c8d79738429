"""The rule actor on a real Ray cluster with a real Redis: killed mid-sequence it loses and duplicates no
alert; behavioural-analysis results through the actor; SceneScape MQTT -> store actor -> rule actor."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import ray
import redis

from deployments.rule_actor import RuleActor, rule_actor_name
from deployments.store_actor import NAMESPACE, StoreActor, store_actor_name
from tests.test_lp_processor import DEFAULT, ZONES, ev, visit
from tests.test_scenescape import _publish, region_event
from workloads.config import FleetConfig
from workloads.lp.processor import StoreRules
from workloads.lp.rules import load_rules
from workloads.lp.store import AlertFilter, LpStore
from workloads.state import keys
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration

OVERRIDE = '{"repeat_visit_threshold": 2}'


def fleet(store_id: str, scenescape: dict | None = None) -> FleetConfig:
    zones = [{"id": z, "type": t, "polygon": [[0, 0], [10, 0], [10, 10]]} for z, t in ZONES.items()]
    lp = {"scenescape": scenescape} if scenescape else {}
    return FleetConfig.model_validate({"loss_prevention": lp, "stores": [
        {"id": store_id, "cameras": [{"id": f"{store_id}-C1", "source": "synthetic:empty", "zones": zones}]}]})


def rule_actor(store_id: str, redis_url: str, cfg: FleetConfig, alert_config: str = "{}"):
    return RuleActor.options(name=rule_actor_name(store_id), namespace=NAMESPACE).remote(
        store_id, redis_url, cfg.model_dump(mode="json"), DEFAULT, None, 0.0, alert_config, OVERRIDE)


def wait_for(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    assert cond(), "condition not reached in time"


def lag(client: redis.Redis, store_id: str) -> int:
    pos = client.get(keys.consumer_cursor(store_id, "lp-rules"))
    start = f"({pos.decode()}" if pos else "-"
    return len(client.xrange(keys.events_stream(store_id), start, "+"))


def script(store_id: str, n_visitors: int) -> list:
    """Visitors doing a bit of everything (old timestamps: the clock follows the events)."""
    out = []
    for i in range(n_visitors):
        v, t0, cam = f"v{i}", i * 3.0, f"{store_id}-C1"
        kind = i % 4
        seq = [*visit(t0, "HV", 4, visitor=v, camera=cam), *visit(t0 + 10, "HV", 40 if kind == 1 else 3, visitor=v,
                                                                   camera=cam)]
        if kind == 0:
            seq += [ev(t0 + 60, "EXIT", visitor=v, camera=cam)]  # bypass
        elif kind == 2:
            seq += [*visit(t0 + 60, "CO", 5, visitor=v, camera=cam), ev(t0 + 70, "EXIT", visitor=v, camera=cam)]
        elif kind == 3:
            seq += [ev(t0 + 60, "ZONE_ENTER", "R", visitor=v, camera=cam)]
        out += seq
    out.sort(key=lambda e: e.timestamp)
    return [e.model_copy(update={"store_id": store_id}) for e in out]


def test_killed_mid_sequence_no_alert_lost_or_duplicated(ray_cluster, redis_url, redis_client) -> None:
    store_id = "LPKILL"
    events = script(store_id, 80)
    reference = StoreRules(store_id, ZONES, load_rules(DEFAULT, OVERRIDE))
    expected = reference.apply_events(events).alerts + reference.tick().alerts
    assert {a.alert_type for a in expected} == {"REPEATED_VISIT", "LOITERING", "CHECKOUT_BYPASS", "ZONE_VIOLATION"}
    log = EventLog(redis_client)
    actor = rule_actor(store_id, redis_url, fleet(store_id))
    try:
        ray.get(actor.ping.remote())
        chunks = [events[i:i + 60] for i in range(0, len(events), 60)]
        for n, chunk in enumerate(chunks):
            log.append(chunk)
            if n % 2 == 0:
                ray.kill(actor, no_restart=False)  # right after the append: mid-batch, or before it is read
            else:
                wait_for(lambda: lag(redis_client, store_id) == 0)
        wait_for(lambda: lag(redis_client, store_id) == 0)
        ray.get(actor.ping.remote(), timeout=60)  # the restarted actor is up and has caught up
        want = sorted(a.alert_id for a in expected)
        wait_for(lambda: redis_client.zcard(keys.lp_alerts_by_time(store_id)) >= len(want))
        alerts, _ = LpStore(redis_client).list_alerts([store_id], AlertFilter(), limit=1000)
        assert sorted(a.alert_id for a in alerts) == want
        assert redis_client.xlen(keys.lp_alerts_stream(store_id)) == len(want)
        st = ray.get(actor.status.remote())
        assert st["event_lag"] == 0 and st["rules_error"] is None
    finally:
        ray.kill(actor, no_restart=True)


def test_ba_result_through_the_actor(ray_cluster, redis_url, redis_client) -> None:
    store_id = "LPBA"
    actor = rule_actor(store_id, redis_url, fleet(store_id))
    try:
        cam = f"{store_id}-C1"
        EventLog(redis_client).append([e.model_copy(update={"store_id": store_id})
                                       for e in [ev(0, "ZONE_ENTER", "HV", camera=cam)]])
        rid = ray.get(actor.ba_result.remote({"person_id": "v1", "region_id": "HV", "status": "suspicious",
                                              "confidence": 0.77, "last_frame_ts": "2025-01-01T10:00:03Z"}))
        assert rid
        wait_for(lambda: redis_client.zcard(keys.lp_alerts_by_time(store_id)) == 1)
        (alert,), _ = LpStore(redis_client).list_alerts([store_id], AlertFilter())
        assert alert.alert_type == "CONCEALMENT" and alert.details["confidence"] == 0.77
        assert [e.action for e in LpStore(redis_client).escalations(store_id)] == ["start"]
    finally:
        ray.kill(actor, no_restart=True)


def test_scenescape_events_reach_the_rules(ray_cluster, redis_url, redis_client, mqtt_broker) -> None:
    """SceneScape region events over a real broker -> store actor -> event stream -> rule actor -> alert."""
    from cluster.scenescape import ScenescapeAdapter, StoreActorSink
    from workloads.lp.settings import ScenescapeConfig

    store_id = "LPSS"
    host, port = mqtt_broker
    ss = {"host": host, "port": port, "client_id": "ss-e2e", "scenes": [
        {"scene_id": "scene-1", "store_id": store_id, "zones": {"aisle1": "HIGH_VALUE", "door": "EXIT"}}]}
    cfg = fleet(store_id, ss)
    store = StoreActor.options(name=store_actor_name(store_id), namespace=NAMESPACE).remote(store_id, redis_url)
    rules = rule_actor(store_id, redis_url, cfg)
    adapter = ScenescapeAdapter(ScenescapeConfig.model_validate(ss), StoreActorSink())
    try:
        ray.get([store.ping.remote(), rules.ping.remote()])
        adapter.start()
        assert adapter.subscribed.wait(10)
        t = "scenescape/event/region/scene-1/{}/count"
        _publish(host, port, [
            (t.format("r-aisle"), region_event("aisle1", "r-aisle", entered=[("p42", "person")], scene_id="scene-1",
                                               ts="2025-11-13T20:00:00Z")),
            (t.format("r-aisle"), region_event("aisle1", "r-aisle", exited=[("p42", 20.0)], scene_id="scene-1",
                                               ts="2025-11-13T20:00:20Z")),
            (t.format("r-door"), region_event("door", "r-door", entered=[("p42", "person")], scene_id="scene-1",
                                              ts="2025-11-13T20:01:00Z")),
        ])
        wait_for(lambda: redis_client.zcard(keys.lp_alerts_by_time(store_id)) == 1, timeout=30)
        (alert,), _ = LpStore(redis_client).list_alerts([store_id], AlertFilter())
        assert (alert.alert_type, alert.visitor_id, alert.zone_id) == ("CHECKOUT_BYPASS", "p42", "door")
        assert alert.camera_id == "scenescape.scene-1"
        assert json.loads(redis_client.hget(keys.lp_sessions(store_id), "p42"))["zone_visit_counts"] == {
            "aisle1": 1, "door": 1}
    finally:
        adapter.stop()
        ray.kill(rules, no_restart=True)
        ray.kill(store, no_restart=True)

