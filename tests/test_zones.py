"""The zone visit state machine, driven by per-frame scripts.

A script is one string per track, one character per frame (frames every 0.2 s):
    Z / Q / K  feet inside the zone of that letter (PRODUCT, BILLING_QUEUE, CHECKOUT)
    o          feet observed outside every zone
    -          not observed on that frame (occlusion, missed detection)
    x          the tracker ends the track on that frame (lost for good)
    .          the track does not exist yet / any more
Expected events are (type, track, zone, t, dwell) with t and dwell in seconds from the start.
"""

from __future__ import annotations

import numpy as np
import pytest

from workloads.config import ZoneConfig, ZoneType
from workloads.events import EventType
from workloads.zones import ZoneTracker

T0 = 1_772_000_000.0  # epoch seconds: exercises the float-noise slack of real timestamps
STEP = 0.2
POINTS = {"Z": (50.0, 50.0), "Q": (150.0, 50.0), "K": (250.0, 50.0), "o": (50.0, 300.0)}

ENTER, EXIT, DWELL = EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.ZONE_DWELL
JOIN, ABANDON = EventType.BILLING_QUEUE_JOIN, EventType.BILLING_QUEUE_ABANDON


def square(x0: float) -> list[tuple[float, float]]:
    return [(x0, 0), (x0 + 100, 0), (x0 + 100, 100), (x0, 100)]


def product(**kw) -> ZoneConfig:
    base = {"min_inside_s": 0.4, "exit_grace_s": 1.0, "dwell_threshold_s": 10.0}
    return ZoneConfig(id="Z", type=ZoneType.PRODUCT, polygon=square(0), sku_zone="shoes", **{**base, **kw})


def queue(**kw) -> ZoneConfig:
    base = {"min_inside_s": 0.4, "exit_grace_s": 1.0, "abandon_grace_s": 3.0}
    return ZoneConfig(id="Q", type=ZoneType.BILLING_QUEUE, polygon=square(100), **{**base, **kw})


def checkout(**kw) -> ZoneConfig:
    return ZoneConfig(id="K", type=ZoneType.CHECKOUT, polygon=square(200), **{"min_inside_s": 0.4, **kw})


def run(
    zones: list[ZoneConfig], tracks: dict[int, str], close: bool = False, full: bool = False
) -> list[tuple]:
    zt = ZoneTracker(zones)
    events = []
    n = max(len(s) for s in tracks.values())
    for f in range(n):
        t = T0 + f * STEP
        ids, pts = [], []
        for tid, script in tracks.items():
            c = script[f] if f < len(script) else "."
            if c == "x":
                events += zt.end_track(tid)
            elif c in POINTS:
                ids.append(tid)
                pts.append(POINTS[c])
        events += zt.update(t, np.array(ids, dtype=int), np.array(pts, dtype=float).reshape(-1, 2))
    if close:
        events += zt.close()

    def row(e):
        base = (e.event_type, e.track_id, e.zone_id, round(e.t - T0, 3), round(e.dwell_s, 3))
        return (*base, e.queue_depth, e.sku_zone) if full else base

    return [row(e) for e in events]


