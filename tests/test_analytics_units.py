"""Store analytics, pure logic: hour buckets and windows, funnel stages, batch derivation, POS matching
rules, funnel/heatmap/ranking arithmetic and the anomaly rules (no Redis, no Ray)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from workloads.analytics import anomalies, chain, funnel, heatmap
from workloads.analytics.aggregator import derive, split_zone_field, zone_field
from workloads.analytics.buckets import Window, WindowError, bucket_of, buckets_between, resolve, snap
from workloads.analytics.metrics import MetricsReport, WindowInfo, compute
from workloads.analytics.pos import best_visitor, merge_ranges
from workloads.analytics.queue import QueueNow
from workloads.analytics.settings import AnalyticsConfig
from workloads.analytics.stages import Stage, ZoneKind, billing_presence, kind_of, stage_of
from workloads.analytics.window import WindowTotals
from workloads.config import StoreConfig, ZoneType
from workloads.events import EventMetadata, EventType, VisitorEvent
from workloads.state.checkpoints import CameraHealth

UTC_TZ, IST, NY = ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


STORE = StoreConfig.model_validate({"id": "S1", "timezone": "UTC", "cameras": [{
    "id": "C1", "source": "synthetic:empty", "zones": [
        {"id": "SKIN", "type": "PRODUCT", "sku_zone": "SKINCARE", "polygon": [[0, 0], [10, 0], [10, 10]]},
        {"id": "PHONES", "type": "HIGH_VALUE", "polygon": [[0, 0], [10, 0], [10, 10]]},
        {"id": "Q", "type": "BILLING_QUEUE", "polygon": [[0, 0], [10, 0], [10, 10]]},
        {"id": "TILL", "type": "CHECKOUT", "polygon": [[0, 0], [10, 0], [10, 10]]},
        {"id": "STOCK", "type": "RESTRICTED", "polygon": [[0, 0], [10, 0], [10, 10]]},
    ]}]})


def ev(visitor: str, etype: str, at_s: float, zone: str | None = None, dwell_ms: int = 0, staff: bool = False,
       depth: int | None = None, camera: str = "C1") -> VisitorEvent:
    return VisitorEvent(event_id=uuid.uuid4(), store_id="S1", camera_id=camera, visitor_id=visitor,
                        event_type=EventType(etype), timestamp=T0 + timedelta(seconds=at_s), zone_id=zone,
                        dwell_ms=dwell_ms, is_staff=staff, metadata=EventMetadata(queue_depth=depth))


# ------------------------------------------------------------------------------------------ buckets


@pytest.mark.parametrize(
    ("ts", "tz", "bucket_start"),
    [
        ("2026-03-03T08:59:59.999Z", UTC_TZ, "2026-03-03T08:00:00Z"),
        ("2026-03-03T09:00:00Z", UTC_TZ, "2026-03-03T09:00:00Z"),
        ("2026-03-03T09:29:59Z", IST, "2026-03-03T08:30:00Z"),  # +05:30: local hours start at :30 UTC
        ("2026-03-03T09:30:00Z", IST, "2026-03-03T09:30:00Z"),
        # New York fall-back: local 01:xx happens twice, as two different buckets.
        ("2026-11-01T05:30:00Z", NY, "2026-11-01T05:00:00Z"),  # 01:30 EDT
        ("2026-11-01T06:30:00Z", NY, "2026-11-01T06:00:00Z"),  # 01:30 EST
    ],
)
def test_bucket_is_the_local_hour(ts, tz, bucket_start) -> None:
    assert iso(bucket_of(utc(ts), tz)) == bucket_start


@pytest.mark.parametrize(
    ("start", "end", "tz", "expected"),
    [
        ("2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z", UTC_TZ, ("2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z")),
        ("2026-03-03T14:22:00Z", "2026-03-03T15:00:01Z", UTC_TZ, ("2026-03-03T14:00:00Z", "2026-03-03T16:00:00Z")),
        ("2026-03-03T14:00:00Z", "2026-03-03T14:00:00.001Z", UTC_TZ,
         ("2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z")),
        ("2026-03-03T10:00:00+05:30", "2026-03-03T12:00:00+05:30", IST,
         ("2026-03-03T04:30:00Z", "2026-03-03T06:30:00Z")),
    ],
)
def test_windows_widen_to_whole_local_hours(start, end, tz, expected) -> None:
    w = snap(utc(start), utc(end), tz)
    assert (iso(w.start), iso(w.end)) == expected


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-03-03T15:00:00Z", "2026-03-03T14:00:00Z", "`to` must be after `from`"),
        ("2026-03-03T14:00:00Z", "2026-03-03T14:00:00Z", "`to` must be after `from`"),
        ("2026-03-03T14:00:00", "2026-03-03T15:00:00Z", "`from` needs a time zone"),
        ("2025-01-01T00:00:00Z", "2026-03-03T15:00:00Z", "more than 400 days"),
    ],
)
def test_bad_windows_say_what_is_wrong(start, end, message) -> None:
    with pytest.raises(WindowError, match=message):
        resolve(datetime.fromisoformat(start.replace("Z", "+00:00")),
                datetime.fromisoformat(end.replace("Z", "+00:00")), UTC_TZ, T0)


@pytest.mark.parametrize(
    ("start", "end", "now", "tz", "expected"),
    [
        (None, None, "2026-03-03T20:00:00Z", IST, ("2026-03-03T18:30:00Z", "2026-03-04T18:30:00Z")),  # IST "today"
        (None, None, "2026-03-03T17:00:00Z", IST, ("2026-03-02T18:30:00Z", "2026-03-03T18:30:00Z")),
        ("2026-03-03T10:00:00Z", None, "2026-03-03T12:10:00Z", UTC_TZ,
         ("2026-03-03T10:00:00Z", "2026-03-03T13:00:00Z")),
        (None, "2026-03-03T12:00:00Z", "2026-03-05T00:00:00Z", UTC_TZ,
         ("2026-03-03T00:00:00Z", "2026-03-03T12:00:00Z")),
        (None, None, "2026-11-01T12:00:00Z", NY, ("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")),  # 25 h day
    ],
)
def test_default_windows(start, end, now, tz, expected) -> None:
    w = resolve(utc(start) if start else None, utc(end) if end else None, tz, utc(now))
    assert (iso(w.start), iso(w.end)) == expected


def test_buckets_between_covers_a_dst_day_hour_by_hour() -> None:
    w = resolve(None, None, NY, utc("2026-11-01T12:00:00Z"))
    bs = buckets_between(w.start, w.end, NY)
    assert len(bs) == 25 and len(set(bs)) == 25 and all(b2 - b1 == 3600 for b1, b2 in pairwise(bs))


# ------------------------------------------------------------------------------------------- stages


@pytest.mark.parametrize(
    ("etype", "zone_type", "kind", "stage"),
    [
        ("ENTRY", None, None, Stage.ENTRY),
        ("REENTRY", None, None, Stage.ENTRY),
        ("EXIT", None, None, None),
        ("ZONE_ENTER", ZoneType.PRODUCT, ZoneKind.BROWSE, Stage.ZONE),
        ("ZONE_DWELL", ZoneType.HIGH_VALUE, ZoneKind.BROWSE, Stage.ZONE),
        ("ZONE_EXIT", ZoneType.PRODUCT, ZoneKind.BROWSE, None),
        ("ZONE_ENTER", ZoneType.BILLING_QUEUE, ZoneKind.BILLING, Stage.BILLING),
        ("ZONE_ENTER", ZoneType.CHECKOUT, ZoneKind.BILLING, Stage.BILLING),
        ("ZONE_ENTER", ZoneType.RESTRICTED, ZoneKind.OTHER, None),
        ("ZONE_ENTER", None, ZoneKind.BROWSE, Stage.ZONE),  # a zone only an external pipeline knows
        ("BILLING_QUEUE_JOIN", None, ZoneKind.BILLING, Stage.BILLING),
        ("BILLING_QUEUE_ABANDON", ZoneType.BILLING_QUEUE, ZoneKind.BILLING, None),
    ],
)
def test_stage_of_each_event(etype, zone_type, kind, stage) -> None:
    zone = None if etype in ("ENTRY", "REENTRY", "EXIT") else "Z"
    e = ev("v", etype, 0, zone)
    got_kind = kind_of(zone_type, e.event_type) if zone else None
    assert got_kind == kind and stage_of(e, got_kind) == stage


@pytest.mark.parametrize(
    ("etype", "zone", "dwell_ms", "presence"),
    [
        ("ZONE_ENTER", "Q", 0, (0, 0)),
        ("ZONE_EXIT", "Q", 30_000, (-30_000, 0)),
        ("BILLING_QUEUE_ABANDON", "Q", 10_000, (-10_000, 0)),
        ("ZONE_EXIT", "TILL", 5_000, (-5_000, 0)),
        ("ZONE_EXIT", "Q", 5 * 3600 * 1000, (-2 * 3600 * 1000, 0)),  # clipped to 2 h
        ("ZONE_EXIT", "SKIN", 30_000, None),
    ],
)
def test_billing_presence(etype, zone, dwell_ms, presence) -> None:
    e = ev("v", etype, 0, zone, dwell_ms)
    kind = kind_of({"Q": ZoneType.BILLING_QUEUE, "TILL": ZoneType.CHECKOUT, "SKIN": ZoneType.PRODUCT}[zone],
                   e.event_type)
    got = billing_presence(e, kind)
    assert got == (None if presence is None else (e.ts_ms + presence[0], e.ts_ms + presence[1]))


def test_derive_counts_a_visit_and_ignores_staff() -> None:
    events = [
        ev("a", "ENTRY", 0), ev("a", "ZONE_ENTER", 10, "SKIN"), ev("a", "ZONE_EXIT", 70, "SKIN", 60_000),
        ev("a", "ZONE_ENTER", 100, "Q", depth=2), ev("a", "BILLING_QUEUE_JOIN", 100, "Q", depth=2),
        ev("a", "ZONE_EXIT", 160, "Q", 60_000, depth=1), ev("a", "EXIT", 200),
        ev("s", "ENTRY", 5, staff=True), ev("s", "ZONE_ENTER", 6, "Q", staff=True, depth=3),
        ev("b", "ENTRY", 3600),  # next hour
    ]
    d = derive(events, STORE, AnalyticsConfig())
    h0, h1 = int(T0.timestamp()), int(T0.timestamp()) + 3600
    assert d.buckets == {h0, h1}
    assert d.counts[h0]["entries"] == 1 and d.counts[h0]["exits"] == 1 and d.counts[h1]["entries"] == 1
    assert d.counts[h0]["staff_events"] == 2 and d.counts[h0]["events"] == 9
    assert d.counts[h0][zone_field("SKIN", "visits")] == 1 and d.counts[h0]["dwell_ms"] == 60_000
    assert d.counts[h0]["dwell_n"] == 1  # the queue exit is no browsing dwell
    assert d.counts[h0]["queue_joins"] == 1
    assert d.visitors[(h0, Stage.ENTRY)] == {"a"} and d.visitors[(h0, Stage.BILLING)] == {"a"}
    assert d.visitors[(h1, Stage.ENTRY)] == {"b"} and d.staff == {"s": events[7].ts_ms}
    assert d.queue_latest["Q"] == (events[5].ts_ms, 1)  # the newest report, staff events included
    assert d.queue_peaks[f"{h0}|Q"] == 3
    assert d.dirty == (events[3].ts_ms, events[5].ts_ms + 300_000)
    assert d.zone_last == {"SKIN": events[2].ts_ms, "Q": events[5].ts_ms}
    assert d.camera_last == {"C1": events[-1].ts_ms}


@pytest.mark.parametrize("zone", ["Z", "a:b", "x:visits"])
def test_zone_fields_round_trip(zone) -> None:
    assert split_zone_field(zone_field(zone, "dwell_ms")) == (zone, "dwell_ms")


# ---------------------------------------------------------------------------------------------- POS

W = 300_000
T = 10_000_000


@pytest.mark.parametrize(
    ("presences", "staff", "expected"),
    [
        ([], set(), None),  # nobody in billing
        ([("a", T - 60_000, T - 60_000)], set(), "a"),
        ([("a", T - W, T - W)], set(), "a"),  # exactly 5 min before
        ([("a", T - W - 1, T - W - 1)], set(), None),  # just over 5 min
        ([("a", T + 1, T + 1)], set(), None),  # in billing only after the sale
        ([("a", T - 600_000, T + 60_000)], set(), "a"),  # queued from 10 min before until after it
        ([("a", T - 200_000, T - 200_000), ("b", T - 30_000, T - 30_000)], set(), "b"),  # two: the latest wins
        ([("a", T - 100_000, T - 10_000), ("b", T - 90_000, T + 10_000)], set(), "a"),  # same distance: first in
        ([("b", T - 10_000, T - 10_000), ("a", T - 10_000, T - 10_000)], set(), "a"),  # full tie: smaller id
        ([("staff1", T - 1_000, T - 1_000)], {"staff1"}, None),  # staff never count
        ([("staff1", T - 1_000, T - 1_000), ("c", T - 250_000, T - 250_000)], {"staff1"}, "c"),
        # at the till when the sale is rung up beats a queue presence that ended closer to it
        ([("payer", T - 60_000, T + 20_000, True), ("next", T - 90_000, T + 1_000)], set(), "payer"),
        ([("payer", T - 60_000, T + 20_000, True), ("next", T - 90_000, T + 1_000, True)], set(), "next"),
        ([("early", T - 60_000, T - 5_000, True), ("next", T - 90_000, T - 1_000)], set(), "next"),  # left the till
        ([("staff1", T - 1_000, T + 1_000, True), ("c", T - 9_000, T - 9_000)], {"staff1"}, "c"),
    ],
)
def test_best_visitor(presences, staff, expected) -> None:
    assert best_visitor(T, presences, staff, W) == expected
    assert best_visitor(T, list(reversed(presences)), staff, W) == expected  # order never matters


@pytest.mark.parametrize(
    ("ranges", "merged"),
    [([], []), ([(5, 9), (1, 3)], [(1, 3), (5, 9)]), ([(1, 5), (4, 9), (9, 12)], [(1, 12)])],
)
def test_merge_ranges(ranges, merged) -> None:
    assert merge_ranges(ranges) == merged


# --------------------------------------------------------------------------- funnel, heatmap, chain

WIN = Window(int(T0.timestamp()), int(T0.timestamp()) + 3600, "UTC")


def totals(**kw) -> WindowTotals:
    t = WindowTotals("S1", WIN)
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def test_funnel_drop_off() -> None:
    f = funnel.compute(totals(funnel={"entry": 100, "zone": 80, "billing": 40, "purchased": 30},
                              reached={"entry": 100, "zone": 90, "billing": 45, "purchased": 31}))
    assert (f.entry, f.zone_visit, f.billing_queue, f.purchased) == (100, 80, 40, 30)
    assert [s.drop_off for s in f.stages] == [0.0, 0.2, 0.5, 0.25]
    assert [s.reached for s in f.stages] == [100, 90, 45, 31]


def test_empty_funnel_is_zeros() -> None:
    f = funnel.compute(totals())
    assert (f.entry, f.purchased) == (0, 0) and all(s.conversion_from_previous in (0.0, 1.0) for s in f.stages)


def test_heatmap_normalises_to_the_busiest_zone_and_lists_every_zone() -> None:
    c = Counter({zone_field("SKIN", "visits"): 40, zone_field("SKIN", "dwell_ms"): 90_000,
                 zone_field("SKIN", "dwell_n"): 3, zone_field("PHONES", "visits"): 10,
                 zone_field("EXTERNAL", "visits"): 20})
    h = heatmap.compute(totals(counts=c, per_bucket={WIN.start: c}), STORE, "hour")
    assert {z: v.normalized for z, v in h.items()} == {
        "SKIN": 100, "PHONES": 25, "Q": 0, "TILL": 0, "STOCK": 0, "EXTERNAL": 50}
    assert h["SKIN"].avg_dwell_ms == 30_000 and h["SKIN"].sku_zone == "SKINCARE" and h["EXTERNAL"].zone_type is None
    assert h["SKIN"].buckets[0].frequency == 40 and h["Q"].buckets == []


def report(store_id: str, visitors: int, buyers: int) -> MetricsReport:
    return MetricsReport(store_id=store_id, window=WindowInfo.of(WIN), unique_visitors=visitors, purchasers=buyers,
                         conversion_rate=buyers / visitors if visitors else 0, avg_dwell_ms=0, queue_depth_current=0,
                         queue_joins=0, queue_abandons=0, abandonment_rate=0, entries=visitors, transactions=buyers,
                         matched_transactions=buyers)


def test_chain_conversion_pools_visitors_not_rates() -> None:
    c = chain.combine([totals(), totals()], [report("A", 10, 5), report("B", 90, 9)])
    assert c.unique_visitors == 100 and c.conversion_rate == 0.14  # not (0.5 + 0.1) / 2


@pytest.mark.parametrize(
    ("by", "order", "expected"),
    [
        ("conversion_rate", "desc", [("A", 1), ("C", 1), ("B", 3)]),
        ("conversion_rate", "asc", [("B", 1), ("A", 2), ("C", 2)]),
        ("unique_visitors", "desc", [("B", 1), ("A", 2), ("C", 3)]),
    ],
)
def test_ranking(by, order, expected) -> None:
    reports = [report("C", 4, 2), report("A", 10, 5), report("B", 90, 9)]
    r = chain.rank(reports, {}, by, order)
    assert [(s.store_id, s.rank) for s in r.stores] == expected


def test_metrics_of_an_empty_window_are_zero() -> None:
    m = compute(totals(), QueueNow({}))
    assert (m.unique_visitors, m.conversion_rate, m.avg_dwell_ms, m.abandonment_rate) == (0, 0.0, 0, 0.0)
    assert m.queue_depth_as_of is None and m.model_dump()["window"]["from"] == WIN.start_dt


# -------------------------------------------------------------------------------------------- anomalies

AT = T0 + timedelta(hours=10)
AT_MS = int(AT.timestamp() * 1000)
CFG = AnalyticsConfig()


def signals(**kw) -> anomalies.Signals:
    base = {"at": AT, "today": totals(), "baseline": [], "recent_entries": 0, "samples": {},
            "queue_now": QueueNow({}), "peaks": {}, "zone_last": {}, "camera_last": {}, "health": {}}
    base.update(kw)
    return anomalies.Signals(**base)


def found(s: anomalies.Signals) -> list[tuple[str, str, str]]:
    return [(a.type, a.subject, a.severity) for a in anomalies.detect(s, CFG, STORE).anomalies]


def visitors_day(visitors: int, buyers: int, tx: int | None = None) -> WindowTotals:
    return totals(reached={"entry": visitors, "zone": 0, "billing": 0, "purchased": buyers}, purchasers=buyers,
                  transactions=buyers if tx is None else tx,
                  per_bucket={WIN.start: Counter(entries=visitors)})


MIN = 60_000


@pytest.mark.parametrize(
    ("case", "kw", "expected"),
    [
        ("quiet store", {}, []),
        ("queue at the minimum spike depth", {"samples": {"Q": [(AT_MS - 5 * MIN, 2), (AT_MS - MIN, 5)]}},
         [("queue_spike", "Q", "medium")]),
        ("queue below its usual peak x2", {"samples": {"Q": [(AT_MS - MIN, 7)]}, "peaks": {"Q": [4, 4, 5]}}, []),
        ("queue far above its usual peak", {"samples": {"Q": [(AT_MS - MIN, 20)]}, "peaks": {"Q": [4, 4, 5]}},
         [("queue_spike", "Q", "high")]),
        ("old queue report is not current", {"samples": {"Q": [(AT_MS - 40 * MIN, 9)]}}, []),
        ("conversion halved", {"today": visitors_day(100, 15), "baseline": [visitors_day(100, 30)] * 7},
         [("conversion_drop", "S1", "medium")]),
        ("conversion collapsed", {"today": visitors_day(100, 2), "baseline": [visitors_day(100, 30)] * 7},
         [("conversion_drop", "S1", "high")]),
        ("conversion normal", {"today": visitors_day(100, 28), "baseline": [visitors_day(100, 30)] * 7}, []),
        ("too few visitors to judge", {"today": visitors_day(5, 0), "baseline": [visitors_day(100, 30)] * 7}, []),
        ("no POS baseline: nothing to compare", {"today": visitors_day(100, 0), "baseline": [visitors_day(100, 0)]},
         []),
        ("POS feed stopped", {"today": visitors_day(100, 0, tx=0), "baseline": [visitors_day(100, 30)] * 7},
         [("conversion_drop", "S1", "high")]),
        ("dead zones while visitors come in",
         {"recent_entries": 12, "zone_last": {"SKIN": AT_MS - 61 * MIN, "PHONES": AT_MS - 5 * MIN}},
         [("dead_zone", "SKIN", "low")]),
        ("zones idle in a closed store", {"recent_entries": 0, "zone_last": {"SKIN": AT_MS - 600 * MIN}}, []),
    ],
)
def test_anomaly_rules(case, kw, expected) -> None:
    got = [a for a in found(signals(**kw)) if a[0] != "dead_zone" or "zone_last" in kw]
    assert got == expected, case


def test_dead_zone_never_visited_is_medium_and_dates_nothing() -> None:
    report_ = anomalies.detect(signals(recent_entries=10, zone_last={"SKIN": AT_MS}), CFG, STORE)
    phones = [a for a in report_.anomalies if a.subject == "PHONES"]
    assert phones and phones[0].severity == "medium" and phones[0].since is None
    assert all(a.subject != "SKIN" for a in report_.anomalies)


def test_queue_spike_since_is_the_start_of_the_run() -> None:
    s = signals(samples={"Q": [(AT_MS - 30 * MIN, 6), (AT_MS - 20 * MIN, 2), (AT_MS - 10 * MIN, 5),
                               (AT_MS - 5 * MIN, 8)]})
    (a,) = anomalies.detect(s, CFG, STORE).anomalies
    assert a.since == AT - timedelta(minutes=10) and a.details["queue_depth"] == 8


@pytest.mark.parametrize(
    ("health", "camera_last", "expected"),
    [
        ({"C1": CameraHealth(state="running", extra={"last_frame_wall": str(AT.timestamp() - 5)})}, {}, []),
        ({"C1": CameraHealth(state="running", extra={"last_frame_wall": str(AT.timestamp() - 120)})}, {},
         [("stale_feed", "C1", "medium")]),
        ({"C1": CameraHealth(state="reconnecting", extra={"last_frame_wall": str(AT.timestamp() - 3600)})}, {},
         [("stale_feed", "C1", "high")]),
        ({"C1": CameraHealth(state="finished", extra={"last_frame_wall": str(AT.timestamp() - 3600)})}, {}, []),
        ({"C1": CameraHealth(state="failed", error="no route to host")}, {}, [("stale_feed", "C1", "high")]),
        # external cameras (no health): silent for 40 min while another camera reports
        ({}, {"EXT1": AT_MS - 40 * MIN, "EXT2": AT_MS}, [("stale_feed", "EXT1", "medium")]),
        ({}, {"EXT1": AT_MS - 10 * MIN, "EXT2": AT_MS}, []),
    ],
)
def test_stale_feeds(health, camera_last, expected) -> None:
    assert found(signals(health=health, camera_last=camera_last)) == expected
