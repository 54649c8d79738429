"""Who does what in a synthetic scene: seeded recipes of people with plans, and the simulation that moves them.

A person follows a list of tasks (walk somewhere, wait, queue at the till, leave the view, come back);
the simulation steps every person at the clip's frame rate and records where their feet are. The
billing queue is simulated, not scripted: customers take the first free slot behind the last one,
move up when the slot ahead frees, pay at the till (a POS transaction) after a service time, or give
up when their patience runs out (a queue abandon). So queues build up and drain the way they do in
a shop, and the ground truth knows exactly who paid when and who left the queue.

Recipes (`SCENES`), each seeded:
    * `singles`: visitors one by one, browsing 1-2 zones, some pay, some abandon the queue.
    * `groups`: groups of 2-3 that enter, browse and leave together, beside single visitors.
    * `staff`: two staff in the uniform vest on the floor for the whole clip, plus visitors.
    * `reentry`: visitors who leave and come back 8-40 s later (same person, same clothes): two walk
      off out of view, one waits in view just outside the door.
    * `queue`: a rush at the till: the queue builds up to 4 and some give up.
    * `occlusion`: visitors browsing behind the gondola (legs hidden) and walking past each other.
    * `store`: a bit of everything (the busiest scene).
Passers-by walk along the corridor outside in every scene: they must never count.

Example:
    >>> from workloads.synthetic.layout import store_layout
    >>> plan = make_plan("singles", seed=1, layout=store_layout(), n_identities=25)
    >>> sim = simulate(plan, store_layout())
    >>> sim.feet.shape[1] == len(plan.agents), sim.fps
    (True, 10.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from workloads.config import ZoneType
from workloads.geometry import points_in_polygon
from workloads.synthetic.layout import Point, StoreLayout

FPS = 10.0
#: Walking speed in person-heights per second (~1.2 m/s for a 1.7 m person).
WALK_SPEED_H = 0.72
#: People coming in walk this far right of the door's centre line, people going out this far left.
LANE_OFFSET_PX = 32.0
#: Walkers wait for someone standing closer than this (person heights) right ahead of them, at most
#: MAX_YIELD_S (then they squeeze past): people do not walk through each other.
PERSONAL_SPACE_H = 0.45
MAX_YIELD_S = 2.0


class Role(StrEnum):
    VISITOR = "visitor"
    STAFF = "staff"
    PASSERBY = "passerby"


@dataclass(frozen=True)
class Walk:
    to: Point


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Queue:
    """Join the billing queue; pay after `service_s` at the till, or leave after `patience_s` waiting.

    A customer who paid steps away from the till to `StoreLayout.after_till` (around the queue, not
    through it) before going on; one who gives up goes straight on.
    """

    service_s: float
    patience_s: float


@dataclass(frozen=True)
class Offscreen:
    """Leave the view (at a frame edge) for `seconds`, then come back where they left."""

    seconds: float


@dataclass(frozen=True)
class Despawn:
    """Leave the view for good."""


@dataclass(frozen=True)
class WanderUntil:
    """Staff: walk between `points` with pauses until time `t_end`."""

    t_end: float
    points: tuple[Point, ...]


Task = Walk | Wait | Queue | Offscreen | Despawn | WanderUntil


@dataclass
class Agent:
    """One person of the scene and their plan."""

    pid: int
    role: Role
    identity: int  # index into the sprite bank
    start_t: float
    start: Point
    tasks: list[Task]
    size: float = 1.0  # height factor
    speed: float = 1.0  # walking speed factor
    leader: int | None = None  # followers copy the leader's position plus `offset` (person heights)
    offset: tuple[float, float] = (0.0, 0.0)
    seed: int = 0


@dataclass
class Plan:
    name: str
    seed: int
    duration_s: float
    agents: list[Agent]


@dataclass
class Simulation:
    """Where everyone is on every frame, and what the till saw.

    Attributes:
        feet: (F, A, 2) float64 feet positions; NaN where the person is not in the scene.
        moving: (F, A) bool, walking on this frame (drives the walk-cycle animation).
        facing: (F, A) int8, +1 moving right, -1 left, 0 unknown.
        transactions: (time_s, pid) per payment at the till.
        queue_outcomes: pid -> list of "paid" / "abandoned" per Queue task, in order.
    """

    fps: float
    feet: npt.NDArray[np.float64]
    moving: npt.NDArray[np.bool_]
    facing: npt.NDArray[np.int8]
    transactions: list[tuple[float, int]]
    queue_outcomes: dict[int, list[str]] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.feet.shape[0])


# ---------------------------------------------------------------------------------------------- routing


def _segment_hits_rect(a: Point, b: Point, r: tuple[float, float, float, float]) -> bool:
    """Does segment a-b pass through rectangle r (Liang-Barsky clip)?"""
    x1, y1, x2, y2 = r
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x1), (dx, x2 - a[0]), (-dy, a[1] - y1), (dy, y2 - a[1])):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def route(a: Point, b: Point, layout: StoreLayout) -> list[Point]:
    """Waypoints from a to b going around shelf footprints: the shortest detour via their corners."""
    path = [a]
    cur = a
    for _ in range(len(layout.shelves) + 1):
        blocked = [s.footprint(12.0) for s in layout.shelves if _segment_hits_rect(cur, b, s.footprint(10.0))]
        if not blocked:
            break
        r = min(blocked, key=lambda r: math.dist(cur, ((r[0] + r[2]) / 2, (r[1] + r[3]) / 2)))
        x1, y1, x2, y2 = r
        corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        inner = (x1 + 1, y1 + 1, x2 - 1, y2 - 1)  # corners lie on the edge; only crossing the inside counts
        options = [[c] for c in corners] + [[corners[k], corners[(k + d) % 4]] for k in range(4) for d in (1, 3)]
        best: list[Point] | None = None
        for via in options:
            legs = [cur, *via, b]
            if any(_segment_hits_rect(p, q, inner) for p, q in pairwise(legs)):
                continue
            length = sum(math.dist(p, q) for p, q in pairwise(legs))
            if best is None or length < sum(math.dist(p, q) for p, q in pairwise([cur, *best, b])):
                best = via
        if best is None:
            break
        path += best
        cur = path[-1]
    path.append(b)
    return path[1:]


# ---------------------------------------------------------------------------------------------- simulation


@dataclass
class _State:
    agent: Agent
    pos: Point | None = None
    task_i: int = 0
    waypoints: list[Point] = field(default_factory=list)
    wait_left: float = 0.0
    started_task: bool = False
    queue_slot: int | None = None
    queue_joined_t: float = 0.0
    service_left: float | None = None
    wander_rng: np.random.Generator | None = None
    done: bool = False
    facing: int = 0
    saved_pos: Point | None = None  # where an Offscreen person left the view
    paid: bool = False  # paid at the till, now stepping away
    others: list[Point] = field(default_factory=list)  # where everyone else stood last frame
    yielded_s: float = 0.0  # how long they have been waiting for someone ahead


class _QueueDesk:
    def __init__(self, n: int) -> None:
        self.slots: list[int | None] = [None] * n

    def join(self, pid: int) -> int | None:
        occupied = [i for i, p in enumerate(self.slots) if p is not None]
        k = (max(occupied) + 1) if occupied else 0
        if k >= len(self.slots):
            return None
        self.slots[k] = pid
        return k

    def leave(self, slot: int) -> None:
        self.slots[slot] = None


def simulate(plan: Plan, layout: StoreLayout, fps: float = FPS) -> Simulation:
    """Step every person's plan at `fps` for `plan.duration_s`; deterministic for a given plan."""
    n_frames = round(plan.duration_s * fps)
    agents = plan.agents
    index = {a.pid: i for i, a in enumerate(agents)}
    feet = np.full((n_frames, len(agents), 2), np.nan)
    moving = np.zeros((n_frames, len(agents)), bool)
    facing = np.zeros((n_frames, len(agents)), np.int8)
    states = [_State(a) for a in agents]
    desk = _QueueDesk(len(layout.queue_slots))
    transactions: list[tuple[float, int]] = []
    outcomes: dict[int, list[str]] = {}
    dt = 1.0 / fps
    group = {a.pid: a.leader if a.leader is not None else a.pid for a in agents}
    for f in range(n_frames):
        t = f * dt
        last = feet[f - 1] if f else np.full((len(agents), 2), np.nan)
        for st in states:
            a = st.agent
            if a.leader is not None or st.done or t < a.start_t:
                continue
            st.others = [
                (float(last[k, 0]), float(last[k, 1])) for k, b in enumerate(agents)
                if group[b.pid] != group[a.pid] and not np.isnan(last[k, 0])
            ]
            if st.pos is None and st.task_i == 0 and not st.started_task:
                st.pos = a.start
            moved = _step(st, t, dt, layout, desk, transactions, outcomes)
            i = index[a.pid]
            if st.pos is not None:
                feet[f, i] = st.pos
                moving[f, i] = moved
                facing[f, i] = st.facing
        for st in states:  # followers copy their leader
            a = st.agent
            if a.leader is None:
                continue
            li = index[a.leader]
            if np.isnan(feet[f, li, 0]):
                continue
            lx, ly = feet[f, li]
            h = layout.height_at(ly)
            i = index[a.pid]
            feet[f, i] = (lx + a.offset[0] * h, ly + a.offset[1] * h)
            moving[f, i] = moving[f, li]
            facing[f, i] = facing[f, li]
    return Simulation(fps, feet, moving, facing, transactions, outcomes)


