"""Store analytics over a real Redis, without Ray: aggregates equal a brute-force recount of the raw
events for any window, are applied exactly once across restarts and racing aggregators, and POS
matches do not depend on whether the sales or the billing events arrive first."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.analytics_data import event, store_config, store_day
from workloads.analytics import metrics
from workloads.analytics.buckets import Window, snap
from workloads.analytics.pos import Transaction, best_visitor
from workloads.analytics.queue import read_queue_now
from workloads.analytics.service import StoreAnalytics
from workloads.analytics.settings import AnalyticsConfig
from workloads.analytics.stages import ZoneKind, billing_presence, kind_of, zone_types
from workloads.analytics.window import WindowReader
from workloads.events import EventType, VisitorEvent
from workloads.state.event_log import EventLog

START = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
SETTINGS = AnalyticsConfig()


def brute_force(events: list[VisitorEvent], sales: list[Transaction], store, w: Window) -> dict[str, object]:
    """The documented definitions, recomputed from raw events (an independent implementation)."""
    types = zone_types(store)
    staff = {e.visitor_id for e in events if e.is_staff}
    live = [e for e in events if not e.is_staff]
    inside = [e for e in live if w.contains_ms(e.ts_ms)]

    def kind(e: VisitorEvent) -> ZoneKind | None:
        return kind_of(types.get(e.zone_id), e.event_type) if e.zone_id else None

    entered = {e.visitor_id for e in inside if e.event_type in (EventType.ENTRY, EventType.REENTRY)} - staff
    zone = {e.visitor_id for e in inside
            if e.event_type in (EventType.ZONE_ENTER, EventType.ZONE_DWELL) and kind(e) is ZoneKind.BROWSE} - staff
    billing = {e.visitor_id for e in inside if e.event_type == EventType.BILLING_QUEUE_JOIN or (
        e.event_type in (EventType.ZONE_ENTER, EventType.ZONE_DWELL) and kind(e) is ZoneKind.BILLING)} - staff
    presences = [(e.visitor_id, *p) for e in live if (p := billing_presence(e, kind(e))) is not None]
    window_sales = [s for s in sales if w.contains_ms(s.ts_ms)]
    matches = [best_visitor(s.ts_ms, presences, staff, int(SETTINGS.purchase_window_s * 1000)) for s in window_sales]
    bought = {m for m in matches if m} - staff
    dwell = [e.dwell_ms for e in inside if e.event_type == EventType.ZONE_EXIT and kind(e) is ZoneKind.BROWSE]
    joins = sum(e.event_type == EventType.BILLING_QUEUE_JOIN for e in inside)
    abandons = sum(e.event_type == EventType.BILLING_QUEUE_ABANDON for e in inside)
    return {
        "unique_visitors": len(entered),
        "purchasers": len(entered & bought),
        "avg_dwell_ms": round(sum(dwell) / len(dwell)) if dwell else 0,
        "queue_joins": joins,
        "queue_abandons": abandons,
        "transactions": len(window_sales),
        "matched_transactions": sum(1 for m in matches if m),
        "funnel": (len(entered), len(entered & zone), len(entered & zone & billing),
                   len(entered & zone & billing & bought)),
        "reached": (len(entered), len(zone), len(billing), len(bought)),
    }


def figures(client, store_id: str, w: Window) -> dict[str, object]:
    t = WindowReader(client).totals(store_id, w)
    m = metrics.compute(t, read_queue_now(client, store_id))
    out: dict[str, object] = {k: getattr(m, k) for k in (
        "unique_visitors", "purchasers", "avg_dwell_ms", "queue_joins", "queue_abandons", "transactions",
        "matched_transactions")}
    out["funnel"] = tuple(t.funnel[k] for k in ("entry", "zone", "billing", "purchased"))
    out["reached"] = tuple(t.reached[k] for k in ("entry", "zone", "billing", "purchased"))
    return out


WINDOWS = [
    ("whole day", START - timedelta(hours=3), START + timedelta(hours=14)),
    ("one hour", START + timedelta(hours=2), START + timedelta(hours=3)),
    ("afternoon", START + timedelta(hours=5), START + timedelta(hours=9)),
    ("before opening", START - timedelta(hours=8), START - timedelta(hours=7)),
]


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kolkata"])
def test_aggregates_equal_a_recount_of_the_raw_events(redis_client, timezone) -> None:
    store = store_config("S1", timezone)
    events, sales = store_day("S1", START, visitors=150, seed=7)
    analytics = StoreAnalytics(redis_client, store, SETTINGS)
    half = len(events) // 2
    EventLog(redis_client).append(events[:half])
    analytics.record_transactions(sales[: len(sales) // 2])  # some sales before their billing events
    analytics.catch_up()
    EventLog(redis_client).append(events[half:])
    analytics.catch_up(batch=37)
    analytics.record_transactions(sales[len(sales) // 2:])
    tz = ZoneInfo(timezone)
    for name, start, end in WINDOWS:
        w = snap(start, end, tz)
        expected = brute_force(events, sales, store, w)
        assert figures(redis_client, "S1", w) == expected, name
    day = figures(redis_client, "S1", snap(*WINDOWS[0][1:], tz))
    assert day["purchasers"] > 10 and day["funnel"][2] > 10  # the data exercises every stage


def test_restart_and_racing_aggregators_apply_each_event_once(redis_client) -> None:
    store = store_config()
    events, sales = store_day("S1", START, visitors=120, seed=3)
    EventLog(redis_client).append(events)
    first = StoreAnalytics(redis_client, store, SETTINGS)
    first.catch_up(batch=50, max_events=200)  # then the actor "dies"
    first.record_transactions(sales)
    racers = [StoreAnalytics(redis_client, store, SETTINGS) for _ in range(3)]  # restarted while the old still runs
    threads = [threading.Thread(target=r.catch_up, kwargs={"batch": 20}) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert racers[0].lag() == 0
    w = snap(*WINDOWS[0][1:], ZoneInfo("UTC"))
    assert figures(redis_client, "S1", w) == brute_force(events, sales, store, w)
    EventLog(redis_client).append(events)  # a full replay: all duplicates, nothing changes
    assert racers[0].catch_up() == 0 and figures(redis_client, "S1", w) == brute_force(events, sales, store, w)


def _sale(tid: str, minute: float) -> Transaction:
    return Transaction(transaction_id=tid, timestamp=START + timedelta(minutes=minute))


BILLING = [  # (visitor, event type, minute, zone, dwell s, staff)
    ("ann", "ENTRY", 0, None, 0, False),
    ("ann", "ZONE_ENTER", 10, "Q", 0, False),
    ("ann", "ZONE_EXIT", 14, "Q", 240, False),
    ("bob", "ENTRY", 1, None, 0, False),
    ("bob", "ZONE_ENTER", 12, "Q", 0, False),
    ("bob", "ZONE_EXIT", 15.5, "Q", 210, False),
    ("kim", "ZONE_ENTER", 29, "TILL", 0, True),  # staff at the till
    ("cat", "ENTRY", 40, None, 0, False),
    ("cat", "ZONE_ENTER", 50, "Q", 0, False),  # still queueing: no exit yet
    ("dan", "ZONE_EXIT", 62, "TILL", 120, False),  # at the till 60:00-62:00
    ("eve", "ZONE_EXIT", 61.1, "Q", 90, False),  # steps up from the queue just after dan's sale
]
SALES = [
    _sale("t-ann", 14.1),  # ann left the queue at 14:00, bob at 15:30: ann
    _sale("t-bob", 15.6),
    _sale("t-staff", 30),  # only staff in billing within 5 min: nobody
    _sale("t-none", 90),  # nobody in billing at all
    _sale("t-cat", 54.9),  # cat joined at 50:00, 4:54 before
    _sale("t-late", 55.1),  # 5:06 after cat's join, and her exit is unknown yet
    _sale("t-dan", 61),  # eve's queue presence ended closer to it, but dan is at the till
]
EXPECTED = {"t-ann": "ann", "t-bob": "bob", "t-staff": None, "t-none": None, "t-cat": "cat", "t-late": None,
            "t-dan": "dan"}


def _billing_events() -> list[VisitorEvent]:
    return [event("S1", v, t, START + timedelta(minutes=m), z, int(d * 1000), staff)
            for v, t, m, z, d, staff in BILLING]


@pytest.mark.parametrize("order", ["sales first", "events first", "interleaved"])
def test_pos_matching_does_not_depend_on_arrival_order(redis_client, order) -> None:
    analytics = StoreAnalytics(redis_client, store_config(), SETTINGS)
    log, events = EventLog(redis_client), _billing_events()
    if order == "sales first":
        first = analytics.record_transactions(SALES)
        assert all(r.visitor_id is None for r in first)  # nothing seen yet
        log.append(events)
        analytics.catch_up()
    elif order == "events first":
        log.append(events)
        analytics.catch_up()
        analytics.record_transactions(SALES)
    else:
        log.append(events[:4])
        analytics.catch_up()
        analytics.record_transactions(SALES[:3])
        log.append(events[4:])
        analytics.catch_up()
        analytics.record_transactions(SALES[3:])
    again = analytics.record_transactions(SALES)  # a retried import: all duplicates, same matches
    assert {r.transaction_id: r.visitor_id for r in again} == EXPECTED
    assert {r.status for r in again} == {"duplicate"}
    w = snap(START, START + timedelta(hours=2), ZoneInfo("UTC"))
    t = WindowReader(redis_client).totals("S1", w)
    # dan's sale matches, but dan has no ENTRY in the window, so he is no purchaser among its visitors
    assert (t.transactions, t.matched_transactions, t.unique_visitors, t.purchasers) == (7, 4, 3, 3)


def test_a_later_billing_event_can_move_a_match(redis_client) -> None:
    analytics = StoreAnalytics(redis_client, store_config(), SETTINGS)
    log = EventLog(redis_client)
    log.append([event("S1", "ann", "ZONE_ENTER", START, "Q")])
    analytics.catch_up()
    (r,) = analytics.record_transactions([_sale("t1", 4)])
    assert r.visitor_id == "ann"
    log.append([event("S1", "bob", "ZONE_EXIT", START + timedelta(minutes=4, seconds=5), "Q", 200_000)])
    analytics.catch_up()  # bob left the queue 5 s after the sale: the payer
    (r,) = analytics.record_transactions([_sale("t1", 4)])
    assert (r.status, r.visitor_id) == ("duplicate", "bob")
    w = snap(START, START + timedelta(hours=1), ZoneInfo("UTC"))
    assert WindowReader(redis_client).totals("S1", w).matched_transactions == 1  # moved, not doubled


def test_a_visitor_flagged_staff_later_leaves_every_count(redis_client) -> None:
    analytics = StoreAnalytics(redis_client, store_config(), SETTINGS)
    log = EventLog(redis_client)
    log.append([event("S1", "x", "ENTRY", START), event("S1", "x", "ZONE_ENTER", START, "Q"),
                event("S1", "y", "ENTRY", START)])
    analytics.catch_up()
    analytics.record_transactions([_sale("t1", 1)])
    w = snap(START, START + timedelta(hours=1), ZoneInfo("UTC"))
    assert WindowReader(redis_client).totals("S1", w).purchasers == 1
    log.append([event("S1", "x", "ZONE_ENTER", START + timedelta(minutes=2), "TILL", staff=True)])
    analytics.catch_up()
    t = WindowReader(redis_client).totals("S1", w)
    assert (t.unique_visitors, t.purchasers, t.matched_transactions) == (1, 0, 0)


@pytest.mark.parametrize(
    ("window", "entries"),
    [
        (("13:00", "14:00"), ["a"]),  # 13:59:59.999 is in, 14:00:00.000 is not
        (("14:00", "15:00"), ["b", "c"]),  # 14:00:00.000 is in, 15:00:00.000 is not
        (("13:00", "15:00"), ["a", "b", "c"]),
        (("14:20", "14:40"), ["b", "c"]),  # widened to 14:00-15:00
        (("15:00", "16:00"), ["d"]),
    ],
)
def test_window_boundaries(redis_client, window, entries) -> None:
    at = {"a": "13:59:59.999", "b": "14:00:00", "c": "14:59:59.999", "d": "15:00:00"}
    EventLog(redis_client).append([
        event("S1", v, "ENTRY", datetime.fromisoformat(f"2026-03-03T{t}+00:00")) for v, t in at.items()])
    StoreAnalytics(redis_client, store_config(), SETTINGS).catch_up()
    start, end = (datetime.fromisoformat(f"2026-03-03T{h}+00:00") for h in window)
    assert WindowReader(redis_client).totals("S1", snap(start, end, ZoneInfo("UTC"))).unique_visitors == len(entries)


def test_unknown_or_empty_store_reads_as_zeros(redis_client) -> None:
    w = snap(START, START + timedelta(days=1), ZoneInfo("UTC"))
    t = WindowReader(redis_client).totals("EMPTY", w)
    assert (t.unique_visitors, t.purchasers, t.transactions, sum(t.funnel.values())) == (0, 0, 0, 0)
    assert read_queue_now(redis_client, "EMPTY").depth == 0


def test_a_sale_stored_but_not_matched_before_a_crash_is_matched_on_restart(redis_client) -> None:
    from workloads.state import keys

    log = EventLog(redis_client)
    log.append([event("S1", "ann", "ZONE_ENTER", START, "Q")])
    StoreAnalytics(redis_client, store_config(), SETTINGS).catch_up()
    sale = _sale("t1", 2)
    pipe = redis_client.pipeline(transaction=True)  # what `record` commits before it matches ...
    pipe.hsetnx(keys.pos_transactions("S1"), "t1", sale.model_dump_json())
    pipe.zadd(keys.pos_by_time("S1"), {"t1": sale.ts_ms}, nx=True)
    pipe.sadd(keys.pos_pending("S1"), "t1")
    pipe.execute()  # ... and the actor dies here
    restarted = StoreAnalytics(redis_client, store_config(), SETTINGS)
    restarted.catch_up()
    assert redis_client.hget(keys.pos_matches("S1"), "t1") == b"ann"
    assert not redis_client.smembers(keys.pos_pending("S1"))


def test_a_resent_sale_keeps_its_first_version(redis_client) -> None:
    analytics = StoreAnalytics(redis_client, store_config(), SETTINGS)
    EventLog(redis_client).append([event("S1", "ann", "ZONE_ENTER", START, "Q")])
    analytics.catch_up()
    (first,) = analytics.record_transactions([_sale("t1", 60)])  # nobody in billing then
    (again,) = analytics.record_transactions([_sale("t1", 2)])  # same id, another time: still the first
    assert (first.status, first.visitor_id, again.status, again.visitor_id) == ("accepted", None, "duplicate", None)
