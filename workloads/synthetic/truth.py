"""Ground truth of a synthetic clip: who was where on every frame, and the events that really happened.

The truth is computed from the simulated feet positions and the people's roles and queue outcomes,
never by running the pipeline's own state machines (`workloads.zones`, `workloads.tripwire`), so a
bug there cannot hide in the truth. It follows the documented event contract applied to perfect
perception:

    * ENTRY / EXIT: the feet path passes through the door segment inwards / outwards. A later inward
      crossing by a person who exited less than `reentry_window_s` ago is REENTRY.
    * Zone visits: frames with the feet inside the polygon, gaps shorter than the zone's `exit_grace_s`
      bridged, visits shorter than `min_inside_s` dropped; dwell = last inside - first inside;
      ZONE_DWELL when the dwell reaches `dwell_threshold_s`.
    * BILLING_QUEUE_JOIN: a visit to a queue zone by someone who came to pay (passing through the
      queue area is not joining it). BILLING_QUEUE_ABANDON: that person gave up before reaching the
      till (the simulated queue knows), at the end of the queue visit.
    * Staff: the people the plan made staff. Passers-by never enter.
    * Transactions: when the till finished serving someone.

Example:
    >>> import numpy as np
    >>> crossings(np.array([[100.0, 150.0], [100.0, 250.0]]), ((0.0, 200.0), (200.0, 200.0)), (100.0, 300.0))
    [(1, 1)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from workloads.config import CameraConfig, TrackerConfig, ZoneType
from workloads.events import EventType
from workloads.geometry import line_parameter, points_in_polygon, signed_distance


@dataclass(frozen=True)
class TruthEvent:
    """One true event; `t` in seconds from the start of the clip."""

    t: float
    pid: int
    event_type: EventType
    zone_id: str | None = None
    dwell_s: float = 0.0


@dataclass(frozen=True)
class ZoneVisit:
    pid: int
    zone_id: str
    start: float  # first inside, seconds
    end: float  # last inside

    @property
    def dwell_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    t: float  # seconds from clip start
    pid: int  # who paid (truth only; a POS file does not know)
    amount: float


@dataclass(frozen=True)
class PersonTruth:
    pid: int
    role: str  # visitor | staff | passerby
    identity: int
    group: int | None  # pid of the group leader, for members of a group (leader included)


@dataclass
class GroundTruth:
    """Everything true about one clip.

    Attributes:
        fps: frame rate of the clip.
        n_frames: number of frames.
        persons: every person of the scene.
        boxes: (F, P, 4) full-body boxes `x1, y1, x2, y2`; NaN where the person is not in the scene.
        visibility: (F, P) share of the body that is visible (not behind a shelf, another person or
            off-frame); 0 where not in the scene.
        events: the true events, in time order.
        visits: zone visits.
        transactions: payments at the till.
    """

    fps: float
    n_frames: int
    persons: list[PersonTruth]
    boxes: npt.NDArray[np.float64]
    visibility: npt.NDArray[np.float64]
    events: list[TruthEvent]
    visits: list[ZoneVisit]
    transactions: list[Transaction]
    queue_zones: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ summaries
    @property
    def staff_pids(self) -> set[int]:
        return {p.pid for p in self.persons if p.role == "staff"}

    def count(self, event_type: EventType) -> int:
        return sum(1 for e in self.events if e.event_type == event_type)

    @property
    def unique_visitors(self) -> int:
        """Non-staff people who entered (a re-entry is the same visitor)."""
        staff = self.staff_pids
        return len({e.pid for e in self.events if e.event_type == EventType.ENTRY and e.pid not in staff})

    @property
    def conversion(self) -> float:
        """Visitors who paid / unique visitors (0 when nobody entered)."""
        buyers = {tr.pid for tr in self.transactions} - self.staff_pids
        n = self.unique_visitors
        return len(buyers) / n if n else 0.0

    def queue_depth_at(self, zone_id: str, t: float) -> int:
        """People in a queue zone at time t (debounced visits, as the zone contract counts them)."""
        return sum(1 for v in self.visits if v.zone_id == zone_id and v.start <= t <= v.end)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (boxes as per-frame lists) for `storefleet eval scene --out`."""
        frames = []
        for f in range(self.n_frames):
            people = [
                {"pid": p.pid, "box": [round(float(v), 1) for v in self.boxes[f, i]],
                 "visibility": round(float(self.visibility[f, i]), 3)}
                for i, p in enumerate(self.persons)
                if not np.isnan(self.boxes[f, i, 0])
            ]
            frames.append({"frame": f, "t": round(f / self.fps, 3), "people": people})
        return {
            "fps": self.fps,
            "n_frames": self.n_frames,
            "persons": [asdict(p) for p in self.persons],
            "events": [{**asdict(e), "event_type": e.event_type.value} for e in self.events],
            "visits": [asdict(v) for v in self.visits],
            "transactions": [asdict(t) for t in self.transactions],
            "summary": {
                "entries": self.count(EventType.ENTRY),
                "reentries": self.count(EventType.REENTRY),
                "exits": self.count(EventType.EXIT),
                "unique_visitors": self.unique_visitors,
                "staff": len(self.staff_pids),
                "transactions": len(self.transactions),
                "conversion": round(self.conversion, 4),
            },
            "frames": frames,
        }


# ---------------------------------------------------------------------------------------------- geometry


