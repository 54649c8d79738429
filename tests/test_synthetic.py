"""Synthetic store scenes: the generator's ground truth must agree with itself and with the plan.

Most cases use a small bank of drawn figures instead of vtest.avi cut-outs, so they need no detector
and run in seconds; `test_real_sprite_bank_*` use the real bank (built once with our detector).
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from workloads.config import ZoneType
from workloads.events import EventType
from workloads.geometry import points_in_polygon
from workloads.sources import FramePump, SourceError, open_source
from workloads.staff import matches_uniform
from workloads.synthetic.layout import UNIFORM_RULE, store_layout
from workloads.synthetic.scenario import (
    SCENES,
    Agent,
    Plan,
    Queue,
    Role,
    Wait,
    Walk,
    make_plan,
    route,
    simulate,
)
from workloads.synthetic.scene import build_scene, parse_scene_uri
from workloads.synthetic.sprites import Sprite, SpriteBank, extract_sprites, person_mask
from workloads.synthetic.truth import crossings, inside_intervals

LAYOUT = store_layout()


def drawn_bank(n: int = 12) -> SpriteBank:
    """Stick figures in distinct shirt colours: enough for the generator's logic."""
    rng = np.random.default_rng(0)
    identities = []
    for _ in range(n):
        shirt = tuple(int(c) for c in rng.integers(30, 220, 3))
        poses = []
        for k in range(4):
            h, w = 90, 36
            bgr = np.zeros((h, w, 3), np.uint8)
            alpha = np.zeros((h, w), np.uint8)
            alpha[2:14, 12:24] = 255
            bgr[2:14, 12:24] = (120, 150, 190)
            alpha[14:50, 6:30] = 255
            bgr[14:50, 6:30] = shirt
            alpha[50:90, 9 + k % 2 : 17 + k % 2] = 255
            alpha[50:90, 19 - k % 2 : 27 - k % 2] = 255
            bgr[50:90] = (60, 50, 40)
            poses.append(Sprite(bgr, alpha, facing=1))
        identities.append(poses)
    return SpriteBank(identities)


BANK = drawn_bank()


@pytest.fixture(scope="module")
def scenes() -> dict[str, object]:
    return {name: build_scene(name, seed=3, bank=BANK) for name in SCENES}


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("store", ("store", 0)),
        ("store?seed=3", ("store", 3)),
        ("synthetic:queue?seed=12", ("queue", 12)),
    ],
)
def test_parse_scene_uri(uri, expected):
    assert parse_scene_uri(uri) == expected


@pytest.mark.parametrize(("uri", "message"), [("store?seed=x", "integer"), ("store?speed=2", "unknown parameter")])
def test_parse_scene_uri_rejects(uri, message):
    with pytest.raises(ValueError, match=message):
        parse_scene_uri(uri)


# ---------------------------------------------------------------------------------------------- truth geometry

DOOR = ((0.0, 100.0), (200.0, 100.0))
INSIDE = (100.0, 200.0)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([(100, 50), (100, 150)], [(1, 1)]),  # walks in
        ([(100, 150), (100, 50)], [(1, -1)]),  # walks out
        ([(100, 50), (100, 150), (100, 60)], [(1, 1), (2, -1)]),  # in and out again
        ([(300, 50), (300, 150)], []),  # beside the door, not through it
        ([(100, 50), (math.nan, math.nan), (100, 150)], []),  # left the view in between: no crossing seen
        ([(100, 50), (100, 60), (100, 90)], []),  # approaches but stays out
    ],
)
def test_crossings(path, expected):
    assert crossings(np.array(path, dtype=np.float64), DOOR, INSIDE) == expected


@pytest.mark.parametrize(
    ("flags", "min_inside_s", "grace_s", "expected"),
    [
        ("0011111000", 0.2, 0.2, [(0.2, 0.6)]),
        ("0110000110", 0.1, 0.3, [(0.1, 0.2), (0.7, 0.8)]),  # outside 0.4 s >= grace: two visits
        ("0110011000", 0.1, 0.3, [(0.1, 0.6)]),  # outside 0.2 s < grace: one visit
        ("0100000000", 0.2, 0.2, []),  # too short to count
        ("0000000000", 0.1, 0.1, []),
    ],
)
def test_inside_intervals(flags, min_inside_s, grace_s, expected):
    got = inside_intervals(np.array([c == "1" for c in flags]), 10.0, min_inside_s, grace_s)
    assert [(round(a, 3), round(b, 3)) for a, b in got] == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [((384.0, 245.0), (380.0, 470.0)), ((100.0, 480.0), (600.0, 440.0)), ((380.0, 395.0), (650.0, 536.0))],
)
def test_routes_go_around_shelves(a, b):
    path = [a, *route(a, b, LAYOUT)]
    assert path[-1] == b
    for p, q in pairwise(path):
        for shelf in LAYOUT.shelves:
            x1, y1, x2, y2 = shelf.footprint(0.0)
            for s in np.linspace(0, 1, 50):
                x, y = p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1])
                assert not (x1 < x < x2 and y1 < y < y2), f"walks through the shelf at {x:.0f},{y:.0f}"


