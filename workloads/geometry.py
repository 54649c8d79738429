"""Plane geometry on pixel coordinates, vectorised over many points.

Zones and tripwires only ever ask two questions about a person: where are their feet, and on
which side of a line / inside which polygon are they. Answering those for every box of a frame at
once keeps the per-frame cost flat in the number of people.

Example:
    >>> import numpy as np
    >>> feet = feet_points(np.array([[10, 0, 30, 50]]))
    >>> feet.tolist()
    [[20.0, 50.0]]
    >>> points_in_polygon(feet, np.array([[0, 0], [100, 0], [100, 100], [0, 100]])).tolist()
    [True]
    >>> signed_side(feet, (0, 60), (100, 60)).tolist()  # y grows downwards: feet are above the line
    [-1000.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PointLike = Sequence[float] | npt.NDArray[np.floating]


def _as_points(points: npt.ArrayLike) -> FloatArray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def feet_points(boxes: npt.ArrayLike) -> FloatArray:
    """Bottom-centre of `x1, y1, x2, y2` boxes: where a person stands on the floor plane.

    Args:
        boxes: (N, 4) boxes in pixels.

    Returns:
        (N, 2) float64 points `x, y`.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, b[:, 3]], axis=1)


def points_in_polygon(points: npt.ArrayLike, polygon: npt.ArrayLike) -> BoolArray:
    """Even-odd ray casting for N points against one polygon, without a Python loop over points.

    Points exactly on an edge may land on either side; zones debounce over time, so that is harmless.

    Args:
        points: (N, 2) points.
        polygon: (M, 2) corners in order (closed implicitly), M >= 3.

    Returns:
        (N,) bool, True where the point is inside.
    """
    p = _as_points(points)
    poly = _as_points(polygon)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    x = p[:, 0:1]  # (N, 1) broadcast against the M edges
    y = p[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)  # (N, M): edge spans the horizontal ray's height
    dy = np.where(y1 == y0, 1.0, y1 - y0)  # never used where y0 == y1 (no straddle), avoids 0/0
    x_cross = x0 + (y - y0) * (x1 - x0) / dy
    hits = straddles & (x < x_cross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def points_in_polygons(points: npt.ArrayLike, polygons: Sequence[npt.ArrayLike]) -> BoolArray:
    """Inside matrix for N points and Z polygons: (N, Z) bool."""
    p = _as_points(points)
    if not polygons:
        return np.zeros((len(p), 0), dtype=bool)
    return np.stack([points_in_polygon(p, poly) for poly in polygons], axis=1)


def signed_side(points: npt.ArrayLike, a: PointLike, b: PointLike) -> FloatArray:
    """Cross product (b - a) x (p - a) for each point: > 0 on one side of line a->b, < 0 on the other.

    Its magnitude is the distance to the infinite line times |b - a|; see `signed_distance`.
    """
    p = _as_points(points)
    ax, ay = float(a[0]), float(a[1])
    bx, by = float(b[0]), float(b[1])
    return (bx - ax) * (p[:, 1] - ay) - (by - ay) * (p[:, 0] - ax)


def signed_distance(points: npt.ArrayLike, a: PointLike, b: PointLike) -> FloatArray:
    """Signed perpendicular distance in pixels from each point to the infinite line through a, b."""
    length = float(np.hypot(float(b[0]) - float(a[0]), float(b[1]) - float(a[1])))
    if length == 0.0:
        raise ValueError("a and b are the same point: a line needs two distinct ends")
    return signed_side(points, a, b) / length


def line_parameter(points: npt.ArrayLike, a: PointLike, b: PointLike) -> FloatArray:
    """Position of each point's projection on a->b: 0 at a, 1 at b, outside [0, 1] beyond the ends."""
    p = _as_points(points)
    a_ = np.asarray(a, dtype=np.float64)
    d = np.asarray(b, dtype=np.float64) - a_
    return ((p - a_) @ d) / float(d @ d)
