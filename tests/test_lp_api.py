"""The /api/v1/lp routes over a real Redis (FastAPI TestClient, no Serve): filters, operator actions,
sessions, zones, status, rules validation and hot reload, behavioural-analysis input, and roles."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import lp
from deployments.api.context import ApiContext, set_context
from tests.test_lp_processor import DEFAULT, ev, visit
from tests.test_lp_runner import drain
from workloads.access import KeyRing, ResolvedKey, Role
from workloads.config import FleetConfig
from workloads.lp.alert_config import AlertConfig
from workloads.lp.runner import RuleRunner, RulesSource
from workloads.lp.zones import store_zones
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration

ZONE_SPECS = [("HV", "HIGH_VALUE"), ("R", "RESTRICTED"), ("CO", "CHECKOUT"), ("EX", "EXIT"), ("P1", "PRODUCT")]
FLEET = FleetConfig.model_validate({"stores": [
    {"id": sid, "cameras": [{"id": f"C{sid}", "source": "synthetic:empty", "zones": [
        {"id": z, "type": t, "polygon": [[0, 0], [10, 0], [10, 10]]} for z, t in ZONE_SPECS]}]}
    for sid in ("S1", "S2")
]})
RING = KeyRing([
    ResolvedKey("hq", "hq-secret", Role.HQ),
    ResolvedKey("s1", "s1-secret", Role.STORE, "S1"),
    ResolvedKey("sre", "sre-secret", Role.SRE),
])


def _events(store: str, visitor: str, events):
    return [e.model_copy(update={"store_id": store, "visitor_id": visitor, "camera_id": f"C{store}"}) for e in events]


@pytest.fixture
def api(redis_client, redis_url):
    """Two stores with alerts (S1: a violation and a bypass; S2: a violation) and their rule runners."""
    log = EventLog(redis_client)
    log.append(_events("S1", "v1", [ev(0, "ZONE_ENTER", "R")]))
    log.append(_events("S1", "v2", [*visit(10, "HV", 5), ev(30, "EXIT")]))
    log.append(_events("S2", "v9", [ev(5, "ZONE_ENTER", "R"), ev(6, "ZONE_ENTER", "HV")]))
    runners = {s: RuleRunner(redis_client, s, store_zones(FLEET, s), RulesSource(DEFAULT), AlertConfig())
               for s in ("S1", "S2")}
    for r in runners.values():
        drain(r)
    ctx = ApiContext.create(FLEET, redis_url)
    ctx.keys = RING
    set_context(ctx)
    app = FastAPI()
    app.include_router(lp.router)
    client = TestClient(app)
    client.runners = runners  # type: ignore[attr-defined]
    return client


HQ = {"X-API-Key": "hq-secret"}
S1 = {"X-API-Key": "s1-secret"}
SRE = {"X-API-Key": "sre-secret"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {("S1", "ZONE_VIOLATION"), ("S1", "CHECKOUT_BYPASS"), ("S2", "ZONE_VIOLATION")}),
        ("?store=S2", {("S2", "ZONE_VIOLATION")}),
        ("?type=CHECKOUT_BYPASS", {("S1", "CHECKOUT_BYPASS")}),
        ("?type=CHECKOUT_BYPASS&type=ZONE_VIOLATION&store=S1", {("S1", "ZONE_VIOLATION"), ("S1", "CHECKOUT_BYPASS")}),
        ("?severity=critical", {("S1", "ZONE_VIOLATION"), ("S2", "ZONE_VIOLATION")}),
        ("?status=open&visitor=v2", {("S1", "CHECKOUT_BYPASS")}),
        ("?from=2025-01-01T10:00:20Z&to=2025-01-01T11:00:00Z", {("S1", "CHECKOUT_BYPASS")}),
        ("?status=resolved", set()),
    ],
)
def test_list_alert_filters(api, query, expected) -> None:
    r = api.get(f"/api/v1/lp/alerts{query}", headers=HQ)
    assert r.status_code == 200, r.text
    assert {(a["store_id"], a["alert_type"]) for a in r.json()["alerts"]} == expected


def test_paging_across_stores(api) -> None:
    first = api.get("/api/v1/lp/alerts?limit=2", headers=HQ).json()
    second = api.get(f"/api/v1/lp/alerts?limit=2&cursor={first['next_cursor']}", headers=HQ).json()
    assert len(first["alerts"]) == 2 and len(second["alerts"]) == 1 and second["next_cursor"] is None
    ids = [a["alert_id"] for a in first["alerts"] + second["alerts"]]
    assert len(set(ids)) == 3
    assert api.get("/api/v1/lp/alerts?cursor=nope", headers=HQ).status_code == 422


def test_counts(api) -> None:
    c = api.get("/api/v1/lp/alerts/count", headers=HQ).json()
    assert c == {"total": 3, "by_type": {"ZONE_VIOLATION": 2, "CHECKOUT_BYPASS": 1},
                 "by_severity": {"CRITICAL": 2, "WARNING": 1}, "by_status": {"open": 3}}
    assert api.get("/api/v1/lp/alerts/count?store=S1&severity=WARNING", headers=HQ).json()["total"] == 1


def test_acknowledge_then_resolve_with_who_and_when(api) -> None:
    alert = api.get("/api/v1/lp/alerts?type=CHECKOUT_BYPASS", headers=HQ).json()["alerts"][0]
    url = f"/api/v1/lp/alerts/{alert['alert_id']}"
    acked = api.post(f"{url}/ack", headers=S1, json={"by": "Priya", "note": "on camera 3"}).json()
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "Priya" and acked["acknowledged_at"]
    again = api.post(f"{url}/ack", headers=S1, json={"by": "Someone else"}).json()
    assert again["acknowledged_by"] == "Priya"  # a retry changes nothing
    resolved = api.post(f"{url}/resolve", headers=HQ).json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "hq"  # default: the key's id
    assert api.post(f"{url}/ack", headers=HQ).status_code == 409
    assert api.get("/api/v1/lp/alerts/count", headers=HQ).json()["by_status"] == {"open": 2, "resolved": 1}
    assert api.post("/api/v1/lp/alerts/nope/ack", headers=HQ).status_code == 404


def test_sessions_and_zones(api) -> None:
    sessions = api.get("/api/v1/lp/sessions", headers=HQ).json()
    assert {(s["store_id"], s["visitor_id"]) for s in sessions} == {("S1", "v1"), ("S1", "v2"), ("S2", "v9")}
    one = api.get("/api/v1/lp/sessions/v2", headers=HQ).json()
    assert one["zone_visit_counts"] == {"HV": 1, "@exit": 1} and one["flags"]["visited_high_value"] is True
    assert api.get("/api/v1/lp/sessions/ghost", headers=HQ).status_code == 404
    zones = {(z["store_id"], z["zone_id"]): z for z in api.get("/api/v1/lp/zones", headers=HQ).json()}
    assert zones[("S2", "HV")]["people_inside"] == 1 and zones[("S2", "R")]["people_inside"] == 1
    assert zones[("S1", "HV")] == {"store_id": "S1", "zone_id": "HV", "zone_type": "HIGH_VALUE", "people_inside": 0}


def test_status(api) -> None:
    st = {s["store_id"]: s for s in api.get("/api/v1/lp/status", headers=SRE).json()}
    assert st["S1"]["running"] is True and st["S1"]["status"]["rules_error"] is None
    assert st["S1"]["status"]["alerts_created"] == 2


def test_rules_get_put_validate_and_hot_reload(api) -> None:
    view = api.get("/api/v1/lp/rules", headers=HQ).json()
    assert view["yaml"] == DEFAULT and set(view["versions"]) == {"S1", "S2"}
    assert view["summary"]["variables"]["repeat_visit_threshold"] == 3
    bad = DEFAULT.replace("op: gte", "op: atleast")
    r = api.put("/api/v1/lp/rules", headers={**HQ, "Content-Type": "application/yaml"}, content=bad)
    assert r.status_code == 422
    assert any("rules[2] (id 'repeated_visits').conditions[0]: unknown op 'atleast'" in p
               for p in r.json()["detail"]["problems"])
    assert api.get("/api/v1/lp/rules", headers=HQ).json()["version"] == view["version"]  # nothing changed
    new = DEFAULT.replace("repeat_visit_threshold: 3", "repeat_visit_threshold: 2")
    r = api.put("/api/v1/lp/rules", headers={**HQ, "Content-Type": "application/yaml"}, content=new)
    assert r.status_code == 200, r.text
    assert r.json()["stores"] == ["S1", "S2"]
    for runner in api.runners.values():  # the rule actors' next tick
        runner.tick()
        assert runner.rules.ruleset.variables["repeat_visit_threshold"] == 2 and runner.rules_source == "api"
    view = api.get("/api/v1/lp/rules?store=S2", headers=HQ).json()
    assert view["yaml"] == new and view["source"] == "api" and view["updated_by"] == "hq"
    # JSON body, one store, by that store's key
    r = api.put("/api/v1/lp/rules?store=S1", headers=S1, json={"yaml": DEFAULT})
    assert r.status_code == 200 and r.json()["stores"] == ["S1"]
    assert api.put("/api/v1/lp/rules", headers=S1, json={"yaml": DEFAULT}).status_code == 403  # chain-wide
    assert api.put("/api/v1/lp/rules", headers=HQ, json={"nope": 1}).status_code == 422


def test_ba_result_input(api) -> None:
    r = api.post("/api/v1/lp/stores/S2/ba-results", headers=HQ,
                 json={"person_id": "v9", "region_id": "HV", "status": "suspicious", "confidence": 0.9,
                       "vlm_response": "item under jacket", "frames_analyzed": 12,
                       "last_frame_ts": "2025-01-01T10:00:08Z"})
    assert r.status_code == 202
    again = api.post("/api/v1/lp/stores/S2/ba-results", headers=HQ,
                     json={"person_id": "v9", "region_id": "HV", "status": "suspicious", "confidence": 0.9,
                           "vlm_response": "item under jacket", "frames_analyzed": 12,
                           "last_frame_ts": "2025-01-01T10:00:08Z"})
    assert again.json()["result_id"] == r.json()["result_id"]
    drain(api.runners["S2"])
    got = api.get("/api/v1/lp/alerts?store=S2&type=CONCEALMENT", headers=HQ).json()["alerts"]
    assert len(got) == 1 and got[0]["details"]["message"] == "item under jacket"
    assert got[0]["evidence"][0]["kind"] == "ba_result"
    assert api.post("/api/v1/lp/stores/S2/ba-results", headers=HQ, json={"status": "x"}).status_code == 422
    assert api.post("/api/v1/lp/stores/NOPE/ba-results", headers=HQ,
                    json={"person_id": "a", "status": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("headers", "method", "path", "status"),
    [
        ({}, "get", "/api/v1/lp/alerts", 401),
        (SRE, "get", "/api/v1/lp/alerts", 403),
        (SRE, "get", "/api/v1/lp/status", 200),
        (S1, "get", "/api/v1/lp/alerts?store=S2", 403),
        (S1, "get", "/api/v1/lp/sessions?store=S2", 403),
        (S1, "post", "/api/v1/lp/stores/S2/ba-results", 403),
        (SRE, "post", "/api/v1/lp/stores/S1/ba-results", 403),
        (SRE, "put", "/api/v1/lp/rules", 403),
        (HQ, "get", "/api/v1/lp/alerts?store=NOPE", 404),
    ],
)
def test_roles(api, headers, method, path, status) -> None:
    kw = {"json": {"person_id": "a", "status": "x"}} if method == "post" else {}
    if method == "put":
        kw = {"content": DEFAULT}
    assert getattr(api, method)(path, headers=headers, **kw).status_code == status


def test_store_keys_see_their_store_only(api) -> None:
    alerts = api.get("/api/v1/lp/alerts", headers=S1).json()["alerts"]
    assert {a["store_id"] for a in alerts} == {"S1"}
    assert api.get("/api/v1/lp/alerts/count", headers=S1).json()["total"] == 2
    assert {s["store_id"] for s in api.get("/api/v1/lp/sessions", headers=S1).json()} == {"S1"}
    assert {z["store_id"] for z in api.get("/api/v1/lp/zones", headers=S1).json()} == {"S1"}
    assert [s["store_id"] for s in api.get("/api/v1/lp/status", headers=S1).json()] == ["S1"]
    other = api.get("/api/v1/lp/alerts?store=S2", headers=HQ).json()["alerts"][0]["alert_id"]
    assert api.get(f"/api/v1/lp/alerts/{other}", headers=S1).status_code == 404  # not theirs: not found
    assert api.post(f"/api/v1/lp/alerts/{other}/ack", headers=S1).status_code == 404
    assert api.get("/api/v1/lp/sessions/v9", headers=S1).status_code == 404
