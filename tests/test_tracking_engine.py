"""Tracker wrapper, staff rules and the camera engine end to end on scripted box trajectories.

The scene (640x480, 5 fps): a door tripwire across y = 200 (store below), a PRODUCT zone "shoes"
in the lower left, a BILLING_QUEUE zone "q1" and a CHECKOUT zone "till" in the lower right, and a
staff-only zone "stock" on the left, inside the store.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from workloads.camera_engine import CameraEventEngine, SnapshotMismatchError
from workloads.config import (
    CameraConfig,
    StaffZoneRule,
    StoreConfig,
    TrackerConfig,
    TripwireConfig,
    UniformColourRule,
    ZoneConfig,
    ZoneType,
)
from workloads.events import EventType, VisitorEvent, deterministic_event_id
from workloads.staff import StaffClassifier, StaffVote, matches_uniform, torso_crop, uniform_fraction
from workloads.tracking import PersonTracker

FPS = 5.0
T0 = datetime(2026, 3, 3, 14, 0, 0, tzinfo=UTC)
W, H = 640, 480
BOX_W, BOX_H = 40, 100
ENTRY, EXIT, REENTRY = EventType.ENTRY, EventType.EXIT, EventType.REENTRY
Z_ENTER, Z_EXIT, Z_DWELL = EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.ZONE_DWELL
JOIN, ABANDON = EventType.BILLING_QUEUE_JOIN, EventType.BILLING_QUEUE_ABANDON

OUTSIDE = (320, 120)  # feet positions
DOORWAY = (320, 260)
SHOES = (170, 380)
QUEUE = (470, 330)
TILL = (560, 430)
STOCK = (35, 260)


def rect(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def camera(**kw) -> CameraConfig:
    base = {
        "id": "cam-1",
        "source": "synthetic:empty",
        "tripwires": [TripwireConfig(id="door", points=((100, 200), (540, 200)), inside_point=(320, 400))],
        "zones": [
            ZoneConfig(
                id="shoes", type=ZoneType.PRODUCT, polygon=rect(80, 300, 260, 460), sku_zone="footwear"
            ),
            ZoneConfig(id="q1", type=ZoneType.BILLING_QUEUE, polygon=rect(400, 280, 540, 400)),
            ZoneConfig(id="till", type=ZoneType.CHECKOUT, polygon=rect(540, 400, 630, 470)),
            ZoneConfig(id="stock", type=ZoneType.RESTRICTED, polygon=rect(0, 220, 70, 300)),
        ],
    }
    return CameraConfig(**{**base, **kw})


def store(cam: CameraConfig, staff=()) -> StoreConfig:
    return StoreConfig(id="S1", cameras=[cam], staff=list(staff))


def make_engine(cam: CameraConfig | None = None, staff=(), tracker: TrackerConfig | None = None):
    cam = cam or camera()
    return CameraEventEngine(store(cam, staff), cam, tracker or TrackerConfig(), FPS)


def path(*legs: tuple[tuple[float, float], float]) -> list[tuple[float, float]]:
    """Feet positions, one per frame: walk to each waypoint at `speed` px/frame (0 speed = wait n frames)."""
    (x, y), _ = legs[0]
    out = [(float(x), float(y))]
    for (tx, ty), speed in legs[1:]:
        if speed <= 0:  # stand still for -speed frames
            out += [(x, y)] * int(-speed)
            continue
        n = max(1, int(np.ceil(np.hypot(tx - x, ty - y) / speed)))
        out += [(x + (tx - x) * k / n, y + (ty - y) * k / n) for k in range(1, n + 1)]
        x, y = tx, ty
    return out


def box(feet: tuple[float, float]) -> list[float]:
    fx, fy = feet
    return [fx - BOX_W / 2, fy - BOX_H, fx + BOX_W / 2, fy]


def frames_for(*people: tuple[int, list[tuple[float, float]]], extra: int = 0):
    """(start_frame, feet path) per person -> list of (boxes, scores) per frame."""
    n = max(start + len(p) for start, p in people) + extra
    frames = []
    for f in range(n):
        boxes = [box(p[f - s]) for s, p in people if 0 <= f - s < len(p)]
        frames.append(
            (np.array(boxes, dtype=np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))
        )
    return frames


def run_engine(engine: CameraEventEngine, frames, start: int = 0, images=None, close: bool = True):
    events: list[VisitorEvent] = []
    for i, (boxes, scores) in enumerate(frames[start:], start=start):
        img = images[i] if images is not None else None
        events += engine.process(i, T0 + timedelta(seconds=i / FPS), boxes, scores, img)
    if close:
        events += engine.close(T0 + timedelta(seconds=len(frames) / FPS))
    return events


def summary(events: list[VisitorEvent]) -> list[tuple]:
    return [(e.visitor_id, e.event_type, e.zone_id) for e in events]


SHOPPER = path((OUTSIDE, 0), (DOORWAY, 15), (SHOES, 15), (SHOES, -10), (DOORWAY, 15), (OUTSIDE, 15))


# ---------------------------------------------------------------------------------------------- tracker


def test_tracker_config_mapping():
    tr = PersonTracker(TrackerConfig(lost_track_buffer_s=2.0, minimum_matching_threshold=0.8), fps=10.0)
    bt = tr._tracker
    assert bt.maximum_time_without_update == pytest.approx(2.0)
    assert bt.maximum_frames_without_update == 20
    assert bt.minimum_iou_threshold == pytest.approx(0.2)
    with pytest.raises(ValueError, match="fps"):
        PersonTracker(TrackerConfig(), fps=0)


def test_tracker_confirms_after_consecutive_frames_and_reports_ended():
    tr = PersonTracker(TrackerConfig(lost_track_buffer_s=1.0, minimum_consecutive_frames=2), fps=FPS)
    frames = frames_for((0, path((OUTSIDE, 0), (DOORWAY, 10))))
    seen, ended_at = [], None
    for i, (b, s) in enumerate([*frames, *[(np.zeros((0, 4)), np.zeros(0))] * 10]):
        upd = tr.update(b, s, timestamp=1_772_000_000 + i / FPS)
        seen.append(upd.track_ids.tolist())
        if upd.ended:
            ended_at = (i, upd.ended)
            break
    assert seen[0] == [] and seen[1] == [0]
    assert ended_at is not None and ended_at[1] == [0]
    assert ended_at[0] - len(frames) + 1 == pytest.approx(1.0 * FPS, abs=1)  # lost for ~1 s
    assert tr.alive_ids == []


def test_tracker_reset_never_reuses_ids():
    tr = PersonTracker(TrackerConfig(minimum_consecutive_frames=1), fps=FPS, first_track_id=100)
    b, s = np.array([box(OUTSIDE), box(SHOES)]), np.array([0.9, 0.9])
    assert tr.update(b, s, 0.0).track_ids.tolist() == [100, 101]  # one sighting confirms at this setting
    assert tr.update(b, s, 0.2).track_ids.tolist() == [100, 101]
    assert tr.reset() == [100, 101]
    assert tr.update(b, s, 10.0).track_ids.tolist() == [102, 103]
    assert tr.update(b, s, 10.2).track_ids.tolist() == [102, 103]


def test_tracker_waits_for_consecutive_frames_by_default():
    tr = PersonTracker(TrackerConfig(minimum_consecutive_frames=2), fps=FPS)
    b, s = np.array([box(OUTSIDE)]), np.array([0.9])
    assert tr.update(b, s, 0.0).track_ids.tolist() == []
    assert tr.update(b, s, 0.2).track_ids.tolist() == [0]


@pytest.mark.parametrize(("rescue_iou", "ids"), [(0.3, 1), (1.1, 2)])  # 1.1: recovery off
def test_tracker_keeps_a_person_who_turns_sharply(monkeypatch, rescue_iou, ids):
    """Walking fast along x then turning down: the Kalman prediction overshoots the turn; the track
    survives by matching the last detection instead (observation-centric recovery)."""
    import workloads.tracking as tracking

    monkeypatch.setattr(tracking, "RESCUE_IOU", rescue_iou)
    turn = path(((100, 150), 0), ((412, 150), 24), ((412, 400), 24))
    tr = PersonTracker(TrackerConfig(), fps=FPS)
    seen: set[int] = set()
    for i, (b, s) in enumerate(frames_for((0, turn))):
        seen |= set(tr.update(b, s, timestamp=i / FPS).track_ids.tolist())
    assert len(seen) == ids


@pytest.mark.parametrize(("shirt_after", "same_track"), [((0, 0, 220), True), ((200, 60, 20), False)])
def test_tracker_stitches_a_look_alike_back_after_a_gap(shirt_after, same_track):
    """Hidden for 1.6 s (longer than the overlap recovery): the same clothes continue the track, other
    clothes start a new one."""
    walk = path(((100, 300), 0), ((300, 300), 10))
    back = path(((340, 300), 0), ((500, 300), 10))
    frames = frames_for((0, walk), (len(walk) + 8, back))
    tr = PersonTracker(TrackerConfig(), fps=FPS)
    ids = []
    for i, (b, s) in enumerate(frames):
        feet = [p for start, p in ((0, walk), (len(walk) + 8, back)) if 0 <= i - start < len(p)]
        shirts = [(0, 0, 220) if i < len(walk) else shirt_after for _ in feet]
        img = person_frame([p[i - (0 if i < len(walk) else len(walk) + 8)] for p in feet], shirts)
        ids.append(tr.update(b, s, timestamp=i / FPS, frame=img).track_ids.tolist())
    before, after = {i for f in ids[: len(walk)] for i in f}, {i for f in ids[len(walk) + 8 :] for i in f}
    assert len(before) == 1 and len(after) == 1
    assert (before == after) is same_track


def test_partly_hidden_person_is_described_by_what_shows():
    from workloads.appearance import embed, in_front, similarity

    img = np.full((300, 300, 3), 90, np.uint8)
    img[50:250, 100:160] = (0, 0, 220)  # red person behind
    img[80:260, 128:190] = (200, 60, 20)  # blue person in front, covering the red one's right half
    boxes = np.array([[100, 50, 160, 250], [128, 80, 190, 260]], np.float64)
    front = in_front(boxes, 0)
    assert front.tolist() == [[128, 80, 190, 260]]
    red_alone = embed(np.where(img == img, (0, 0, 220), 0).astype(np.uint8), boxes[0])
    assert similarity(embed(img, boxes[0], hide=front), red_alone) > 0.95  # only red shows
    assert similarity(embed(img, boxes[0]), red_alone) < 0.8  # the whole box mixes in blue
    assert embed(img, boxes[0], hide=[[90, 40, 170, 260]]) is None  # fully hidden: nothing to say


def test_tracker_pickle_round_trip_gives_identical_outputs():
    frames = frames_for((0, SHOPPER), (4, path((OUTSIDE, 0), (QUEUE, 12), (QUEUE, -20))))
    a = PersonTracker(TrackerConfig(), fps=FPS)
    for i, (b, s) in enumerate(frames[:20]):
        a.update(b, s, float(i) / FPS)
    b_tr = pickle.loads(pickle.dumps(a))
    for i, (b, s) in enumerate(frames[20:], start=20):
        ua, ub = a.update(b, s, i / FPS), b_tr.update(b, s, i / FPS)
        np.testing.assert_array_equal(ua.track_ids, ub.track_ids)
        np.testing.assert_array_equal(ua.boxes, ub.boxes)
        assert ua.ended == ub.ended


# ---------------------------------------------------------------------------------------------- staff


def solid(bgr: tuple[int, int, int], size=(100, 100)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:, :] = bgr
    return img


RED_RULE = UniformColourRule(hsv_low=(0, 120, 70), hsv_high=(10, 255, 255))
WRAP_RED_RULE = UniformColourRule(hsv_low=(170, 120, 70), hsv_high=(10, 255, 255))
BLUE_RULE = UniformColourRule(hsv_low=(100, 120, 70), hsv_high=(130, 255, 255))


@pytest.mark.parametrize(
    ("bgr", "rule", "expected"),
    [
        ((0, 0, 255), RED_RULE, True),
        ((0, 0, 255), WRAP_RED_RULE, True),
        ((40, 0, 230), WRAP_RED_RULE, True),  # crimson, hue ~ 175: only the wrapping range catches it
        ((40, 0, 230), RED_RULE, False),
        ((255, 0, 0), RED_RULE, False),
        ((255, 0, 0), BLUE_RULE, True),
        ((128, 128, 128), BLUE_RULE, False),  # grey: no saturation
    ],
)
def test_uniform_colour_vote(bgr, rule, expected):
    assert matches_uniform(solid(bgr), [10, 0, 90, 100], rule) is expected


def test_torso_crop_is_the_middle_band_and_clipped():
    frame = np.arange(100 * 100 * 3, dtype=np.uint32).astype(np.uint8).reshape(100, 100, 3)
    crop = torso_crop(frame, [0, 0, 40, 100])
    assert crop is not None and crop.shape[:2] == (35, 20)  # rows 20..55, cols 10..30
    assert torso_crop(frame, [90, 90, 200, 300]) is None  # torso band is off-frame
    assert torso_crop(frame, [0, 0, 4, 8]) is None  # too small to say anything
    half = np.zeros((10, 10, 3), np.uint8)
    half[:5] = (0, 0, 255)
    assert uniform_fraction(half, RED_RULE.hsv_low, RED_RULE.hsv_high) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([True, True], False),
        ([True, True, True], True),
        ([True, False, True], True),
        ([True, False, False, True], False),
    ],
)
def test_staff_vote_majority_after_three(votes, expected):
    v = StaffVote()
    for hit in votes:
        v.add(hit)
    assert v.is_staff is expected


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([True] * 5, True),
        ([True] * 5 + [False] * 3, True),  # 5 of the last 8 still say uniform
        ([True] * 5 + [False] * 5, False),  # the uniform left the track (its person changed)
        ([False] * 20 + [True] * 5, True),  # only the last 8 count
    ],
)
def test_staff_uniform_flag_follows_the_recent_votes(votes, expected):
    v = StaffVote()
    for hit in votes:
        v.add(hit)
    assert v.samples == min(len(votes), 8)
    assert v.is_staff is expected


def test_staff_zone_rule_uses_first_position_and_ignores_other_cameras_zones():
    cam = camera()
    clf = StaffClassifier([StaffZoneRule(zone_id="stock"), StaffZoneRule(zone_id="elsewhere")], cam.zones)
    assert clf.observe(1, box(STOCK), STOCK) is True
    assert clf.observe(2, box(OUTSIDE), OUTSIDE) is False
    assert clf.observe(2, box(STOCK), STOCK) is False  # only the first sighting counts
    assert clf.observe(1, box(OUTSIDE), OUTSIDE) is True  # sticky
    assert not clf.needs_frames


# ---------------------------------------------------------------------------------------------- engine


def test_shopper_walks_in_through_zone_and_out():
    events = run_engine(make_engine(), frames_for((0, SHOPPER)))
    assert summary(events) == [
        ("cam-1-0", ENTRY, None),
        ("cam-1-0", Z_ENTER, "shoes"),
        ("cam-1-0", Z_EXIT, "shoes"),
        ("cam-1-0", EXIT, None),
    ]
    assert [e.metadata.session_seq for e in events] == [0, 1, 2, 3]
    assert [e.metadata.sku_zone for e in events] == [None, "footwear", "footwear", None]
    enter, leave = events[1], events[2]
    assert leave.dwell_ms == pytest.approx((leave.timestamp - enter.timestamp).total_seconds() * 1000, abs=1)
    assert leave.dwell_ms >= 10 / FPS * 1000  # stood still 10 frames
    assert all(e.store_id == "S1" and e.camera_id == "cam-1" for e in events)
    assert all(e.confidence == pytest.approx(0.9) and not e.is_staff for e in events)
    assert all(e.timestamp.tzinfo is not None for e in events)


def test_event_ids_are_deterministic_across_runs():
    frames = frames_for((0, SHOPPER), (6, path((OUTSIDE, 0), (QUEUE, 14), (QUEUE, -15), (TILL, 10))))
    first = run_engine(make_engine(), frames)
    second = run_engine(make_engine(), frames)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [e.model_dump() for e in first] == [e.model_dump() for e in second]
    assert len({e.event_id for e in first}) == len(first)
    e = first[0]
    assert any(
        e.event_id == deterministic_event_id("cam-1", i, e.visitor_id, e.event_type, e.zone_id)
        for i in range(100)
    )


def test_queue_join_then_checkout_carries_queue_depth():
    buyer = path((OUTSIDE, 0), (QUEUE, 14), (QUEUE, -15), (TILL, 10), (TILL, -10))
    events = run_engine(make_engine(), frames_for((0, buyer)))
    assert summary(events) == [
        ("cam-1-0", ENTRY, None),
        ("cam-1-0", Z_ENTER, "q1"),
        ("cam-1-0", JOIN, "q1"),
        ("cam-1-0", Z_ENTER, "till"),
        ("cam-1-0", Z_EXIT, "q1"),
        ("cam-1-0", Z_EXIT, "till"),  # closed by close()
    ]
    assert [e.metadata.queue_depth for e in events] == [None, 1, 1, None, 0, None]


def test_queue_abandon_when_walking_out():
    leaver = path((OUTSIDE, 0), (QUEUE, 14), (QUEUE, -15), (DOORWAY, 15), (OUTSIDE, 15), (OUTSIDE, -20))
    types = [e.event_type for e in run_engine(make_engine(), frames_for((0, leaver)))]
    assert types == [ENTRY, Z_ENTER, JOIN, Z_EXIT, ABANDON, EXIT]  # walking out settles the abandon


def test_exit_flushes_zone_visit_in_grace_first():
    door_zone = ZoneConfig(id="mat", type=ZoneType.ENTRY, polygon=rect(100, 210, 540, 300), exit_grace_s=3.0)
    walk = path((OUTSIDE, 0), (DOORWAY, 15), ((320, 280), 15), (OUTSIDE, 15), (OUTSIDE, -5))
    events = run_engine(make_engine(camera(zones=[door_zone])), frames_for((0, walk)), close=False)
    assert summary(events) == [
        ("cam-1-0", ENTRY, None),
        ("cam-1-0", Z_ENTER, "mat"),
        ("cam-1-0", Z_EXIT, "mat"),
        ("cam-1-0", EXIT, None),
    ]
    assert [e.metadata.session_seq for e in events] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("reentry_window_s", "expected"),
    [
        (600.0, [ENTRY, EXIT, REENTRY, EXIT]),
        (1.0, [ENTRY, EXIT, ENTRY, EXIT]),  # came back 2 s after leaving: outside the window
    ],
)
def test_reentry_within_window(reentry_window_s, expected):
    back_and_forth = path(
        (OUTSIDE, 0), (DOORWAY, 15), (OUTSIDE, 15), (OUTSIDE, -10), (DOORWAY, 15), (OUTSIDE, 15)
    )
    eng = make_engine(tracker=TrackerConfig(reentry_window_s=reentry_window_s))
    events = run_engine(eng, frames_for((0, back_and_forth)))
    assert [e.event_type for e in events] == expected
    assert {e.visitor_id for e in events} == {"cam-1-0"}


def person_frame(people_feet: list[tuple[float, float]], colours: list[tuple[int, int, int]]) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)  # grey floor
    # Far to near (feet higher in the frame first), so a nearer person hides the one behind, as on camera.
    for (fx, fy), bgr in sorted(zip(people_feet, colours, strict=True), key=lambda p: p[0][1]):
        x1, y1, x2, y2 = (round(v) for v in box((fx, fy)))
        img[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = bgr
        img[max(y1, 0) : max(y1 + 18, 0), max(x1, 0) : max(x2, 0)] = (150, 180, 210)  # head, skin-ish
    return img


@pytest.mark.parametrize(
    ("shirt_bgr", "staff"),
    [((0, 0, 220), True), ((200, 60, 20), False), ((90, 90, 90), False)],
)
def test_staff_uniform_colour_on_synthetic_frames(shirt_bgr, staff):
    walk = path(((320, 60), 0), (OUTSIDE, 10), (DOORWAY, 15), (SHOES, 15), (SHOES, -5))
    frames = frames_for((0, walk))
    images = [person_frame([p], [shirt_bgr]) for p in walk]
    eng = make_engine(staff=[RED_RULE])
    events = run_engine(eng, frames, images=images)
    assert [e.event_type for e in events] == [ENTRY, Z_ENTER, Z_EXIT]
    assert all(e.is_staff is staff for e in events)


RETURNER = (200, 60, 20)  # blue shirt


@pytest.mark.parametrize(
    ("second_shirt", "min_similarity", "second_types", "same_visitor"),
    [
        (RETURNER, 0.8, [REENTRY, EXIT], True),  # the same clothes come back: the same visitor
        ((0, 140, 250), 0.8, [ENTRY, EXIT], False),  # someone in orange: a new visitor
        (RETURNER, None, [ENTRY, EXIT], False),  # appearance re-entry switched off
    ],
)
def test_returning_visitor_on_a_new_track_is_a_reentry(second_shirt, min_similarity, second_types, same_visitor):
    visit = path((OUTSIDE, 0), (DOORWAY, 15), (SHOES, 15), (SHOES, -5), (DOORWAY, 15), (OUTSIDE, 15), ((320, 40), 15))
    gap = int(6 * FPS)  # out of view 6 s: longer than the lost buffer, so the track ends
    frames = frames_for((0, visit), (len(visit) + gap, visit))
    images = []
    for f in range(len(frames)):
        if f < len(visit):
            images.append(person_frame([visit[f]], [RETURNER]))
        elif f >= len(visit) + gap:
            images.append(person_frame([visit[f - len(visit) - gap]], [second_shirt]))
        else:
            images.append(person_frame([], []))
    eng = make_engine(tracker=TrackerConfig(reentry_min_similarity=min_similarity))
    events = run_engine(eng, frames, images=images)
    door = [e for e in events if e.event_type in (ENTRY, EXIT, REENTRY)]
    assert [e.event_type for e in door[:2]] == [ENTRY, EXIT]
    assert [e.event_type for e in door[2:]] == second_types
    assert (door[2].visitor_id == door[0].visitor_id) is same_visitor
    if same_visitor:  # the returning visitor's session goes on where it stopped
        seqs = [e.metadata.session_seq for e in events if e.visitor_id == door[0].visitor_id]
        assert seqs == list(range(len(seqs)))


def test_staff_zone_rule_in_engine():
    clerk = path((STOCK, 0), (STOCK, -3), (DOORWAY, 10), (SHOES, 10), (SHOES, -5))
    events = run_engine(make_engine(staff=[StaffZoneRule(zone_id="stock")]), frames_for((0, clerk)))
    # started inside the store: no ENTRY; the stock room visit is a zone visit like any other
    assert summary(events) == [
        ("cam-1-0", Z_ENTER, "stock"),
        ("cam-1-0", Z_EXIT, "stock"),
        ("cam-1-0", Z_ENTER, "shoes"),
        ("cam-1-0", Z_EXIT, "shoes"),
    ]
    assert all(e.is_staff for e in events)


def test_lost_track_closes_visits_at_last_seen():
    stops = path((OUTSIDE, 0), (DOORWAY, 15), (SHOES, 15), (SHOES, -5))
    frames = frames_for((0, stops), extra=int(5 * FPS))  # then nobody for 5 s (> 3 s lost buffer)
    eng = make_engine()
    events = run_engine(eng, frames, close=False)
    assert [e.event_type for e in events] == [ENTRY, Z_ENTER, Z_EXIT]
    last_seen = T0 + timedelta(seconds=(len(stops) - 1) / FPS)
    assert events[-1].timestamp == last_seen
    assert eng.active_tracks == 0
    assert eng.close(T0 + timedelta(seconds=60)) == []


def test_time_going_backwards_restarts_tracking_with_fresh_ids():
    eng = make_engine()
    frames = frames_for((0, path((OUTSIDE, 0), (DOORWAY, 15), (SHOES, 15), (SHOES, -5))))
    events = run_engine(eng, frames, close=False)
    assert eng.active_tracks == 1
    again = run_engine(eng, frames, close=False)  # same timestamps again: a looping file
    assert summary(again)[:1] == [("cam-1-0", Z_EXIT, "shoes")]  # old visitor closed first
    assert {e.visitor_id for e in again[1:]} == {"cam-1-1"}
    assert [e.event_type for e in events] == [e.event_type for e in again[1:]]


def test_engine_rejects_naive_timestamps():
    with pytest.raises(ValueError, match="timezone"):
        make_engine().process(0, datetime(2026, 1, 1), np.zeros((0, 4)), np.zeros(0))


# ---------------------------------------------------------------------------------------------- snapshots

CROWD = (  # (first frame, feet path, shirt colour); nobody shares a standing spot, so no id swaps
    (0, SHOPPER, (0, 0, 220)),  # red: staff by RED_RULE
    (
        3,
        path(
            (OUTSIDE, 0),
            (QUEUE, 14),
            (QUEUE, -15),
            (TILL, 10),
            (TILL, -5),
            ((600, 330), 12),
            ((560, 230), 12),
            ((450, 120), 12),
        ),
        (200, 60, 20),
    ),
    (8, path(((150, 100), 0), ((150, 250), 15), ((120, 420), 15), ((120, 420), -60)), (20, 160, 20)),
    (
        12,
        path(((420, 100), 0), ((500, 360), 14), ((500, 360), -10), ((420, 250), 15), ((420, 100), 15)),
        (90, 90, 90),
    ),
)


def crowd_frames():
    frames = frames_for(*[(start, p) for start, p, _ in CROWD], extra=10)
    images = []
    for f in range(len(frames)):
        here = [(p[f - start], c) for start, p, c in CROWD if 0 <= f - start < len(p)]
        images.append(person_frame([h[0] for h in here], [h[1] for h in here]))
    return frames, images


def test_crowd_reference_run():
    frames, images = crowd_frames()
    events = run_engine(make_engine(staff=[RED_RULE]), frames, images=images)
    by_visitor: dict[str, list] = {}
    for e in events:
        by_visitor.setdefault(e.visitor_id, []).append(e)
    got = {vid: [(e.event_type, e.zone_id) for e in evs] for vid, evs in by_visitor.items()}
    assert sorted(got.values()) == sorted(
        [
            [(ENTRY, None), (Z_ENTER, "shoes"), (Z_EXIT, "shoes"), (EXIT, None)],
            [
                (ENTRY, None),
                (Z_ENTER, "q1"),
                (JOIN, "q1"),
                (Z_ENTER, "till"),
                (Z_EXIT, "q1"),
                (Z_EXIT, "till"),
                (EXIT, None),
            ],
            [(ENTRY, None), (Z_ENTER, "shoes"), (Z_DWELL, "shoes"), (Z_EXIT, "shoes")],
            [(ENTRY, None), (Z_ENTER, "q1"), (JOIN, "q1"), (Z_EXIT, "q1"), (ABANDON, "q1"), (EXIT, None)],
        ]
    )
    for evs in by_visitor.values():
        assert [e.metadata.session_seq for e in evs] == list(range(len(evs)))
    staff = {vid for vid, evs in by_visitor.items() if all(e.is_staff for e in evs)}
    assert len(staff) == 1 and not any(
        e.is_staff for v, evs in by_visitor.items() if v not in staff for e in evs
    )
    assert by_visitor[next(iter(staff))][1].zone_id == "shoes"  # the red-shirted shopper


@pytest.mark.parametrize("cut", [1, 3, 9, 17, 30, 44, 61, 80, 105])
def test_snapshot_mid_sequence_then_continue_equals_uninterrupted(cut):
    frames, images = crowd_frames()
    staff = [RED_RULE, StaffZoneRule(zone_id="stock")]
    reference = run_engine(make_engine(staff=staff), frames, images=images)
    assert len(reference) > 15

    first = make_engine(staff=staff)
    before = run_engine(first, frames[:cut], images=images, close=False)
    blob = first.snapshot()
    cam = camera()
    resumed = CameraEventEngine.restore(blob, store(cam, staff), cam, TrackerConfig(), FPS)
    after = run_engine(resumed, frames, start=cut, images=images)
    assert [e.model_dump() for e in before + after] == [e.model_dump() for e in reference]


def test_restore_refuses_another_configuration():
    eng = make_engine()
    run_engine(eng, frames_for((0, SHOPPER))[:10], close=False)
    blob = eng.snapshot()
    cam = camera()
    assert CameraEventEngine.restore(blob).active_tracks == 1  # nothing to compare: accepted
    moved = camera(zones=[ZoneConfig(id="shoes", type=ZoneType.PRODUCT, polygon=rect(0, 0, 50, 50))])
    with pytest.raises(SnapshotMismatchError, match="camera"):
        CameraEventEngine.restore(blob, store(moved), moved, TrackerConfig(), FPS)
    with pytest.raises(SnapshotMismatchError, match="fps"):
        CameraEventEngine.restore(blob, store(cam), cam, TrackerConfig(), 10.0)
    with pytest.raises(SnapshotMismatchError, match="unreadable"):
        CameraEventEngine.restore(b"garbage")
