"""One camera's detections in, visitor events out: tracker + tripwires + zones + staff rules.

This is the whole per-camera business logic behind the camera actor, kept free of Ray and Redis
so it can be tested frame by frame and checkpointed with `snapshot()` / `restore()`.

Event rules (see tripwire.py and zones.py for the detailed state machines):
    * visitor_id = f"{visitor_prefix}-{track_id}" (prefix: camera id plus the run's feed origin);
      track ids are never reused on one engine.
    * ENTRY / EXIT: a tripwire crossing IN / OUT. An IN crossing less than
      `tracker.reentry_window_s` after the same visitor's EXIT is REENTRY instead of ENTRY.
    * Before an EXIT, the visitor's zone visits already in their exit grace are closed and pending
      queue abandons are settled, so a session reads ... ZONE_EXIT, BILLING_QUEUE_ABANDON, EXIT.
    * Per frame and per visitor, events come out as: ENTRY/REENTRY, zone events, EXIT.
      Closures of tracks the tracker ended on this frame come first.
    * timestamp: when it happened (crossing frame; first/last inside for zone enter/exit).
      `metadata.session_seq` counts a visitor's events from 0 in emission order, which can differ
      from timestamp order by the debounce delays (e.g. a door zone entered before the tripwire).
    * event_id = deterministic_event_id(camera_id, frame_idx, visitor_id, event_type, zone_id)
      with frame_idx of the frame whose processing emitted it (close() uses last frame_idx + 1):
      replaying the same frames from a snapshot yields the same ids.
    * is_staff: recognised as staff at emission time (earlier events of that visitor keep False).
    * confidence: the visitor's detection score on the emitting frame (last score if not seen).
    * A capture time going backwards is a stream discontinuity (e.g. a looping file): every
      track is ended (visits closed) and tracking restarts with fresh ids.

Example:
    >>> from datetime import UTC, datetime
    >>> import numpy as np
    >>> from workloads.config import CameraConfig, StoreConfig, TrackerConfig
    >>> cam = CameraConfig(id="C1", source="synthetic:empty")
    >>> eng = CameraEventEngine(StoreConfig(id="S1", cameras=[cam]), cam, TrackerConfig(), fps=5.0)
    >>> eng.process(0, datetime(2026, 3, 3, tzinfo=UTC), np.zeros((0, 4)), np.zeros(0))
    []
"""

from __future__ import annotations

import pickle
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from workloads.appearance import Embedding, occluded, similarity
from workloads.config import CameraConfig, StoreConfig, TrackerConfig
from workloads.events import EventMetadata, EventType, VisitorEvent, deterministic_event_id
from workloads.geometry import feet_points
from workloads.staff import StaffClassifier
from workloads.tracking import PersonTracker
from workloads.tripwire import CrossingDirection, Tripwire
from workloads.zones import ZoneEvent, ZoneTracker

SNAPSHOT_VERSION = 1
#: A returning visitor must have been out at least this long (a track that just flickered across the
#: line is the same track, handled without appearance).
REENTRY_MIN_GAP_S = 1.0
#: The best-matching leaver must beat the second best by this much: two leavers in similar dark
#: coats are ambiguous, and a wrong link merges two real visitors into one.
REENTRY_MARGIN = 0.05


class SnapshotMismatchError(ValueError):
    """The snapshot was taken with another configuration (or format); start a fresh engine instead."""


@dataclass(frozen=True)
class Observation:
    """One confirmed person on the last processed frame (for evaluation and debugging overlays)."""

    visitor_id: str
    box: tuple[float, float, float, float]
    is_staff: bool


@dataclass
class _Visitor:
    seq: int = 0  # next session_seq
    score: float = 1.0  # last detection score
    last_exit_t: float | None = None
    visitor_id: str | None = None  # set when this track was recognised as a returning visitor


@dataclass
class _Departure:
    """A visitor who went out through the door: who, when, what they looked like."""

    visitor_id: str
    t: float
    appearance: Embedding | None
    seq: int  # their next session_seq