def _speed(st: _State, layout: StoreLayout) -> float:
    assert st.pos is not None
    return WALK_SPEED_H * layout.height_at(st.pos[1]) * st.agent.size * st.agent.speed


def _blocked(st: _State, layout: StoreLayout) -> bool:
    """Someone stands within personal space right ahead."""
    if not st.waypoints or st.pos is None:
        return False
    x, y = st.pos
    tx, ty = st.waypoints[0]
    d = math.dist((x, y), (tx, ty))
    if d < 1e-6:
        return False
    ux, uy = (tx - x) / d, (ty - y) / d
    space = PERSONAL_SPACE_H * layout.height_at(y)
    for ox, oy in st.others:
        dx, dy = ox - x, oy - y
        dist = math.hypot(dx, dy)
        if 1e-6 < dist < space and (dx * ux + dy * uy) > 0.5 * dist:
            return True
    return False


def _walk(st: _State, dt: float, layout: StoreLayout) -> bool:
    """Advance along waypoints (yielding to someone right ahead); True while still walking."""
    assert st.pos is not None
    if not _blocked(st, layout):
        st.yielded_s = 0.0
    elif st.yielded_s < MAX_YIELD_S:  # wait for them (still on the way); after MAX_YIELD_S squeeze past
        st.yielded_s += dt
        return True
    budget = _speed(st, layout) * dt
    while st.waypoints and budget > 0:
        tx, ty = st.waypoints[0]
        x, y = st.pos
        d = math.dist((x, y), (tx, ty))
        if abs(tx - x) > 1.0:
            st.facing = 1 if tx > x else -1
        if d <= budget:
            st.pos = (tx, ty)
            budget -= d
            st.waypoints.pop(0)
        else:
            st.pos = (x + (tx - x) * budget / d, y + (ty - y) * budget / d)
            budget = 0
    return bool(st.waypoints)