# ---------------------------------------------------------------------------------------------- simulation


def test_queue_is_first_come_first_served_and_impatient_people_leave():
    till_way = LAYOUT.door_inside
    agents = [
        Agent(pid=k, role=Role.VISITOR, identity=k, start_t=k * 1.0, start=till_way,
              tasks=[Queue(service_s=5.0, patience_s=patience), Walk(till_way)])
        for k, patience in enumerate([60.0, 60.0, 3.0, 60.0])
    ]
    sim = simulate(Plan("q", 0, 60.0, agents), LAYOUT)
    assert [pid for _, pid in sim.transactions] == [0, 1, 3]  # in arrival order
    assert sim.queue_outcomes == {0: ["paid"], 1: ["paid"], 2: ["abandoned"], 3: ["paid"]}
    times = [t for t, _ in sim.transactions]
    assert all(b - a >= 5.0 - 1e-6 for a, b in pairwise(times))  # one at a time


def test_waiting_person_stands_still():
    a = Agent(pid=0, role=Role.VISITOR, identity=0, start_t=0.0, start=(300.0, 300.0),
              tasks=[Wait(2.0), Walk((400.0, 300.0))])
    sim = simulate(Plan("w", 0, 5.0, [a]), LAYOUT)
    assert np.allclose(sim.feet[:19, 0], [300.0, 300.0])
    assert sim.feet[-1, 0, 0] == pytest.approx(400.0)


# ---------------------------------------------------------------------------------------------- truth consistency


@pytest.mark.parametrize("name", sorted(SCENES))
def test_truth_is_self_consistent(scenes, name):
    scene = scenes[name]
    truth = scene.truth
    roles = {p.pid: p.role for p in truth.persons}
    # boxes exist exactly where people are, feet at their bottom centre
    here = ~np.isnan(scene.sim.feet[:, :, 0])
    assert np.array_equal(here, ~np.isnan(truth.boxes[:, :, 0]))
    b = truth.boxes[here]
    assert np.allclose((b[:, 0] + b[:, 2]) / 2, scene.sim.feet[here][:, 0])
    assert np.allclose(b[:, 3], scene.sim.feet[here][:, 1])
    assert ((truth.visibility >= 0) & (truth.visibility <= 1)).all() and (truth.visibility[~here] == 0).all()
    # door events alternate in, out, in, ... per person; only visitors cross the door
    for pid, role in roles.items():
        door = [e.event_type for e in truth.events
                if e.pid == pid and e.event_type in (EventType.ENTRY, EventType.EXIT, EventType.REENTRY)]
        if role != "visitor":
            assert door == []
            continue
        assert door[:1] in ([], [EventType.ENTRY])
        assert all(d == EventType.EXIT for d in door[1::2])
        assert all(d == EventType.REENTRY for d in door[2::2])
    # staff are on the floor for the whole clip
    for pid in truth.staff_pids:
        assert here[:, pid].all()
    # zone visits: the feet are in the zone at their first and last frame
    for v in truth.visits:
        poly = LAYOUT.zone(v.zone_id).polygon
        for t in (v.start, v.end):
            f = round(t * truth.fps)
            assert points_in_polygon(scene.sim.feet[f, v.pid][None], poly)[0]
    # every payer was at the till when paying; nobody pays twice in one queue
    till = [z.id for z in LAYOUT.camera.zones if z.type == ZoneType.CHECKOUT]
    for tx in truth.transactions:
        assert any(v.pid == tx.pid and v.zone_id in till and v.start <= tx.t <= v.end + 1.0 for v in truth.visits)
    # abandons follow a join of the same person, and never end in a payment afterwards
    for e in truth.events:
        if e.event_type == EventType.BILLING_QUEUE_ABANDON:
            joins = [j for j in truth.events if j.pid == e.pid and j.event_type == EventType.BILLING_QUEUE_JOIN]
            assert any(j.t <= e.t for j in joins)
            assert not any(tx.pid == e.pid and tx.t >= e.t for tx in truth.transactions)
    # queue depth never exceeds the simulated slots
    for zid in truth.queue_zones:
        assert max(truth.queue_depth_at(zid, t) for t in np.arange(0, truth.n_frames / truth.fps, 1.0)) <= len(
            LAYOUT.queue_slots
        )
    # summaries follow from the events
    entered = {e.pid for e in truth.events if e.event_type == EventType.ENTRY}
    assert truth.unique_visitors == len(entered - truth.staff_pids)
    payers = {tx.pid for tx in truth.transactions}
    assert truth.conversion == pytest.approx(len(payers & entered) / len(entered) if entered else 0.0)


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("reentry", lambda t: t.count(EventType.REENTRY) >= 2),
        ("groups", lambda t: len({p.group for p in t.persons if p.group is not None}) == 3),
        ("staff", lambda t: len(t.staff_pids) == 2),
        ("queue", lambda t: t.count(EventType.BILLING_QUEUE_ABANDON) >= 1 and len(t.transactions) >= 3),
        ("occlusion", lambda t: any(0.2 < v < 0.8 for v in t.visibility[t.visibility > 0])),
        ("singles", lambda t: t.count(EventType.ENTRY) >= 6 and len(t.transactions) >= 2),
    ],
)
def test_each_recipe_shows_what_it_is_for(scenes, name, check):
    assert check(scenes[name].truth)