class CameraEventEngine:
    """Turns per-frame person boxes of one camera into `VisitorEvent`s. Picklable."""

    def __init__(
        self,
        store: StoreConfig,
        camera: CameraConfig,
        tracker: TrackerConfig,
        fps: float,
        *,
        first_track_id: int = 0,
        visitor_prefix: str | None = None,
    ) -> None:
        self.store = store
        # Run-unique prefix (the runner passes camera + feed origin): a new run of the same camera must
        # not reuse visitor ids, or its deterministic event ids would collide with an earlier run's.
        self._visitor_prefix = visitor_prefix or camera.id
        self.camera = camera
        self.tracker_cfg = tracker
        self.fps = float(fps)
        self._tracker = PersonTracker(tracker, fps, first_track_id=first_track_id)
        self._tripwires = [Tripwire(tw) for tw in camera.tripwires]
        self._zones = ZoneTracker(camera.zones)
        self._staff = StaffClassifier(store.staff, camera.zones)
        self._visitors: dict[int, _Visitor] = {}
        self._last_t: float | None = None
        self._last_frame_idx = -1
        self.observations: list[Observation] = []

    # ------------------------------------------------------------------ public API
    @property
    def active_tracks(self) -> int:
        """Confirmed tracks alive in the tracker (seen now or within the lost buffer)."""
        return len(self._tracker.alive_ids)

    def process(
        self,
        frame_idx: int,
        ts: datetime,
        boxes: npt.ArrayLike,
        scores: npt.ArrayLike,
        frame: npt.NDArray[np.uint8] | None = None,
    ) -> list[VisitorEvent]:
        """Feed one frame's person detections; returns the events it completes.

        Args:
            frame_idx: frame counter of the camera, increasing; part of the event ids.
            ts: capture time, timezone-aware.
            boxes: (N, 4) `x1, y1, x2, y2` pixels of the frame.
            scores: (N,) person scores.
            frame: the BGR image; only needed when the store has uniform-colour staff rules.
        """
        t = _epoch(ts)
        events: list[VisitorEvent] = []
        if self._last_t is not None and t < self._last_t:
            events += self._end_tracks(self._tracker.reset(), frame_idx)
        self._last_t = t
        self._last_frame_idx = frame_idx

        upd = self._tracker.update(boxes, scores, timestamp=t, frame=frame)
        events += self._end_tracks(upd.ended, frame_idx)

        ids = upd.track_ids.tolist()
        feet = feet_points(upd.boxes)
        use_frame = frame if self._staff.needs_frames else None
        # A torso half hidden by someone in front shows their clothes, not this person's: no vote.
        hidden = occluded(upd.boxes) if use_frame is not None else np.zeros(len(ids), bool)
        for i, tid in enumerate(ids):
            self._visitors.setdefault(tid, _Visitor()).score = float(upd.scores[i])
            self._staff.observe(tid, upd.boxes[i], feet[i], None if hidden[i] else use_frame)
        self.observations = [
            Observation(self._visitor_id(tid), tuple(float(v) for v in upd.boxes[i]), self._staff.is_staff(tid))
            for i, tid in enumerate(ids)
        ]

        crossings: dict[int, list[CrossingDirection]] = defaultdict(list)
        for wire in self._tripwires:
            for c in wire.update(upd.track_ids, feet):
                crossings[c.track_id].append(c.direction)
        zone_events: dict[int, list[ZoneEvent]] = defaultdict(list)
        for ze in self._zones.update(t, upd.track_ids, feet):
            zone_events[ze.track_id].append(ze)

        for tid in sorted(set(crossings) | set(zone_events)):
            dirs = crossings.get(tid, [])
            for d in dirs:
                if d == CrossingDirection.IN:
                    events.append(self._boundary(tid, frame_idx, t, entering=True))
            for ze in zone_events.get(tid, []):
                events.append(self._from_zone(ze, frame_idx))
            for d in dirs:
                if d == CrossingDirection.OUT:
                    events += [self._from_zone(ze, frame_idx) for ze in self._zones.track_left(tid)]
                    events.append(self._boundary(tid, frame_idx, t, entering=False))
        return events

    def close(self, ts: datetime) -> list[VisitorEvent]:
        """End of stream at `ts`: expire graces due by then, close every open visit, forget all tracks."""
        frame_idx = self._last_frame_idx + 1
        t = _epoch(ts)
        events: list[VisitorEvent] = []
        if self._last_t is None or t >= self._last_t:
            events += [self._from_zone(ze, frame_idx) for ze in self._zones.update(t, [], np.zeros((0, 2)))]
            self._last_t = t
        events += self._end_tracks(self._tracker.reset(), frame_idx)
        events += [self._from_zone(ze, frame_idx) for ze in self._zones.close()]  # anything left
        self._visitors.clear()
        self._last_frame_idx = frame_idx
        return events

    def snapshot(self) -> bytes:
        """The whole engine state (tracker included) as bytes, for a checkpoint in Redis."""
        return zlib.compress(pickle.dumps({"version": SNAPSHOT_VERSION, "engine": self}, protocol=5), 1)

    @classmethod
    def restore(
        cls,
        data: bytes,
        store: StoreConfig | None = None,
        camera: CameraConfig | None = None,
        tracker: TrackerConfig | None = None,
        fps: float | None = None,
    ) -> CameraEventEngine:
        """Rebuild an engine from `snapshot()` bytes (trusted: our own Redis only).

        Pass the current configuration to refuse a snapshot taken with another one: its tracks,
        visits and zone ids would not apply. Arguments left None are not checked.

        Raises:
            SnapshotMismatchError: unreadable snapshot, another format version, or a camera / staff /
                tracker configuration or fps different from the ones given.
        """
        try:
            payload = pickle.loads(zlib.decompress(data))
        except Exception as e:
            raise SnapshotMismatchError(f"unreadable camera snapshot: {e}") from e
        if not isinstance(payload, dict) or payload.get("version") != SNAPSHOT_VERSION:
            raise SnapshotMismatchError("camera snapshot has another format version")
        eng = payload["engine"]
        if not isinstance(eng, cls):
            raise SnapshotMismatchError("camera snapshot holds no CameraEventEngine")
        changed = [
            name
            for name, ok in (
                ("store", store is None or (eng.store.id == store.id and eng.store.staff == store.staff)),
                ("camera", camera is None or eng.camera == camera),
                ("tracker", tracker is None or eng.tracker_cfg == tracker),
                ("fps", fps is None or eng.fps == float(fps)),
            )
            if not ok
        ]
        if changed:
            raise SnapshotMismatchError(
                f"snapshot of camera {eng.camera.id} was taken with another {', '.join(changed)} config"
            )
        if store is not None:
            eng.store = store  # other cameras of the store may have changed; keep the current object
        return eng

    # ------------------------------------------------------------------ internals
    def _visitor_id(self, tid: int) -> str:
        v = self._visitors.get(tid)
        if v is not None and v.visitor_id is not None:
            return v.visitor_id
        return f"{self._visitor_prefix}-{tid}"

    def _end_tracks(self, track_ids: list[int], frame_idx: int) -> list[VisitorEvent]:
        events: list[VisitorEvent] = []
        for tid in track_ids:
            events += [self._from_zone(ze, frame_idx) for ze in self._zones.end_track(tid)]
            for wire in self._tripwires:
                wire.forget(tid)
            self._staff.forget(tid)
            self._visitors.pop(tid, None)
        return events

    def _boundary(self, tid: int, frame_idx: int, t: float, *, entering: bool) -> VisitorEvent:
        v = self._visitors.setdefault(tid, _Visitor())
        departures: list[_Departure] = self.__dict__.setdefault("_departures", [])
        window = self.tracker_cfg.reentry_window_s
        departures[:] = [d for d in departures if t - d.t <= window]
        if not entering:
            v.last_exit_t = t
            ev = self._event(tid, frame_idx, EventType.EXIT, t)
            departures[:] = [d for d in departures if d.visitor_id != ev.visitor_id]
            departures.append(_Departure(ev.visitor_id, t, self._tracker.appearance(tid, 1), v.seq))
            return ev
        if v.last_exit_t is not None and t - v.last_exit_t <= window:
            departures[:] = [d for d in departures if d.visitor_id != self._visitor_id(tid)]
            return self._event(tid, frame_idx, EventType.REENTRY, t)
        back = self._returning(tid, t, departures)
        if back is None:
            return self._event(tid, frame_idx, EventType.ENTRY, t)
        departures.remove(back)
        v.visitor_id, v.seq, v.last_exit_t = back.visitor_id, back.seq, back.t
        return self._event(tid, frame_idx, EventType.REENTRY, t)

    def _returning(self, tid: int, t: float, departures: list[_Departure]) -> _Departure | None:
        """The recent leaver a new track coming in is, by clothes colour; None if nobody clearly."""
        threshold = getattr(self.tracker_cfg, "reentry_min_similarity", None)
        if threshold is None or v_has_history(self._visitors.get(tid)):
            return None
        looks = self._tracker.appearance(tid, 1)
        if looks is None:
            return None
        scored = sorted(
            ((similarity(looks, d.appearance), k) for k, d in enumerate(departures)
             if d.appearance is not None and t - d.t >= REENTRY_MIN_GAP_S),
            reverse=True,
        )
        if not scored or scored[0][0] < threshold:
            return None
        if len(scored) > 1 and scored[0][0] - scored[1][0] < REENTRY_MARGIN:
            return None
        return departures[scored[0][1]]

    def _from_zone(self, ze: ZoneEvent, frame_idx: int) -> VisitorEvent:
        return self._event(
            ze.track_id,
            frame_idx,
            ze.event_type,
            ze.t,
            zone_id=ze.zone_id,
            dwell_s=ze.dwell_s,
            queue_depth=ze.queue_depth,
            sku_zone=ze.sku_zone,
        )

    def _event(
        self,
        tid: int,
        frame_idx: int,
        et: EventType,
        t: float,
        *,
        zone_id: str | None = None,
        dwell_s: float = 0.0,
        queue_depth: int | None = None,
        sku_zone: str | None = None,
    ) -> VisitorEvent:
        v = self._visitors.setdefault(tid, _Visitor())
        seq, v.seq = v.seq, v.seq + 1
        visitor_id = self._visitor_id(tid)
        return VisitorEvent(
            event_id=deterministic_event_id(self.camera.id, frame_idx, visitor_id, et, zone_id),
            store_id=self.store.id,
            camera_id=self.camera.id,
            visitor_id=visitor_id,
            event_type=et,
            timestamp=datetime.fromtimestamp(t, UTC),
            zone_id=zone_id,
            dwell_ms=round(dwell_s * 1000),
            is_staff=self._staff.is_staff(tid),
            confidence=min(max(v.score, 0.0), 1.0),
            metadata=EventMetadata(queue_depth=queue_depth, sku_zone=sku_zone, session_seq=seq),
        )


def v_has_history(v: _Visitor | None) -> bool:
    """Whether a track already has a visitor identity of its own (it went out through the door before)."""
    return v is not None and (v.last_exit_t is not None or v.visitor_id is not None)


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        raise ValueError("ts must be timezone-aware (UTC)")
    return ts.timestamp()
