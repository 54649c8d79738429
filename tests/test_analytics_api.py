"""Analytics routes over a real Redis (FastAPI TestClient, aggregates applied by StoreAnalytics as the
store actor would): each endpoint on a hand-counted day, empty and unknown stores, windows, roles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import analytics, core
from deployments.api.context import ApiContext, set_context
from tests.analytics_data import POLY, event
from workloads.access import KeyRing, ResolvedKey, Role
from workloads.analytics.pos import Transaction
from workloads.analytics.service import StoreAnalytics
from workloads.config import FleetConfig
from workloads.state.checkpoints import CameraHealth, CheckpointStore
from workloads.state.event_log import EventLog

RING = KeyRing([
    ResolvedKey("hq", "hq-secret", Role.HQ),
    ResolvedKey("s1", "s1-secret", Role.STORE, "S1"),
    ResolvedKey("sre", "sre-secret", Role.SRE),
])
HQ = {"X-API-Key": "hq-secret"}
ZONES = [{"id": "SKIN", "type": "PRODUCT", "sku_zone": "SKINCARE", "polygon": POLY},
         {"id": "PHONES", "type": "HIGH_VALUE", "polygon": POLY},
         {"id": "Q", "type": "BILLING_QUEUE", "polygon": POLY},
         {"id": "TILL", "type": "CHECKOUT", "polygon": POLY}]
FLEET = FleetConfig.model_validate({"stores": [
    {"id": "S1", "name": "One", "timezone": "UTC",
     "cameras": [{"id": "C1", "source": "synthetic:empty", "zones": ZONES}]},
    {"id": "S2", "name": "Two", "timezone": "Asia/Kolkata", "cameras": [
        {"id": "C2", "source": "synthetic:empty", "zones": [{**z, "id": f"{z['id']}2"} for z in ZONES]}]},
    {"id": "S3", "name": "Three", "cameras": [{"id": "C3", "source": "synthetic:empty"}]},
]})
DAY = datetime(2026, 3, 3, tzinfo=UTC)
AT = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # when S2's anomalies are evaluated


def at(hm: str, day: datetime = DAY) -> datetime:
    h, m = hm.split(":")
    return day + timedelta(hours=int(h), minutes=int(m))


def s1_events() -> list:
    e = lambda *a, **k: event("S1", *a, **k)  # noqa: E731
    return [
        e("a", "ENTRY", at("10:00")), e("a", "ZONE_ENTER", at("10:01"), "SKIN"),
        e("a", "ZONE_EXIT", at("10:03"), "SKIN", 120_000),
        e("a", "ZONE_ENTER", at("10:05"), "Q", depth=1), e("a", "BILLING_QUEUE_JOIN", at("10:05"), "Q", depth=1),
        e("a", "ZONE_EXIT", at("10:08"), "Q", 180_000, depth=0),
        e("b", "ENTRY", at("10:30")), e("b", "ZONE_ENTER", at("10:31"), "PHONES"),
        e("b", "ZONE_EXIT", at("10:32"), "PHONES", 60_000),
        e("b", "ZONE_ENTER", at("10:40"), "Q", depth=1), e("b", "BILLING_QUEUE_JOIN", at("10:40"), "Q", depth=1),
        e("b", "ZONE_EXIT", at("10:45"), "Q", 300_000, depth=0),
        e("b", "BILLING_QUEUE_ABANDON", at("10:45"), "Q", 300_000),
        e("c", "ENTRY", at("11:10")),
        e("s", "ENTRY", at("10:00"), staff=True), e("s", "ZONE_ENTER", at("10:08"), "TILL", staff=True),
    ]


def s2_events() -> list:
    e = lambda *a, **k: event("S2", *a, camera="C2", **k)  # noqa: E731
    entries = [e(f"v{i}", "ENTRY", AT - timedelta(minutes=5 + 5 * i)) for i in range(8)]
    return [*entries, e("v0", "ZONE_ENTER", AT - timedelta(hours=2), "PHONES2"),
            e("v1", "ZONE_ENTER", AT - timedelta(minutes=2), "Q2", depth=7),
            e("v1", "BILLING_QUEUE_JOIN", AT - timedelta(minutes=2), "Q2", depth=7)]


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[TestClient]:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    EventLog(r).append(s1_events() + s2_events() + [event("S3", "now", "ENTRY", datetime.now(UTC), camera="C3")])
    for store in FLEET.stores:
        StoreAnalytics(r, store, FLEET.analytics).catch_up()
    StoreAnalytics(r, FLEET.stores[0], FLEET.analytics).record_transactions([
        Transaction(transaction_id="t1", timestamp=at("10:09"), amount=20.0),
        Transaction(transaction_id="t2", timestamp=at("12:00"))])
    CheckpointStore(r).put_health("S2", "C2", CameraHealth(
        state="running", extra={"last_frame_wall": str(AT.timestamp() - 300)}))
    ctx = ApiContext.create(FLEET, redis_url)
    ctx.keys = RING
    set_context(ctx)
    app = FastAPI()
    app.include_router(core.router)
    app.include_router(analytics.router)
    yield TestClient(app)
    r.flushdb()


MORNING = {"from": "2026-03-03T10:00:00Z", "to": "2026-03-03T12:00:00Z"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (MORNING, {"unique_visitors": 3, "purchasers": 1, "conversion_rate": 0.3333, "avg_dwell_ms": 90_000,
                   "queue_joins": 2, "queue_abandons": 1, "abandonment_rate": 0.5, "transactions": 1,
                   "matched_transactions": 1, "queue_depth_current": 0, "entries": 3}),
        ({"from": "2026-03-03T10:00:00Z", "to": "2026-03-03T11:00:00Z"},
         {"unique_visitors": 2, "purchasers": 1, "conversion_rate": 0.5, "queue_joins": 2}),
        ({"from": "2026-03-03T11:00:00Z", "to": "2026-03-03T13:00:00Z"},  # the 12:00 sale matched nobody
         {"unique_visitors": 1, "purchasers": 0, "conversion_rate": 0.0, "transactions": 1,
          "matched_transactions": 0}),
        ({"from": "2026-03-03T15:30:00+05:30", "to": "2026-03-03T16:30:00+05:30"},  # 10:00-11:00 UTC
         {"unique_visitors": 2}),
        ({"from": "2026-03-03T10:20:00Z", "to": "2026-03-03T10:40:00Z"},  # widened to whole hours
         {"unique_visitors": 2, "window": {"from": "2026-03-03T10:00:00Z", "to": "2026-03-03T11:00:00Z",
                                           "timezone": "UTC", "resolution": "hour"}}),
        ({"to": "2026-03-03T12:00:00Z"}, {"unique_visitors": 3}),  # from: that local day's midnight
        ({"from": "2026-03-04T00:00:00Z", "to": "2026-03-05T00:00:00Z"},
         {"unique_visitors": 0, "conversion_rate": 0.0, "avg_dwell_ms": 0, "abandonment_rate": 0.0}),
    ],
)
def test_store_metrics(client, params, expected) -> None:
    body = client.get("/stores/S1/metrics", params=params, headers=HQ).json()
    assert {k: body[k] for k in expected} == expected


def test_default_window_is_today_in_the_store_time_zone(client) -> None:
    body = client.get("/stores/S3/metrics", headers=HQ).json()
    assert body["unique_visitors"] == 1 and body["window"]["timezone"] == "UTC"
    start = datetime.fromisoformat(body["window"]["from"])
    assert start.hour == 0 and datetime.fromisoformat(body["window"]["to"]) - start == timedelta(days=1)


def test_funnel(client) -> None:
    body = client.get("/stores/S1/funnel", params=MORNING, headers=HQ).json()
    assert (body["entry"], body["zone_visit"], body["billing_queue"], body["purchased"]) == (3, 2, 2, 1)
    assert [(s["stage"], s["visitors"], s["drop_off"]) for s in body["stages"]] == [
        ("entry", 3, 0.0), ("zone_visit", 2, 0.3333), ("billing_queue", 2, 0.0), ("purchased", 1, 0.5)]


def test_heatmap(client) -> None:
    res = client.get("/stores/S1/heatmap", params={**MORNING, "bucket": "hour"}, headers=HQ)
    body = res.json()
    assert {z: (v["frequency"], v["avg_dwell_ms"], v["normalized"]) for z, v in body.items()} == {
        "SKIN": (1, 120_000, 50), "PHONES": (1, 60_000, 50), "Q": (2, 240_000, 100), "TILL": (0, 0, 0)}
    assert [b["start"] for b in body["Q"]["buckets"]] == ["2026-03-03T10:00:00Z"]
    assert res.headers["X-Window-From"] == "2026-03-03T10:00:00+00:00"
    day = client.get("/stores/S1/heatmap", params={**MORNING, "bucket": "day"}, headers=HQ).json()
    assert day["SKIN"]["buckets"][0]["start"] == "2026-03-03T00:00:00Z"
    assert client.get("/stores/S1/heatmap", params=MORNING, headers=HQ).json()["SKIN"]["buckets"] is None


def test_anomalies(client) -> None:
    body = client.get("/stores/S2/anomalies", params={"at": AT.isoformat()}, headers=HQ).json()
    found = {(a["type"], a["subject"], a["severity"]) for a in body["anomalies"]}
    assert found == {("queue_spike", "Q2", "medium"), ("dead_zone", "SKIN2", "medium"),
                     ("dead_zone", "PHONES2", "low"), ("stale_feed", "C2", "medium")}
    spike = next(a for a in body["anomalies"] if a["type"] == "queue_spike")
    assert spike["since"] == (AT - timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    assert spike["suggested_action"] and spike["details"]["queue_depth"] == 7


@pytest.mark.parametrize("path", ["metrics", "funnel", "heatmap", "anomalies"])
def test_store_without_data_answers_zeros(client, path) -> None:
    res = client.get(f"/stores/S3/{path}", params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}
                     if path != "anomalies" else {"at": "2020-01-01T00:00:00Z"}, headers=HQ)
    assert res.status_code == 200
    body = res.json()
    if path == "metrics":
        assert body["unique_visitors"] == 0 and body["conversion_rate"] == 0
    elif path == "funnel":
        assert body["entry"] == body["purchased"] == 0
    elif path == "heatmap":
        assert body == {}
    else:
        assert body["anomalies"] == []


def test_chain_metrics_and_ranking(client) -> None:
    body = client.get("/chain/metrics", params=MORNING, headers=HQ).json()
    assert (body["stores_count"], body["unique_visitors"], body["purchasers"], body["conversion_rate"]) == (
        3, 3, 1, 0.3333)
    assert [s["store_id"] for s in body["stores"]] == ["S1", "S2", "S3"]
    ranking = client.get("/chain/stores/ranking", params={**MORNING, "by": "unique_visitors"}, headers=HQ).json()
    assert [(s["store_id"], s["rank"], s["value"]) for s in ranking["stores"]] == [
        ("S1", 1, 3.0), ("S2", 2, 0.0), ("S3", 2, 0.0)]
    week = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-08T00:00:00Z"}
    ranking = client.get("/chain/stores/ranking", params={**week, "by": "unique_visitors"}, headers=HQ).json()
    assert [s["store_id"] for s in ranking["stores"]] == ["S2", "S1", "S3"] and ranking["stores"][0]["name"] == "Two"


def test_health_reports_each_store(client) -> None:
    body = client.get("/health", headers=HQ).json()
    assert {"status", "redis", "auth", "cameras"} <= set(body)  # the existing fields stay
    assert body["stores"]["S1"]["last_event_timestamp"] == "2026-03-03T11:10:00Z"
    assert body["stores"]["S1"]["lag_minutes"] > 0 and body["stores"]["S1"]["analytics_lag_events"] == 0
    assert body["stores"]["S1"]["events_total"] == len(s1_events())
    assert any("C2" in w for w in body["warnings"])


@pytest.mark.parametrize(
    ("key", "path", "status"),
    [
        (None, "/stores/S1/metrics", 401),
        ("sre-secret", "/stores/S1/metrics", 200),
        ("sre-secret", "/chain/metrics", 200),
        ("sre-secret", "/chain/stores/ranking", 200),
        ("sre-secret", "/stores/S1/funnel", 403),
        ("sre-secret", "/stores/S1/anomalies", 403),
        ("s1-secret", "/stores/S1/metrics", 200),
        ("s1-secret", "/stores/S1/heatmap", 200),
        ("s1-secret", "/stores/S2/funnel", 403),
        ("s1-secret", "/chain/metrics", 403),
        ("s1-secret", "/chain/stores/ranking", 403),
        ("hq-secret", "/stores/S2/anomalies", 200),
        ("hq-secret", "/stores/NOPE/metrics", 404),
        ("hq-secret", "/stores/NOPE/heatmap", 404),
    ],
)
def test_roles(client, key, path, status) -> None:
    assert client.get(path, headers={"X-API-Key": key} if key else {}).status_code == status


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/stores/S1/metrics", {"from": "2026-03-03T10:00:00"}, "`from` needs a time zone"),
        ("/stores/S1/funnel", {"from": "2026-03-03T12:00:00Z", "to": "2026-03-03T10:00:00Z"}, "after `from`"),
        ("/chain/metrics", {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "more than 400 days"),
        ("/stores/S1/anomalies", {"at": "2026-03-03T10:00:00"}, "`at` needs a time zone"),
        ("/stores/S1/heatmap", {"bucket": "week"}, "hour"),
        ("/chain/stores/ranking", {"by": "mood"}, "conversion_rate"),
        ("/stores/S1/metrics", {"from": "yesterday"}, "datetime"),
    ],
)
def test_bad_parameters_are_422_with_the_reason(client, path, params, message) -> None:
    res = client.get(path, params=params, headers=HQ)
    assert res.status_code == 422 and message in res.text