@pytest.mark.parametrize(
    ("zones", "tracks", "close", "expected"),
    [
        pytest.param([product()], {1: "ZZooooooooo"}, False, [], id="quick-pass-shorter-than-min-inside"),
        pytest.param([product()], {1: "oZoZoZoZoZo"}, False, [], id="edge-flicker-never-confirms"),
        pytest.param(
            [product()],
            {1: "Z" * 16 + "o" * 8},
            False,
            [(ENTER, 1, "Z", 0.0, 0.0), (EXIT, 1, "Z", 3.0, 3.0)],
            id="enter-exit-with-dwell",
        ),
        pytest.param(
            [product()],
            {1: "Z" * 16 + "o" * 4},
            False,
            [(ENTER, 1, "Z", 0.0, 0.0)],
            id="exit-not-before-grace",
        ),
        pytest.param(
            [product()],
            {1: "Z" * 6 + "o" * 4 + "Z" * 6 + "o" * 6},
            False,
            [(ENTER, 1, "Z", 0.0, 0.0), (EXIT, 1, "Z", 3.0, 3.0)],
            id="brief-step-out-within-grace-is-one-visit",
        ),
        pytest.param(
            [product()],
            {1: "Z" * 6 + "-" * 12 + "Z" * 4 + "o" * 6},
            False,
            [(ENTER, 1, "Z", 0.0, 0.0), (EXIT, 1, "Z", 4.2, 4.2)],
            id="occlusion-longer-than-grace-is-one-visit",
        ),
        pytest.param(
            [product()],
            {1: "Z" * 6 + "o" * 6 + "Z" * 6 + "o" * 6},
            False,
            [
                (ENTER, 1, "Z", 0.0, 0.0),
                (EXIT, 1, "Z", 1.0, 1.0),
                (ENTER, 1, "Z", 2.4, 0.0),
                (EXIT, 1, "Z", 3.4, 1.0),
            ],
            id="step-out-for-exactly-grace-is-two-visits",
        ),
        pytest.param(
            [product(dwell_threshold_s=2.0)],
            {1: "Z" * 25 + "o" * 6},
            False,
            [(ENTER, 1, "Z", 0.0, 0.0), (DWELL, 1, "Z", 2.0, 2.0), (EXIT, 1, "Z", 4.8, 4.8)],
            id="dwell-fires-once",
        ),
        pytest.param(
            [product(min_inside_s=0.0, exit_grace_s=0.0)],
            {1: "oZoZ"},
            False,
            [
                (ENTER, 1, "Z", 0.2, 0.0),
                (EXIT, 1, "Z", 0.2, 0.0),
                (ENTER, 1, "Z", 0.6, 0.0),
            ],
            id="no-debounce",
        ),
        pytest.param(
            [product()],
            {1: "Z" * 10 + "x"},
            False,
            [(ENTER, 1, "Z", 0.0, 0.0), (EXIT, 1, "Z", 1.8, 1.8)],
            id="lost-track-closes-at-last-seen",
        ),
        pytest.param([product()], {1: "ZZx"}, False, [], id="lost-while-pending-is-nothing"),
        pytest.param(
            [product()],
            {1: "Z" * 10 + "-"},
            True,
            [(ENTER, 1, "Z", 0.0, 0.0), (EXIT, 1, "Z", 1.8, 1.8)],
            id="close-ends-open-visits",
        ),
        pytest.param(
            [product(), queue(), checkout()],
            {1: "Z" * 5 + "Q" * 10 + "o" * 20},
            False,
            [
                (ENTER, 1, "Z", 0.0, 0.0),
                (ENTER, 1, "Q", 1.0, 0.0),
                (JOIN, 1, "Q", 1.0, 0.0),
                (EXIT, 1, "Z", 0.8, 0.8),
                (EXIT, 1, "Q", 2.8, 1.8),
                (ABANDON, 1, "Q", 2.8, 1.8),
            ],
            id="queue-join-then-walk-away-is-abandon",
        ),
        pytest.param(
            [queue(), checkout()],
            {1: "Q" * 10 + "K" * 10 + "o" * 20},
            False,
            [
                (ENTER, 1, "Q", 0.0, 0.0),
                (JOIN, 1, "Q", 0.0, 0.0),
                (ENTER, 1, "K", 2.0, 0.0),
                (EXIT, 1, "Q", 1.8, 1.8),
                (EXIT, 1, "K", 3.8, 1.8),
            ],
            id="queue-join-then-checkout-is-no-abandon",
        ),
        pytest.param(
            [queue(), checkout()],
            {1: "Q" * 10 + "o" * 10 + "K" * 10},
            False,
            [
                (ENTER, 1, "Q", 0.0, 0.0),
                (JOIN, 1, "Q", 0.0, 0.0),
                (EXIT, 1, "Q", 1.8, 1.8),
                (ENTER, 1, "K", 4.0, 0.0),
            ],
            id="checkout-within-abandon-grace-is-no-abandon",
        ),
        pytest.param(
            [queue(abandon_grace_s=1.0), checkout()],
            {1: "Q" * 10 + "o" * 10 + "K" * 10},
            False,
            [
                (ENTER, 1, "Q", 0.0, 0.0),
                (JOIN, 1, "Q", 0.0, 0.0),
                (EXIT, 1, "Q", 1.8, 1.8),
                (ABANDON, 1, "Q", 1.8, 1.8),
                (ENTER, 1, "K", 4.0, 0.0),
            ],
            id="checkout-after-abandon-grace-is-too-late",
        ),
        pytest.param(
            [queue()],
            {1: "Q" * 10 + "o" * 30},
            False,
            [(ENTER, 1, "Q", 0.0, 0.0), (JOIN, 1, "Q", 0.0, 0.0), (EXIT, 1, "Q", 1.8, 1.8)],
            id="no-checkout-zone-never-abandons",
        ),
        pytest.param(
            [queue(), checkout()],
            {1: "Q" * 10 + "o" * 6 + "Q" * 10 + "K" * 10},
            False,
            [
                (ENTER, 1, "Q", 0.0, 0.0),
                (JOIN, 1, "Q", 0.0, 0.0),
                (EXIT, 1, "Q", 1.8, 1.8),
                (ENTER, 1, "Q", 3.2, 0.0),
                (JOIN, 1, "Q", 3.2, 0.0),
                (ENTER, 1, "K", 5.2, 0.0),
                (EXIT, 1, "Q", 5.0, 1.8),
            ],
            id="rejoin-within-abandon-grace-cancels-abandon",
        ),
        pytest.param(
            [queue(), checkout()],
            {1: "Q" * 10 + "x"},
            False,
            [(ENTER, 1, "Q", 0.0, 0.0), (JOIN, 1, "Q", 0.0, 0.0), (EXIT, 1, "Q", 1.8, 1.8)],
            id="vanished-inside-queue-is-no-abandon",
        ),
        pytest.param(
            [queue(), checkout()],
            {1: "Q" * 10 + "oo" + "x"},
            False,
            [
                (ENTER, 1, "Q", 0.0, 0.0),
                (JOIN, 1, "Q", 0.0, 0.0),
                (EXIT, 1, "Q", 1.8, 1.8),
                (ABANDON, 1, "Q", 1.8, 1.8),
            ],
            id="seen-leaving-then-lost-is-abandon",
        ),
    ],
)
def test_zone_state_machine(zones, tracks, close, expected):
    assert run(zones, tracks, close) == expected