def _step(
    st: _State,
    t: float,
    dt: float,
    layout: StoreLayout,
    desk: _QueueDesk,
    transactions: list[tuple[float, int]],
    outcomes: dict[int, list[str]],
) -> bool:
    """One frame of one person's plan; returns whether they walked."""
    a = st.agent
    while st.task_i < len(a.tasks):
        task = a.tasks[st.task_i]
        first = not st.started_task
        st.started_task = True
        if isinstance(task, Walk):
            if first:
                st.waypoints = route(st.pos, task.to, layout)
            if _walk(st, dt, layout):
                return True
        elif isinstance(task, Wait):
            if first:
                st.wait_left = task.seconds
            st.wait_left -= dt
            if st.wait_left > 0:
                return False
        elif isinstance(task, Queue):
            if st.paid:
                if _walk(st, dt, layout):
                    return True
                st.paid = False
                _next(st)
                continue
            if first:
                st.queue_slot = desk.join(a.pid)
                st.queue_joined_t = t
                st.service_left = None
                if st.queue_slot is None:  # queue full: skip paying
                    outcomes.setdefault(a.pid, []).append("queue_full")
                    _next(st)
                    continue
                st.waypoints = route(st.pos, layout.queue_slots[st.queue_slot], layout)
            if st.waypoints:
                _walk(st, dt, layout)
                return True
            slot = st.queue_slot
            assert slot is not None
            if slot == 0:
                if st.service_left is None:
                    st.service_left = task.service_s
                st.service_left -= dt
                if st.service_left > 0:
                    return False
                transactions.append((round(t, 3), a.pid))
                outcomes.setdefault(a.pid, []).append("paid")
                desk.leave(0)
                st.paid = True
                st.waypoints = route(st.pos, layout.after_till, layout)
                return False
            if desk.slots[slot - 1] is None:  # move up
                desk.leave(slot)
                st.queue_slot = slot - 1
                desk.slots[slot - 1] = a.pid
                st.waypoints = [layout.queue_slots[slot - 1]]
                _walk(st, dt, layout)
                return True
            if t - st.queue_joined_t >= task.patience_s:
                desk.leave(slot)
                outcomes.setdefault(a.pid, []).append("abandoned")
                _next(st)
                continue
            return False
        elif isinstance(task, Offscreen):
            if first:
                st.wait_left = task.seconds
                st.saved_pos, st.pos = st.pos, None
            st.wait_left -= dt
            if st.wait_left > 0:
                return False
            st.pos = st.saved_pos
        elif isinstance(task, Despawn):
            st.pos = None
            st.done = True
            return False
        elif isinstance(task, WanderUntil):
            if first:
                st.wander_rng = np.random.default_rng(a.seed)
                st.waypoints = []
                st.wait_left = 0.0
            if t >= task.t_end:
                _next(st)
                continue
            assert st.wander_rng is not None
            if st.waypoints:
                _walk(st, dt, layout)
                return True
            if st.wait_left > 0:
                st.wait_left -= dt
                return False
            target = task.points[int(st.wander_rng.integers(len(task.points)))]
            st.waypoints = route(st.pos, target, layout)
            st.wait_left = float(st.wander_rng.uniform(2.0, 8.0))
            return False
        _next(st)
    return False