def test_groups_enter_together(scenes):
    truth = scenes["groups"].truth
    entries = {e.pid: e.t for e in truth.events if e.event_type == EventType.ENTRY}
    for leader in {p.group for p in truth.persons if p.group is not None}:
        members = [p.pid for p in truth.persons if p.group == leader]
        times = [entries[m] for m in members if m in entries]
        assert len(times) == len(members) >= 2
        assert max(times) - min(times) <= 1.5


def test_scene_is_reproducible_and_seeds_differ():
    a, b = build_scene("store", 5, bank=BANK), build_scene("store", 5, bank=BANK)
    assert a.truth.events == b.truth.events
    assert np.array_equal(a.render(300), b.render(300))
    c = build_scene("store", 6, bank=BANK)
    assert a.truth.events != c.truth.events


def test_staff_wear_the_uniform_the_config_recognises(scenes):
    scene = scenes["staff"]
    f = 50
    frame = scene.render(f)
    for p in scene.truth.persons:
        box = scene.truth.boxes[f, p.pid]
        if np.isnan(box[0]) or scene.truth.visibility[f, p.pid] < 0.9:
            continue
        assert matches_uniform(frame, box, UNIFORM_RULE) is (p.role == "staff")


def test_fleet_config_plays_the_scene_once():
    scene = build_scene("singles", 1, bank=BANK)
    cfg = scene.fleet_config(input_size=960)
    cam = cfg.stores[0].cameras[0]
    assert cam.source == "synthetic:singles?seed=1" and not cam.loop and not cam.realtime
    assert cam.input_size == 960 and cfg.stores[0].staff == LAYOUT.staff_rules


# ---------------------------------------------------------------------------------------------- sprites


def _blob_frames(n: int = 12) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    bg = np.full((200, 300, 3), 120, np.uint8)
    frames, dets = [], []
    for k in range(n):
        img = bg.copy()
        x = 40 + 12 * k
        img[60:72, x + 10 : x + 20] = (90, 140, 200)  # head
        img[72:110, x : x + 30] = (30, 30, 200)  # torso
        img[110:150, x + 3 : x + 12] = (40, 40, 40)  # legs
        img[110:150, x + 18 : x + 27] = (40, 40, 40)
        frames.append(img)
        dets.append(np.array([[x - 2, 58, x + 32, 152, 0.9]], np.float32))
    return frames, dets, bg


def test_person_mask_is_the_foreground_blob():
    frames, dets, bg = _blob_frames(1)
    mask, (ox, oy) = person_mask(frames[0], bg, dets[0][0, :4])
    assert mask.shape == (90, 30) and (ox, oy) == (40, 60)
    assert mask[30, 15] == 255 and mask[5, 2] == 0  # torso in, the corner beside the head out
    assert mask.mean() / 255 == pytest.approx((12 * 10 + 38 * 30 + 2 * 40 * 9) / (90 * 30), abs=0.01)