def test_queue_depth_counts_confirmed_people():
    tracks = {
        1: "Q" * 20 + "o" * 16,  # leaves first, never reaches checkout
        2: "oo" + "Q" * 34,
        3: "oooo" + "Q" * 32,
        4: "ooooo" + "QQ" + "o" * 29,  # too quick to join: never counted
    }
    rows = [r for r in run([queue(), checkout()], tracks, full=True) if r[2] == "Q"]
    depth = {(r[0], r[1]): r[5] for r in rows}
    assert depth == {
        (ENTER, 1): 1,
        (JOIN, 1): 1,
        (ENTER, 2): 2,
        (JOIN, 2): 2,
        (ENTER, 3): 3,
        (JOIN, 3): 3,
        (EXIT, 1): 2,  # measured after the person left
        (ABANDON, 1): 2,
    }


def test_event_fields_sku_zone_and_depth_only_on_billing():
    rows = run([product(), queue()], {1: "Z" * 5 + "Q" * 5}, full=True)
    assert [(r[0], r[2], r[5], r[6]) for r in rows] == [
        (ENTER, "Z", None, "shoes"),
        (ENTER, "Q", 1, None),
        (JOIN, "Q", 1, None),
    ]


def test_queries_and_unknown_tracks():
    zt = ZoneTracker([product(), queue()])
    for f in range(3):
        zt.update(T0 + f * STEP, np.array([1, 2]), np.array([POINTS["Z"], POINTS["Q"]]))
    assert zt.confirmed_zones(1) == ["Z"]
    assert (zt.queue_depth("Q"), zt.queue_depth("Z")) == (1, 1)
    assert zt.track_ids() == [1, 2]
    assert zt.end_track(99) == []
    assert zt.update(T0 + 1, np.zeros(0, dtype=int), np.zeros((0, 2))) == []


def test_zone_tracker_without_zones_is_a_no_op():
    zt = ZoneTracker([])
    assert zt.update(T0, np.array([1]), np.array([[5.0, 5.0]])) == []
    assert zt.close() == []


def test_track_left_settles_grace_and_abandon_now():
    zt = ZoneTracker([product(), queue(), checkout()])
    for f, where in enumerate("QQQQQZZZZ"):  # queue, then over to the shoes, exit grace running
        zt.update(T0 + f * STEP, np.array([1]), np.array([POINTS[where]]))
    got = [(e.event_type, e.zone_id) for e in zt.track_left(1)]
    assert got == [(EXIT, "Q"), (ABANDON, "Q")]
    assert zt.confirmed_zones(1) == ["Z"]  # still inside the shoes zone: stays open