def crossings(
    path: npt.NDArray[np.float64], segment: tuple[tuple[float, float], tuple[float, float]], inside: tuple[float, float]
) -> list[tuple[int, int]]:
    """Frames where a feet path passes through a door segment: (frame index, +1 inwards / -1 outwards).

    NaN rows (person not in the scene) break the path: no crossing is counted across them.
    """
    a, b = segment
    orient = 1.0 if signed_distance(np.array([inside]), a, b)[0] > 0 else -1.0
    out: list[tuple[int, int]] = []
    prev: tuple[int, float, npt.NDArray[np.float64]] | None = None
    for f, p in enumerate(path):
        if np.isnan(p[0]):
            prev = None
            continue
        d = float(signed_distance(p[None], a, b)[0]) * orient
        if prev is not None and (prev[1] > 0) != (d > 0) and d != 0.0:
            frac = prev[1] / (prev[1] - d)
            cross = prev[2] + frac * (p - prev[2])
            u = float(line_parameter(cross[None], a, b)[0])
            if 0.0 <= u <= 1.0:
                out.append((f, 1 if d > 0 else -1))
        prev = (f, d, p)
    return out


def inside_intervals(inside: npt.NDArray[np.bool_], fps: float, min_inside_s: float, exit_grace_s: float
                     ) -> list[tuple[float, float]]:
    """Debounced visits from a per-frame inside flag: (first inside, last inside) in seconds."""
    runs: list[list[int]] = []
    for f in np.flatnonzero(inside).tolist():
        # Outside from frame last+1 to f-1: shorter than the grace keeps the visit open.
        if runs and (f - runs[-1][1] - 1) / fps < exit_grace_s - 1e-9:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return [(s / fps, e / fps) for s, e in runs if (e - s) / fps >= min_inside_s - 1e-9]


# ---------------------------------------------------------------------------------------------- truth


def compute_truth(
    *,
    fps: float,
    camera: CameraConfig,
    tracker: TrackerConfig,
    persons: list[PersonTruth],
    feet: npt.NDArray[np.float64],
    boxes: npt.NDArray[np.float64],
    visibility: npt.NDArray[np.float64],
    transactions: list[tuple[float, int]],
    queue_outcomes: dict[int, list[str]],
    amounts: list[float],
) -> GroundTruth:
    """Derive the true events of a clip from where everyone's feet were and what they did."""
    events: list[TruthEvent] = []
    visits: list[ZoneVisit] = []
    staff = {p.pid for p in persons if p.role == "staff"}
    for i, person in enumerate(persons):
        path = feet[:, i]
        last_exit: float | None = None
        for wire in camera.tripwires:
            for f, direction in crossings(path, wire.points, wire.inside_point):
                t = f / fps
                if direction > 0:
                    recent = last_exit is not None and t - last_exit <= tracker.reentry_window_s
                    events.append(TruthEvent(t, person.pid, EventType.REENTRY if recent else EventType.ENTRY))
                else:
                    last_exit = t
                    events.append(TruthEvent(t, person.pid, EventType.EXIT))
        visible = ~np.isnan(path[:, 0])
        for zone in camera.zones:
            flag = np.zeros(len(path), bool)
            flag[visible] = points_in_polygon(path[visible], zone.polygon)
            for start, end in inside_intervals(flag, fps, zone.min_inside_s, zone.exit_grace_s):
                visits.append(ZoneVisit(person.pid, zone.id, start, end))
                events.append(TruthEvent(start, person.pid, EventType.ZONE_ENTER, zone.id))
                if end - start >= zone.dwell_threshold_s:
                    events.append(
                        TruthEvent(start + zone.dwell_threshold_s, person.pid, EventType.ZONE_DWELL, zone.id,
                                   zone.dwell_threshold_s)
                    )
                events.append(TruthEvent(end, person.pid, EventType.ZONE_EXIT, zone.id, end - start))
        outcomes = queue_outcomes.get(person.pid, [])
        queue_visits = [v for v in visits if v.pid == person.pid and _is_queue(camera, v.zone_id)]
        if person.pid not in staff and outcomes and queue_visits:
            # One Queue task per visit; pair them in order (a re-entering person may queue twice).
            for v, outcome in zip(queue_visits, [o for o in outcomes if o != "queue_full"], strict=False):
                events.append(TruthEvent(v.start, person.pid, EventType.BILLING_QUEUE_JOIN, v.zone_id))
                if outcome == "abandoned":
                    events.append(TruthEvent(v.end, person.pid, EventType.BILLING_QUEUE_ABANDON, v.zone_id,
                                             v.end - v.start))
    events.sort(key=lambda e: (e.t, e.pid, e.event_type.value))
    txs = [Transaction(f"TX{k:04d}", t, pid, amounts[k % len(amounts)]) for k, (t, pid) in enumerate(transactions)]
    return GroundTruth(
        fps=fps,
        n_frames=int(feet.shape[0]),
        persons=persons,
        boxes=boxes,
        visibility=visibility,
        events=events,
        visits=sorted(visits, key=lambda v: (v.start, v.pid)),
        transactions=txs,
        queue_zones=[z.id for z in camera.zones if z.type == ZoneType.BILLING_QUEUE],
    )


def _is_queue(camera: CameraConfig, zone_id: str) -> bool:
    return any(z.id == zone_id and z.type == ZoneType.BILLING_QUEUE for z in camera.zones)