def test_extract_sprites_groups_one_walker_into_one_identity():
    frames, dets, bg = _blob_frames(12)
    bank = extract_sprites(frames, dets, bg, fps=5.0, occluders=())
    assert len(bank.identities) == 1
    assert len(bank.identities[0]) >= 5
    assert all(s.facing in (0, 1) for s in bank.identities[0])  # walks right


def test_sprite_bank_round_trips(tmp_path):
    path = tmp_path / "bank.npz"
    BANK.save(path)
    back = SpriteBank.load(path)
    assert len(back.identities) == len(BANK.identities)
    assert np.array_equal(back.identities[3][2].bgr, BANK.identities[3][2].bgr)


def test_make_plan_rejects_unknown_scene():
    with pytest.raises(KeyError, match="unknown synthetic scene"):
        make_plan("mall", 0, LAYOUT, 10)


# ---------------------------------------------------------------------------------------------- camera source


@pytest.fixture
def drawn_bank_cache(tmp_path, monkeypatch):
    """A cache folder holding the drawn sprite bank, so `synthetic:<scene>` sources open without vtest."""
    from workloads.synthetic.sprites import bank_path

    monkeypatch.setenv("STOREFLEET_CACHE", str(tmp_path))
    BANK.save(bank_path())
    return tmp_path


def test_scene_source_plays_a_finite_clip_and_seeks(drawn_bank_cache):
    src = open_source("synthetic:singles?seed=2")
    assert src.open() == 10.0
    n = src.frame_count()
    expected = build_scene("singles", 2, bank=BANK)
    assert n == expected.n_frames
    first = src.read()
    assert np.array_equal(first, expected.render(0))
    assert src.seek(n - 1) and np.array_equal(src.read(), expected.render(n - 1))
    assert src.read() is None  # end of clip


def test_scene_source_through_the_frame_pump(drawn_bank_cache):
    pump = FramePump(open_source("synthetic:queue?seed=1"), target_fps=5, realtime=False, loop=False, max_frames=12)
    pump.start()
    got = []
    while len(got) < 20:
        f = pump.get(timeout=10)
        if f is None:
            break
        got.append(f.index)
    pump.stop()
    assert got == list(range(0, 24, 2))  # 10 fps clip sampled at 5 fps


@pytest.mark.parametrize(("uri", "message"), [("synthetic:mall?seed=1", "unknown synthetic scene 'mall'"),
                                              ("synthetic:store?seed=x", "integer")])
def test_scene_source_rejects_bad_names(uri, message):
    with pytest.raises(SourceError, match=message):
        open_source(uri)


def test_scene_source_without_sprites_says_how_to_build_them(tmp_path, monkeypatch):
    monkeypatch.setenv("STOREFLEET_CACHE", str(tmp_path))
    with pytest.raises(SourceError, match="storefleet eval prepare"):
        open_source("synthetic:store").open()


# ---------------------------------------------------------------------------------------------- real cut-outs


@pytest.fixture(scope="module")
def real_bank(prepared_detector) -> SpriteBank:
    """The sprite bank cut out of vtest.avi by our detector (built once per machine, then cached)."""
    from cluster.cli_eval import ensure_sprite_bank
    from workloads.synthetic.sprites import load_sprite_bank

    ensure_sprite_bank(progress=False)
    return load_sprite_bank()


@pytest.mark.integration
def test_real_sprite_bank_people_are_people_to_our_detector(real_bank):
    """Cut-outs of many pedestrians, and the detector finds the people of a rendered store frame."""
    from models.registry import ir_path
    from models.runtime import PoseDetector
    from workloads.evaluation.detection import DetectionScore, count_matches

    assert len(real_bank.identities) >= 15
    assert all(len(poses) >= 5 for poses in real_bank.identities)
    scene = build_scene("store", 1, bank=real_bank)
    det = PoseDetector(ir_path("yolo11n-pose", "INT8"), input_size=960)
    frames = list(range(100, 1700, 100))
    score = DetectionScore("960")
    for f, d in zip(frames, det.detect([scene.render(f) for f in frames]), strict=True):
        score.add(count_matches(d.boxes, scene.truth.boxes[f], scene.truth.visibility[f]))
    assert score.tp >= 40
    assert score.recall >= 0.9 and score.precision >= 0.9, (score.recall, score.precision)
