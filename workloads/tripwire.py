"""A directed tripwire: turns feet trajectories into IN / OUT crossings of a door line.

A box's bottom edge jitters by a few pixels every frame, so a naive "sign changed" test fires
bursts of fake entries for anyone standing on the line. Here each track has a *settled* side that
only changes once the feet are at least `min_travel_px` away from the line, and a crossing counts
only if the feet passed through the segment itself (not the line's extension beyond its ends).

Rules, per track:
    * Settled side: +1 store side (the side of `inside_point`), -1 outside, 0 not known yet. A
      point closer than `min_travel_px` to the infinite line (the dead band) never settles a side.
    * The first settled side of a track produces nothing (we did not see it cross).
    * When the settled side flips, the crossing is reported (IN towards +1, OUT towards -1) if the
      *last* place where the trajectory crossed the infinite line lies on the segment. Walking
      around the end of the segment flips the side silently.
    * Wandering in the dead band and returning to the same side produces nothing.

Example:
    >>> import numpy as np
    >>> from workloads.config import TripwireConfig
    >>> wire = Tripwire(TripwireConfig(id="door", points=((0, 100), (200, 100)), inside_point=(100, 200)))
    >>> wire.update(np.array([7]), np.array([[100.0, 50.0]]))
    []
    >>> [c.direction.value for c in wire.update(np.array([7]), np.array([[100.0, 150.0]]))]
    ['IN']
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from workloads.config import TripwireConfig
from workloads.geometry import line_parameter, signed_distance


class CrossingDirection(StrEnum):
    IN = "IN"
    OUT = "OUT"


@dataclass(frozen=True)
class Crossing:
    """One track crossing one tripwire."""

    track_id: int
    tripwire_id: str
    direction: CrossingDirection


@dataclass
class _TrackSide:
    side: int  # settled side: +1 store side, -1 outside, 0 unknown
    last_d: float  # signed distance of the last point (store side positive)
    last_xy: tuple[float, float]
    cross_t: float | None  # segment parameter of the last line crossing since the side settled


class Tripwire:
    """Per-track side state for one tripwire. Pure: no clock, no I/O; picklable."""

    def __init__(self, cfg: TripwireConfig) -> None:
        self.cfg = cfg
        self._a = cfg.points[0]
        self._b = cfg.points[1]
        inside = float(signed_distance(np.array([cfg.inside_point]), self._a, self._b)[0])
        self._orient = 1.0 if inside > 0 else -1.0  # makes the store side positive
        self._tracks: dict[int, _TrackSide] = {}

    @property
    def id(self) -> str:
        return self.cfg.id

    def side_of(self, track_id: int) -> int:
        """Settled side of a track: +1 store side, -1 outside, 0 unknown / never seen."""
        st = self._tracks.get(track_id)
        return st.side if st else 0

    def forget(self, track_id: int) -> None:
        """Drop a track's state (call when the tracker ends the track)."""
        self._tracks.pop(track_id, None)

    def update(self, track_ids: npt.ArrayLike, points: npt.ArrayLike) -> list[Crossing]:
        """Feed one frame's feet positions; returns the crossings completed on this frame.

        Args:
            track_ids: (N,) int track ids.
            points: (N, 2) feet positions in pixels, same order.
        """
        ids = np.asarray(track_ids).reshape(-1)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(ids) == 0:
            return []
        dist = signed_distance(pts, self._a, self._b) * self._orient
        min_travel = self.cfg.min_travel_px
        out: list[Crossing] = []
        for tid_raw, (x, y), d in zip(ids.tolist(), pts.tolist(), dist.tolist(), strict=True):
            tid = int(tid_raw)
            settled = d != 0.0 and abs(d) >= min_travel
            new_side = (1 if d > 0 else -1) if settled else 0
            st = self._tracks.get(tid)
            if st is None:
                self._tracks[tid] = _TrackSide(new_side, d, (x, y), None)
                continue
            if (st.last_d > 0) != (d > 0):
                # Where the step from the last point crossed the infinite line, as a segment parameter.
                f = st.last_d / (st.last_d - d)
                cx = st.last_xy[0] + f * (x - st.last_xy[0])
                cy = st.last_xy[1] + f * (y - st.last_xy[1])
                st.cross_t = float(line_parameter(np.array([[cx, cy]]), self._a, self._b)[0])
            if settled:
                through_segment = st.cross_t is not None and 0.0 <= st.cross_t <= 1.0
                if st.side != 0 and new_side != st.side and through_segment:
                    direction = CrossingDirection.IN if new_side > 0 else CrossingDirection.OUT
                    out.append(Crossing(tid, self.cfg.id, direction))
                st.side = new_side
                st.cross_t = None
            st.last_d = d
            st.last_xy = (x, y)
        return out