def _next(st: _State) -> None:
    st.task_i += 1
    st.started_task = False


# ---------------------------------------------------------------------------------------------- recipes


def _point_in_zone(layout: StoreLayout, zone_id: str, rng: np.random.Generator, margin: float = 14.0) -> Point:
    poly = np.asarray(layout.zone(zone_id).polygon, dtype=np.float64)
    x1, y1 = poly.min(axis=0) + margin
    x2, y2 = poly.max(axis=0) - margin
    x2 = min(x2, layout.size[0] - 30.0)
    for _ in range(100):
        p = (float(rng.uniform(x1, x2)), float(rng.uniform(y1, y2)))
        if points_in_polygon(np.array([p]), poly)[0]:
            return p
    return (float((x1 + x2) / 2), float((y1 + y2) / 2))


class _Builder:
    """Accumulates agents for one recipe; hands out distinct sprite identities."""

    def __init__(self, name: str, seed: int, layout: StoreLayout, n_identities: int, duration_s: float) -> None:
        self.name, self.seed, self.layout = name, seed, layout
        self.rng = np.random.default_rng([seed, sum(map(ord, name))])
        self.duration_s = duration_s
        self.agents: list[Agent] = []
        self._ids = [int(i) for i in self.rng.permutation(n_identities)]

    def identity(self) -> int:
        if not self._ids:  # more people than identities: reuse, as in a busy store (rare here)
            self._ids = [int(i) for i in self.rng.permutation(len(self.agents) or 1)]
        return self._ids.pop()

    def _edge(self) -> tuple[Point, Point]:
        """A corridor entry point off one side of the frame and the matching exit point."""
        y = float(self.rng.uniform(*self.layout.corridor_y))
        w = self.layout.size[0]
        left, right = (-25.0, y), (w + 25.0, y)
        return (left, right) if self.rng.random() < 0.5 else (right, left)

    def add(self, agent_kw: dict, tasks: list[Task]) -> Agent:
        agent = Agent(
            pid=len(self.agents),
            tasks=tasks,
            size=float(self.rng.uniform(0.93, 1.07)),
            speed=float(self.rng.uniform(0.85, 1.15)),
            seed=int(self.rng.integers(1 << 30)),
            **agent_kw,
        )
        self.agents.append(agent)
        return agent

    def browse(self, zones: list[str]) -> list[Task]:
        out: list[Task] = []
        for z in zones:
            out += [Walk(_point_in_zone(self.layout, z, self.rng)), Wait(float(self.rng.uniform(4.0, 14.0)))]
        return out

    def visitor(
        self,
        t: float,
        zones: list[str],
        *,
        pay: bool = False,
        patience_s: float = 60.0,
        come_back_after: float | None = None,
        zones_after: list[str] | None = None,
        step_out: bool = False,
    ) -> Agent:
        """A visitor's plan: in through the door, browse, maybe pay, out; maybe back after a while.

        `come_back_after`: seconds before coming back in, spent out of view (walked off along the
        corridor) or, with `step_out`, waiting in view just outside the door (e.g. taking a call).
        """
        start, end = self._edge()
        (out_in, in_in), (in_out, out_out) = self._lane(+1), self._lane(-1)
        tasks: list[Task] = [Walk(out_in), Walk(in_in), *self.browse(zones)]
        if pay:
            tasks.append(Queue(service_s=float(self.rng.uniform(6.0, 10.0)), patience_s=patience_s))
        tasks += [Walk(in_out), Walk(out_out)]
        if come_back_after is not None and step_out:
            x, y = self.layout.door_outside
            aside = (x + float(self.rng.choice([-1.0, 1.0])) * float(self.rng.uniform(90.0, 150.0)), y - 8.0)
            tasks += [Walk(aside), Wait(come_back_after), Walk(out_in), Walk(in_in)]
            tasks += [*self.browse(zones_after or []), Walk(in_out), Walk(out_out)]
        elif come_back_after is not None:
            tasks += [Walk(end), Offscreen(come_back_after), Walk(out_in), Walk(in_in)]
            tasks += [*self.browse(zones_after or []), Walk(in_out), Walk(out_out)]
        tasks += [Walk(end), Despawn()]
        return self.add({"role": Role.VISITOR, "identity": self.identity(), "start_t": t, "start": start}, tasks)

    def _lane(self, direction: int) -> tuple[Point, Point]:
        """Door waypoints (first, second) of one pass: people keep to one side of the door by direction,
        as they do (two people cannot walk through each other), with a little personal jitter."""
        dx = LANE_OFFSET_PX * direction + float(self.rng.uniform(-8.0, 8.0))
        outside, inside = self.layout.door_outside, self.layout.door_inside
        a, b = (outside[0] + dx, outside[1]), (inside[0] + dx, inside[1])
        return (a, b) if direction > 0 else (b, a)

    def group(self, t: float, size: int, zones: list[str]) -> list[Agent]:
        leader = self.visitor(t, zones)
        offsets = [(0.42, 0.04), (-0.42, -0.05)][: size - 1]
        return [leader] + [
            self.add(
                {"role": Role.VISITOR, "identity": self.identity(), "start_t": t, "start": leader.start,
                 "leader": leader.pid, "offset": off},
                [],
            )
            for off in offsets
        ]

    def staff(self, start: Point) -> Agent:
        lay = self.layout
        points = tuple(lay.wander_points)
        return self.add(
            {"role": Role.STAFF, "identity": self.identity(), "start_t": 0.0, "start": start},
            [WanderUntil(self.duration_s + 1.0, points)],
        )

    def passerby(self, t: float) -> Agent:
        start, end = self._edge()
        return self.add(
            {"role": Role.PASSERBY, "identity": self.identity(), "start_t": t, "start": start},
            [Walk(end), Despawn()],
        )

    def plan(self) -> Plan:
        return Plan(self.name, self.seed, self.duration_s, self.agents)


