"""Zone visits: a debounced per (track, zone) state machine that emits ZONE_* and BILLING_* events.

Raw "feet inside polygon" flickers at every zone edge and drops out under occlusion, so visits are
debounced in time. All times are float seconds (epoch); every event carries the time the thing
*happened*, which may be earlier than the frame that confirmed it.

Rules (each threshold is a field of `ZoneConfig`):
    * A visit starts *pending* at the first frame the feet are seen inside. Any frame seen outside
      while pending drops it silently (a quick pass). It is *confirmed* on the first frame seen
      inside at least `min_inside_s` after it started: ZONE_ENTER at the first-inside time.
    * A confirmed visit survives frames where the track is not observed (occlusion) and frames seen
      outside for less than `exit_grace_s`. Seen outside continuously for `exit_grace_s` (counted
      from the first outside frame) closes it: ZONE_EXIT at the last-inside time, with
      `dwell_s = last_inside - first_inside`.
    * ZONE_DWELL fires once per visit, on the first frame seen inside with dwell >= `dwell_threshold_s`.
    * Every zone type, BILLING_QUEUE included, gets ZONE_ENTER / ZONE_DWELL / ZONE_EXIT, so zone
      analytics see every visit. A BILLING_QUEUE zone also emits BILLING_QUEUE_JOIN right after
      its ZONE_ENTER (same time).
    * BILLING_QUEUE_ABANDON: after a queue visit's ZONE_EXIT *that was observed* (seen leaving), if
      the track is not seen inside any CHECKOUT zone of this camera between joining and
      `abandon_grace_s` after its last-inside time. Timestamp = the queue exit (last inside), dwell =
      time spent in the queue. A camera without a CHECKOUT zone never emits ABANDON: we cannot see
      where people went.
    * `queue_depth` on billing-zone events = confirmed open visits of that queue zone (a person
      inside the grace window still counts), measured after the event's own change.
    * A track that ends (lost for good, or the stream closes): pending visits are dropped, open
      visits close with ZONE_EXIT at their last-inside time. A queue visit of a person who vanished
      *inside* the queue is no abandon (unknown outcome); one already seen leaving resolves at once
      (ABANDON unless checkout was seen). `track_left` settles the same way without forgetting the
      track (the engine calls it on a tripwire EXIT).

Example:
    >>> import numpy as np
    >>> from workloads.config import ZoneConfig
    >>> z = ZoneTracker([ZoneConfig(id="shoes", type="PRODUCT", polygon=[(0, 0), (10, 0), (10, 10), (0, 10)],
    ...                              min_inside_s=0.5, exit_grace_s=1.0)])
    >>> for t in (0.0, 0.5):
    ...     events = z.update(t, np.array([1]), np.array([[5.0, 5.0]]))
    >>> [(e.event_type.value, e.t) for e in events]
    [('ZONE_ENTER', 0.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from workloads.config import ZoneConfig, ZoneType
from workloads.events import EventType
from workloads.geometry import points_in_polygons

#: Slack for comparing float epoch seconds with thresholds (epoch floats carry ~0.2 µs of noise).
_EPS = 1e-6


@dataclass(frozen=True)
class ZoneEvent:
    """A zone event for one track, before it becomes a `VisitorEvent`."""

    event_type: EventType
    track_id: int
    zone_id: str
    t: float  # when it happened, epoch seconds
    dwell_s: float = 0.0
    queue_depth: int | None = None
    sku_zone: str | None = None


class _Phase(IntEnum):
    PENDING = 0  # seen inside, not long enough yet
    INSIDE = 1  # confirmed
    LEAVING = 2  # confirmed, seen outside, within the exit grace


@dataclass
class _Visit:
    phase: _Phase
    first_inside: float
    last_inside: float
    first_outside: float | None = None
    dwell_fired: bool = False


@dataclass
class _PendingAbandon:
    joined: float
    left: float


class ZoneTracker:
    """All zones of one camera, all tracks. Pure and picklable; feed it frames in time order."""

    def __init__(self, zones: Sequence[ZoneConfig]) -> None:
        self.zones: list[ZoneConfig] = list(zones)
        self._by_id = {z.id: z for z in self.zones}
        self._polygons = [np.asarray(z.polygon, dtype=np.float64) for z in self.zones]
        self._checkout_cols = np.array([z.type == ZoneType.CHECKOUT for z in self.zones], dtype=bool)
        self._has_checkout = bool(self._checkout_cols.any())
        self._visits: dict[tuple[int, str], _Visit] = {}
        self._abandons: dict[tuple[int, str], _PendingAbandon] = {}
        self._last_checkout: dict[int, float] = {}  # track -> last time seen inside a CHECKOUT zone

    # ------------------------------------------------------------------ queries
    def queue_depth(self, zone_id: str) -> int:
        """Confirmed people currently in a zone (used for BILLING_QUEUE zones)."""
        return sum(1 for (_, zid), v in self._visits.items() if zid == zone_id and v.phase != _Phase.PENDING)

    def confirmed_zones(self, track_id: int) -> list[str]:
        """Zones the track is currently in (confirmed visits, grace included)."""
        return [
            zid for (tid, zid), v in self._visits.items() if tid == track_id and v.phase != _Phase.PENDING
        ]

    def inside(self, points: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Raw (N, Z) inside matrix, columns in `self.zones` order."""
        return points_in_polygons(points, self._polygons)

    # ------------------------------------------------------------------ updates
    def update(self, t: float, track_ids: npt.ArrayLike, points: npt.ArrayLike) -> list[ZoneEvent]:
        """Feed the feet of the tracks observed at time `t`; also expires graces of unobserved tracks.

        Args:
            t: frame time, epoch seconds, non-decreasing across calls.
            track_ids: (N,) track ids observed on this frame.
            points: (N, 2) their feet positions.
        """
        ids = [int(i) for i in np.asarray(track_ids).reshape(-1).tolist()]
        inside = self.inside(points)
        events: list[ZoneEvent] = []
        if self._has_checkout and len(ids):
            in_checkout = inside[:, self._checkout_cols].any(axis=1).tolist()
            for tid, seen in zip(ids, in_checkout, strict=True):
                if seen:
                    self._last_checkout[tid] = t
        for row, tid in enumerate(ids):
            for col, zone in enumerate(self.zones):
                if inside[row, col]:
                    self._seen_inside(t, tid, zone, events)
                else:
                    self._seen_outside(t, tid, zone)
        for (tid, zid), v in list(self._visits.items()):
            leaving = v.phase == _Phase.LEAVING and v.first_outside is not None
            if leaving and t - v.first_outside >= self._by_id[zid].exit_grace_s - _EPS:
                self._close(tid, zid, observed_leaving=True, events=events)
        self._resolve_abandons(t, events, final_for=None)
        return events

    def track_left(self, track_id: int) -> list[ZoneEvent]:
        """The track left the monitored area (e.g. walked out the door): settle what is waiting on it.

        Visits in their exit grace close now, and pending queue abandons resolve now (ABANDON unless
        a checkout was seen), so they come before the caller's EXIT. Confirmed visits the track is
        still inside stay open.
        """
        events: list[ZoneEvent] = []
        for (tid, zid), v in list(self._visits.items()):
            if tid == track_id and v.phase == _Phase.LEAVING:
                self._close(tid, zid, observed_leaving=True, events=events)
        self._resolve_abandons(None, events, final_for=track_id)
        return events

    def end_track(self, track_id: int) -> list[ZoneEvent]:
        """The track is gone for good: close its visits at their last-inside time and forget it."""
        events: list[ZoneEvent] = []
        for (tid, zid), v in list(self._visits.items()):
            if tid != track_id:
                continue
            if v.phase == _Phase.PENDING:
                del self._visits[(tid, zid)]
            else:
                self._close(tid, zid, observed_leaving=v.phase == _Phase.LEAVING, events=events)
        self._resolve_abandons(None, events, final_for=track_id)
        self._last_checkout.pop(track_id, None)
        return events

    def track_ids(self) -> list[int]:
        """Tracks with any zone state (visits or pending abandons)."""
        ids = {tid for tid, _ in self._visits} | {tid for tid, _ in self._abandons}
        return sorted(ids)

    def close(self) -> list[ZoneEvent]:
        """End of stream: end every track."""
        events: list[ZoneEvent] = []
        for tid in self.track_ids():
            events.extend(self.end_track(tid))
        return events

    # ------------------------------------------------------------------ internals
    def _depth(self, zone: ZoneConfig) -> int | None:
        return self.queue_depth(zone.id) if zone.type == ZoneType.BILLING_QUEUE else None

    def _event(self, et: EventType, tid: int, zone: ZoneConfig, t: float, dwell: float = 0.0) -> ZoneEvent:
        return ZoneEvent(et, tid, zone.id, t, max(dwell, 0.0), self._depth(zone), zone.sku_zone)

    def _seen_inside(self, t: float, tid: int, zone: ZoneConfig, events: list[ZoneEvent]) -> None:
        key = (tid, zone.id)
        v = self._visits.get(key)
        if v is None:
            v = self._visits[key] = _Visit(_Phase.PENDING, t, t)
        v.last_inside = t
        if v.phase == _Phase.LEAVING:
            v.phase, v.first_outside = _Phase.INSIDE, None
        if v.phase == _Phase.PENDING and t - v.first_inside >= zone.min_inside_s - _EPS:
            v.phase = _Phase.INSIDE
            events.append(self._event(EventType.ZONE_ENTER, tid, zone, v.first_inside))
            if zone.type == ZoneType.BILLING_QUEUE:
                self._abandons.pop(key, None)  # back in the queue: the earlier exit was no abandon
                events.append(self._event(EventType.BILLING_QUEUE_JOIN, tid, zone, v.first_inside))
        dwell = v.last_inside - v.first_inside
        if v.phase == _Phase.INSIDE and not v.dwell_fired and dwell >= zone.dwell_threshold_s - _EPS:
            v.dwell_fired = True
            events.append(self._event(EventType.ZONE_DWELL, tid, zone, t, dwell))

    def _seen_outside(self, t: float, tid: int, zone: ZoneConfig) -> None:
        key = (tid, zone.id)
        v = self._visits.get(key)
        if v is None:
            return
        if v.phase == _Phase.PENDING:
            del self._visits[key]
        elif v.phase == _Phase.INSIDE:
            v.phase, v.first_outside = _Phase.LEAVING, t

    def _close(self, tid: int, zid: str, *, observed_leaving: bool, events: list[ZoneEvent]) -> None:
        v = self._visits.pop((tid, zid))
        zone = self._by_id[zid]
        dwell = v.last_inside - v.first_inside
        events.append(self._event(EventType.ZONE_EXIT, tid, zone, v.last_inside, dwell))
        if zone.type == ZoneType.BILLING_QUEUE and self._has_checkout and observed_leaving:
            self._abandons[(tid, zid)] = _PendingAbandon(joined=v.first_inside, left=v.last_inside)

    def _resolve_abandons(self, now: float | None, events: list[ZoneEvent], final_for: int | None) -> None:
        """Drop abandons answered by a checkout; fire those past their grace (or final for a lost track)."""
        for (tid, zid), ab in list(self._abandons.items()):
            last_checkout = self._last_checkout.get(tid)
            if last_checkout is not None and last_checkout >= ab.joined:
                del self._abandons[(tid, zid)]
                continue
            zone = self._by_id[zid]
            expired = now is not None and now - ab.left >= zone.abandon_grace_s - _EPS
            if expired or final_for == tid:
                del self._abandons[(tid, zid)]
                dwell = ab.left - ab.joined
                events.append(self._event(EventType.BILLING_QUEUE_ABANDON, tid, zone, ab.left, dwell))
