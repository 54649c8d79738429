"""Geometry helpers and the tripwire crossing rules, as (input, expected) tables."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workloads.config import TripwireConfig
from workloads.geometry import (
    feet_points,
    line_parameter,
    points_in_polygon,
    points_in_polygons,
    signed_distance,
    signed_side,
)
from workloads.tripwire import CrossingDirection, Tripwire

IN, OUT = CrossingDirection.IN, CrossingDirection.OUT

SQUARE = [(0, 0), (100, 0), (100, 100), (0, 100)]
L_SHAPE = [(0, 0), (100, 0), (100, 40), (40, 40), (40, 100), (0, 100)]  # concave
TRIANGLE = [(0, 0), (100, 0), (50, 80)]


# ---------------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([[10, 0, 30, 50]], [[20, 50]]),
        ([[0, 0, 40, 100], [100, 20, 140, 220]], [[20, 100], [120, 220]]),
        (np.zeros((0, 4)), np.zeros((0, 2))),
    ],
)
def test_feet_points(boxes, expected):
    np.testing.assert_allclose(feet_points(boxes), np.asarray(expected, dtype=float).reshape(-1, 2))


@pytest.mark.parametrize(
    ("polygon", "point", "inside"),
    [
        (SQUARE, (50, 50), True),
        (SQUARE, (150, 50), False),
        (SQUARE, (-1, 50), False),
        (SQUARE, (50, 101), False),
        (L_SHAPE, (20, 80), True),  # in the vertical arm
        (L_SHAPE, (80, 20), True),  # in the horizontal arm
        (L_SHAPE, (80, 80), False),  # in the notch
        (TRIANGLE, (50, 10), True),
        (TRIANGLE, (10, 60), False),
    ],
)
def test_point_in_polygon_table(polygon, point, inside):
    assert points_in_polygon(np.array([point]), np.array(polygon)).tolist() == [inside]


@pytest.mark.parametrize(
    "polygon", [SQUARE, L_SHAPE, TRIANGLE, [(10, 300), (200, 250), (400, 420), (90, 470)]]
)
def test_point_in_polygon_agrees_with_opencv(polygon):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-20, 480, size=(2000, 2))
    ours = points_in_polygon(pts, np.array(polygon))
    contour = np.array(polygon, dtype=np.float32).reshape(-1, 1, 2)
    dist = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pts])
    clear = np.abs(dist) > 1e-6  # on-edge points may go either way
    np.testing.assert_array_equal(ours[clear], dist[clear] > 0)


def test_points_in_polygons_matrix_shape():
    inside = points_in_polygons(np.array([[50, 50], [20, 80], [500, 500]]), [SQUARE, L_SHAPE])
    assert inside.tolist() == [[True, False], [True, True], [False, False]]
    assert points_in_polygons(np.zeros((3, 2)), []).shape == (3, 0)


@pytest.mark.parametrize(
    ("point", "a", "b", "side", "distance", "t"),
    [
        ((50, 0), (0, 10), (100, 10), -1, -10.0, 0.5),  # image y grows downwards: above is "left"
        ((50, 30), (0, 10), (100, 10), 1, 20.0, 0.5),
        ((150, 10), (0, 10), (100, 10), 0, 0.0, 1.5),
        ((0, 10), (0, 0), (10, 10), 1, np.sqrt(50), 0.5),  # diagonal
    ],
)
def test_signed_side_distance_and_parameter(point, a, b, side, distance, t):
    p = np.array([point])
    assert np.sign(signed_side(p, a, b)[0]) == side
    assert signed_distance(p, a, b)[0] == pytest.approx(distance)
    assert line_parameter(p, a, b)[0] == pytest.approx(t)


def test_signed_distance_rejects_degenerate_line():
    with pytest.raises(ValueError, match="same point"):
        signed_distance(np.array([[1, 1]]), (5, 5), (5, 5))


# ---------------------------------------------------------------------------------------------- tripwire

HORIZONTAL = {"points": ((0, 100), (200, 100)), "inside_point": (100, 200)}  # store is below the line
HORIZONTAL_FLIPPED = {"points": ((0, 100), (200, 100)), "inside_point": (100, 0)}  # store is above
HORIZONTAL_REVERSED = {"points": ((200, 100), (0, 100)), "inside_point": (100, 200)}  # ends swapped
DIAGONAL = {"points": ((0, 0), (100, 100)), "inside_point": (100, 0)}  # store is right/above of y = x


def run_wire(wire_kw: dict, trajectory: list[tuple[float, float]], min_travel: float = 8.0) -> list:
    wire = Tripwire(TripwireConfig(id="door", min_travel_px=min_travel, **wire_kw))
    out = []
    for xy in trajectory:
        out += [c.direction for c in wire.update(np.array([7]), np.array([xy]))]
    return out


@pytest.mark.parametrize(
    ("wire", "trajectory", "expected"),
    [
        pytest.param(HORIZONTAL, [(100, 50), (100, 150)], [IN], id="in-one-step"),
        pytest.param(HORIZONTAL, [(100, 150), (100, 50)], [OUT], id="out-one-step"),
        pytest.param(HORIZONTAL, [(100, 50), (100, 95), (100, 104), (100, 150)], [IN], id="in-many-steps"),
        pytest.param(HORIZONTAL, [(100, 50), (100, 150), (100, 50)], [IN, OUT], id="in-then-out"),
        pytest.param(HORIZONTAL, [(0, 50), (50, 50), (150, 50), (190, 60)], [], id="along-outside"),
        pytest.param(HORIZONTAL, [(10, 98), (50, 102), (150, 97), (190, 104)], [], id="along-on-the-line"),
        pytest.param(
            HORIZONTAL,
            [(100, 50), (100, 97), (100, 103), (100, 96), (100, 104), (100, 98)],
            [],
            id="jitter-on-line",
        ),
        pytest.param(
            HORIZONTAL,
            [(100, 50), (100, 97), (100, 103), (100, 96), (100, 40)],
            [],
            id="jitter-then-back-out",
        ),
        pytest.param(
            HORIZONTAL, [(100, 50), (100, 97), (100, 103), (100, 96), (100, 150)], [IN], id="jitter-then-in"
        ),
        pytest.param(HORIZONTAL, [(100, 50), (100, 105)], [], id="in-but-within-min-travel"),
        pytest.param(HORIZONTAL, [(100, 50), (100, 108)], [IN], id="in-exactly-min-travel"),
        pytest.param(HORIZONTAL, [(300, 50), (300, 150)], [], id="crosses-line-right-of-segment"),
        pytest.param(HORIZONTAL, [(-50, 150), (-50, 50)], [], id="crosses-line-left-of-segment"),
        pytest.param(HORIZONTAL, [(250, 50), (150, 150)], [IN], id="slanted-step-crossing-at-t-0.75"),
        pytest.param(HORIZONTAL, [(350, 50), (150, 150)], [], id="slanted-step-crossing-beyond-end"),
        pytest.param(
            HORIZONTAL, [(300, 50), (300, 150), (100, 150), (100, 50)], [OUT], id="around-the-end-then-out"
        ),
        pytest.param(HORIZONTAL, [(100, 150), (100, 170)], [], id="first-seen-inside"),
        pytest.param(HORIZONTAL, [(100, 100), (100, 150)], [], id="first-seen-on-the-line"),
        pytest.param(HORIZONTAL_FLIPPED, [(100, 150), (100, 50)], [IN], id="inside-point-above"),
        pytest.param(HORIZONTAL_FLIPPED, [(100, 50), (100, 150)], [OUT], id="inside-point-above-out"),
        pytest.param(HORIZONTAL_REVERSED, [(100, 50), (100, 150)], [IN], id="reversed-ends-same-meaning"),
        pytest.param(DIAGONAL, [(20, 80), (80, 20)], [IN], id="diagonal-in"),
        pytest.param(DIAGONAL, [(80, 20), (20, 80)], [OUT], id="diagonal-out"),
        pytest.param(DIAGONAL, [(150, 170), (170, 150)], [], id="diagonal-beyond-end"),
        pytest.param(DIAGONAL, [(45, 55), (55, 45)], [], id="diagonal-within-min-travel"),
    ],
)
def test_tripwire_crossings(wire, trajectory, expected):
    assert run_wire(wire, trajectory) == expected


@pytest.mark.parametrize(
    ("trajectory", "min_travel", "expected"),
    [
        ([(100, 99), (100, 101)], 0.0, [IN]),  # zero dead band: any strict side change counts
        ([(100, 90), (100, 100), (100, 90)], 0.0, []),  # touching the line is not crossing it
        ([(100, 50), (100, 130)], 40.0, []),
        ([(100, 50), (100, 140)], 40.0, [IN]),
    ],
)
def test_tripwire_min_travel(trajectory, min_travel, expected):
    assert run_wire(HORIZONTAL, trajectory, min_travel) == expected


def test_tripwire_tracks_are_independent_and_forgettable():
    wire = Tripwire(TripwireConfig(id="door", **HORIZONTAL))
    ids = np.array([1, 2])
    assert wire.update(ids, np.array([[50, 50], [150, 150]])) == []
    got = wire.update(ids, np.array([[50, 150], [150, 50]]))
    assert [(c.track_id, c.tripwire_id, c.direction) for c in got] == [(1, "door", IN), (2, "door", OUT)]
    assert (wire.side_of(1), wire.side_of(2), wire.side_of(99)) == (1, -1, 0)
    wire.forget(1)
    assert wire.side_of(1) == 0
    assert wire.update(np.array([1]), np.array([[50, 50]])) == []  # re-initialised, no OUT
    assert wire.update(np.array([], dtype=int), np.zeros((0, 2))) == []