def _zones(b: _Builder, k: int) -> list[str]:
    names = [z.id for z in b.layout.camera.zones if z.type in (ZoneType.PRODUCT, ZoneType.HIGH_VALUE)]
    return [names[int(i)] for i in b.rng.choice(len(names), size=min(k, len(names)), replace=False)]


def _arrivals(b: _Builder, n: int, first: float, gap: float) -> list[float]:
    return [first + i * gap + float(b.rng.uniform(-0.3, 0.3)) * gap for i in range(n)]


def _singles(b: _Builder) -> None:
    for i, t in enumerate(_arrivals(b, 7, 2.0, 11.0)):
        pay = i % 3 == 0
        b.visitor(t, _zones(b, 1 + int(b.rng.integers(2))), pay=pay, patience_s=60.0)
    b.visitor(40.0, _zones(b, 1), pay=True, patience_s=4.0)  # gives up at once if anyone is ahead
    for t in (5.0, 47.0, 90.0):
        b.passerby(t)


def _groups(b: _Builder) -> None:
    for t, size in ((2.0, 3), (30.0, 2), (62.0, 3)):
        b.group(t, size, _zones(b, 1 + int(b.rng.integers(2))))
    for t in (14.0, 45.0):
        b.visitor(t, _zones(b, 1), pay=True)
    b.passerby(20.0)


