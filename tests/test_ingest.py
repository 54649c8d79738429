"""POST /events/ingest through real store actors (Ray) into a real Redis: per-event outcomes of mixed
batches, idempotent re-ingest, whole-batch refusals that store nothing, write scopes, and
aggregates that stay exact across a store actor restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import ray
import redis

from tests.analytics_data import POLY
from tests.analytics_ray import api_client, catch_up, store_actors
from workloads.access import KeyRing, ResolvedKey, Role
from workloads.config import FleetConfig
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration

RING = KeyRing([ResolvedKey("hq", "hq-secret", Role.HQ), ResolvedKey("a", "a-secret", Role.STORE, "ING_A"),
                ResolvedKey("sre", "sre-secret", Role.SRE)])
HQ = {"X-API-Key": "hq-secret"}
FLEET = FleetConfig.model_validate({"stores": [
    {"id": sid, "timezone": tz, "cameras": [{"id": f"{sid}_CAM", "source": "synthetic:empty", "zones": [
        {"id": "SHELF", "type": "PRODUCT", "polygon": POLY},
        {"id": "QUEUE", "type": "BILLING_QUEUE", "polygon": POLY}]}]}
    for sid, tz in (("ING_A", "UTC"), ("ING_B", "Asia/Kolkata"), ("ING_OFF", "UTC"))
]})


@pytest.fixture(scope="module")
def api(ray_cluster, redis_url: str) -> Iterator[Any]:
    with store_actors(FLEET, redis_url, only={"ING_A", "ING_B"}) as handles:
        client = api_client(FLEET, redis_url, RING)
        client.handles = handles  # type: ignore[attr-defined]
        client.redis = redis.Redis.from_url(redis_url)  # type: ignore[attr-defined]
        yield client


def ev(store: str = "ING_A", day: int = 1, minute: int = 0, **kw: Any) -> dict[str, Any]:
    base = {"event_id": str(uuid.uuid4()), "store_id": store, "camera_id": f"{store}_CAM",
            "visitor_id": f"v{uuid.uuid4().hex[:6]}", "event_type": "ENTRY",
            "timestamp": (datetime(2026, 4, day, 10, tzinfo=UTC) + timedelta(minutes=minute)).isoformat()}
    return {**base, **kw}


def metrics(api, store: str, day: int) -> dict[str, Any]:
    catch_up(api.handles)
    window = {"from": f"2026-04-{day:02d}T00:00:00Z", "to": f"2026-04-{day + 1:02d}T00:00:00Z"}
    return api.get(f"/stores/{store}/metrics", params=window, headers=HQ).json()


BAD = [  # (change to a valid event, expected error field, words of the message)
    ({"timestamp": "2026-04-02T10:00:00"}, "events[{i}].timestamp", "time zone"),
    ({"event_id": "not-a-uuid"}, "events[{i}].event_id", "UUID"),
    ({"event_type": "TELEPORT"}, "events[{i}].event_type", "ENTRY"),
    ({"zone_id": "SHELF"}, "events[{i}]", "zone_id must be null for ENTRY"),
    ({"event_type": "ZONE_ENTER"}, "events[{i}]", "zone_id is required"),
    ({"confidence": 1.5}, "events[{i}].confidence", "less than or equal to 1"),
    ({"metadata": {"queue_depth": -1}}, "events[{i}].metadata.queue_depth", "greater than or equal to 0"),
    ({"colour": "red"}, "events[{i}].colour", "Extra inputs"),
    ({"store_id": "NOWHERE"}, "events[{i}].store_id", "unknown store"),
    ({"store_id": "bad store!"}, "events[{i}].store_id", "pattern"),
    ({"event_id": None}, "events[{i}].event_id", "UUID"),
]


def test_a_mixed_batch_stores_the_valid_events_and_names_each_problem(api) -> None:
    good = [ev(day=2, minute=i) for i in range(3)] + [ev("ING_B", day=2)]
    bad = [{**ev(day=2), **change} for change, _, _ in BAD]
    no_id = ev(day=2)
    del no_id["event_id"]
    batch = [*good, *bad, no_id, "not an event", good[0]]
    res = api.post("/events/ingest", json={"events": batch}, headers=HQ)
    assert res.status_code == 200
    body = res.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (4, 1, len(BAD) + 2)
    results = body["results"]
    assert [r["status"] for r in results[:4]] == ["accepted"] * 4 and results[-1]["status"] == "duplicate"
    for k, (_, field, words) in enumerate(BAD):
        i = 4 + k
        r = results[i]
        assert r["status"] == "rejected" and r["index"] == i
        assert any(e["field"] == field.format(i=i) and words in e["message"] for e in r["errors"]), r
    assert results[-3]["errors"][0]["field"] == f"events[{len(batch) - 3}].event_id"
    assert results[-2]["errors"] == [{"field": f"events[{len(batch) - 2}]", "message": "expected a JSON object "
                                                                                       "(one event)"}]
    log = EventLog(api.redis)
    for e in good:
        assert log.get(e["store_id"], e["event_id"]) is not None
    assert metrics(api, "ING_A", 2)["unique_visitors"] == 3


def test_re_ingesting_a_batch_changes_nothing(api) -> None:
    batch = [ev(day=4, minute=i) for i in range(50)]
    batch += [ev(day=4, visitor_id=e["visitor_id"], event_type="ZONE_ENTER", zone_id="SHELF") for e in batch[:10]]
    first = api.post("/events/ingest", json={"events": batch}, headers=HQ).json()
    before = metrics(api, "ING_A", 4)
    counters = ray.get(api.handles.stores["ING_A"].counters.remote())
    again = api.post("/events/ingest", json={"events": batch}, headers=HQ).json()
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (60, 0, 60)
    assert metrics(api, "ING_A", 4) == before and before["unique_visitors"] == 50 and before["entries"] == 50
    assert ray.get(api.handles.stores["ING_A"].counters.remote()) == counters
    funnel = api.get("/stores/ING_A/funnel", params={"from": "2026-04-04T00:00:00Z", "to": "2026-04-05T00:00:00Z"},
                      headers=HQ).json()
    assert (funnel["entry"], funnel["zone_visit"]) == (50, 10)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"events": [ev(day=6, minute=i % 60) for i in range(501)]}, "limit is 500"),
        ('{"events": [', "JSON"),
        ("[]", "valid dictionary"),
        ({"events": "ENTRY"}, "valid list"),
        ({}, "Field required"),
    ],
)
def test_a_bad_body_is_refused_whole_and_stores_nothing(api, body, words) -> None:
    before = EventLog(api.redis).count("ING_A")
    if isinstance(body, str):
        res = api.post("/events/ingest", content=body, headers={**HQ, "Content-Type": "application/json"})
    else:
        res = api.post("/events/ingest", json=body, headers=HQ)
    assert res.status_code == 422 and words in res.text
    assert EventLog(api.redis).count("ING_A") == before


def test_keys_write_only_where_they_may(api) -> None:
    mine, theirs = ev(day=8), ev("ING_B", day=8)
    body = api.post("/events/ingest", json={"events": [mine, theirs]}, headers={"X-API-Key": "a-secret"}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    assert "limited to store ING_A" in body["results"][1]["errors"][0]["message"]
    assert api.post("/events/ingest", json={"events": [ev(day=8)]}, headers={"X-API-Key": "sre-secret"}
                    ).status_code == 403
    assert api.post("/events/ingest", json={"events": [ev(day=8)]}).status_code == 401


def test_a_store_without_a_running_actor_gets_503_and_nothing_is_stored(api) -> None:
    batch = [ev(day=10), ev("ING_OFF", day=10)]
    res = api.post("/events/ingest", json={"events": batch}, headers=HQ)
    assert res.status_code == 503 and "ING_OFF" in res.json()["detail"]
    assert EventLog(api.redis).get("ING_A", batch[0]["event_id"]) is None


def test_aggregates_stay_exact_across_a_store_actor_restart(api) -> None:
    actor = api.handles.stores["ING_A"]
    # distinct visitor ids: 1,500 random 6-hex ids collide with ~7 % chance, and the test read that as a loss
    visits = [ev(day=12, minute=i % 600, visitor_id=f"restart-{i}") for i in range(1500)]
    for i in range(0, 1000, 500):
        assert api.post("/events/ingest", json={"events": visits[i:i + 500]}, headers=HQ).json()["accepted"] == 500
    ray.kill(actor, no_restart=False)  # dies mid-aggregation; Ray restarts it from Redis
    res = api.post("/events/ingest", json={"events": visits[1000:]}, headers=HQ).json()
    assert res["accepted"] == 500
    again = api.post("/events/ingest", json={"events": visits[500:1000]}, headers=HQ).json()  # a client retry
    assert again["duplicates"] == 500
    m = metrics(api, "ING_A", 12)
    assert (m["unique_visitors"], m["entries"]) == (1500, 1500)
    assert ray.get(actor.analytics_lag.remote()) == 0