def _staff(b: _Builder) -> None:
    b.staff(b.layout.stockroom)
    b.staff(b.layout.wander_points[int(b.rng.integers(len(b.layout.wander_points)))])
    for t in _arrivals(b, 5, 3.0, 16.0):
        b.visitor(t, _zones(b, 1 + int(b.rng.integers(2))), pay=bool(b.rng.random() < 0.5))
    b.passerby(30.0)


def _reentry(b: _Builder) -> None:
    for i, t in enumerate(_arrivals(b, 5, 2.0, 14.0)):
        back = float(b.rng.uniform(8.0, 40.0)) if i < 3 else None
        b.visitor(t, _zones(b, 1), come_back_after=back, zones_after=_zones(b, 1), pay=i == 4, step_out=i == 1)
    b.passerby(25.0)


def _queue(b: _Builder) -> None:
    for i, t in enumerate(_arrivals(b, 8, 2.0, 5.0)):
        patience = 12.0 if i in (3, 5, 7) else 90.0
        b.visitor(t, _zones(b, 1), pay=True, patience_s=patience)
    b.passerby(35.0)


def _occlusion(b: _Builder) -> None:
    for t in _arrivals(b, 6, 2.0, 9.0):
        zones = ["MAKEUP"] if b.rng.random() < 0.7 else _zones(b, 1)
        b.visitor(t, zones, pay=bool(b.rng.random() < 0.3))
    b.passerby(12.0)
    b.passerby(50.0)


def _store(b: _Builder) -> None:
    b.staff(b.layout.stockroom)
    for i, t in enumerate(_arrivals(b, 8, 2.0, 12.0)):
        back = float(b.rng.uniform(10.0, 30.0)) if i == 2 else None
        b.visitor(t, _zones(b, 1 + int(b.rng.integers(2))), pay=i % 2 == 0, patience_s=25.0 if i == 4 else 80.0,
                  come_back_after=back, zones_after=_zones(b, 1))
    b.group(50.0, 2, _zones(b, 1))
    for t in (8.0, 60.0, 100.0):
        b.passerby(t)


SCENES: dict[str, tuple[Callable[[_Builder], None], float]] = {
    "singles": (_singles, 150.0),
    "groups": (_groups, 130.0),
    "staff": (_staff, 140.0),
    "reentry": (_reentry, 170.0),
    "queue": (_queue, 150.0),
    "occlusion": (_occlusion, 120.0),
    "store": (_store, 180.0),
}


def make_plan(name: str, seed: int, layout: StoreLayout, n_identities: int) -> Plan:
    """The seeded plan of a named scene recipe."""
    if name not in SCENES:
        raise KeyError(f"unknown synthetic scene {name!r}; known: {', '.join(sorted(SCENES))}")
    recipe, duration = SCENES[name]
    b = _Builder(name, seed, layout, n_identities, duration)
    recipe(b)
    return b.plan()
