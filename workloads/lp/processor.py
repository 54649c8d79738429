"""Per-store loss-prevention logic: visitor events, behavioural-analysis results and clock ticks in;
session changes, alerts and escalation requests out. Pure: no Redis, no Ray, no wall clock.

How events become rule triggers (zone_type from the store's zone table):
    ZONE_ENTER          zone_entry   (counts the visit, sets zone_visited flags, opens the visit)
    ENTRY / REENTRY     zone_entry   zone `@entrance`, type ENTRY (crossing into the store)
    EXIT                zone_entry   zone `@exit`, type EXIT (leaving through an exit, for checkout bypass)
    ZONE_EXIT           zone_exit    (closes the visit; dwell from the event)
    ZONE_DWELL, tick    zone_loiter  once per visit and rule, when its conditions first hold; the tick
                                     checks open visits on the camera's clock, so it fires while the
                                     person is still inside; a ZONE_EXIT checks once more (catch-up)
    BA result           ba_result    (sets `external` flags first)
Alert ids derive from the cause (event id, visit, result id) so a replay after a crash yields the same
ids; `fire_once_per` marks live in the session and are saved with it. Which alerts fire depends on
the events alone, not on how they were batched or when ticks ran: a session that outlived its timeout
is expired by the next event's time, and a loiter threshold passed between ticks is caught at exit.

Example:
    >>> lp = StoreRules("S1", {"HV": "HIGH_VALUE"}, load_rules(DEFAULT_RULES_FILE.read_text()))  # doctest: +SKIP
    >>> fx = lp.apply_events(events)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workloads.events import EventType, VisitorEvent
from workloads.lp.clock import StoreClock
from workloads.lp.engine import Action, RuleEngine, resolve_details
from workloads.lp.models import (
    ENTRANCE_ZONE,
    EXIT_ZONE,
    Alert,
    BaResult,
    Escalation,
    EvidenceRef,
    Session,
    Visit,
    derived_id,
)
from workloads.lp.rules import DEFAULT_RULES_FILE, RuleSet, load_rules  # noqa: F401 (doctest)

CLIP_BEFORE = timedelta(seconds=10)
CLIP_AFTER = timedelta(seconds=5)


@dataclass
class Effects:
    """What one step changed: sessions to save, sessions expired, new alerts and escalations."""

    sessions: dict[str, Session] = field(default_factory=dict)
    expired: list[Session] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    evaluations: int = 0

    def __bool__(self) -> bool:
        return bool(self.sessions or self.expired or self.alerts or self.escalations)

    def merge(self, other: Effects) -> None:
        self.sessions.update(other.sessions)
        for s in other.expired:
            self.sessions.pop(s.visitor_id, None)
        self.expired += other.expired
        self.alerts += other.alerts
        self.escalations += other.escalations
        self.evaluations += other.evaluations


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@dataclass
class _Trigger:
    """One rule evaluation's inputs."""

    trigger: str
    source: str
    zone_id: str | None
    zone_type: str | None
    camera_id: str
    at: datetime
    dwell_s: float = 0.0
    cause: str = ""
    event: VisitorEvent | None = None
    ba: BaResult | None = None
    visit: Visit | None = None  #: the visit the trigger is about (exit, loiter, BA result), if known

    def evidence(self) -> list[EvidenceRef]:
        """What backs an alert of this trigger (built only when one fires)."""
        out: list[EvidenceRef] = []
        e, v, ba = self.event, self.visit, self.ba
        if e is not None:
            out.append(EvidenceRef(kind="event", id=str(e.event_id), camera_id=e.camera_id, at=e.timestamp))
        if ba is not None:
            out.append(EvidenceRef(kind="ba_result", id=ba.result_id, camera_id=self.camera_id,
                                   at=ba.last_frame_ts or self.at))
        if v is not None and (e is None or v.entry_event_id != str(e.event_id)):
            out.append(EvidenceRef(kind="event", id=v.entry_event_id, camera_id=v.camera_id, at=v.entered_at))
            out.append(EvidenceRef(kind="clip", camera_id=v.camera_id, at=v.entered_at, until=self.at))
        else:
            out.append(EvidenceRef(kind="clip", camera_id=self.camera_id, at=self.at - CLIP_BEFORE,
                                   until=self.at + CLIP_AFTER))
        return out


class StoreRules:
    """One store's sessions and rules. Not thread-safe: one caller (the rule actor's loop) drives it.

    Args:
        store_id: The store.
        zones: Zone id -> zone type (see `workloads.lp.zones.store_zones`).
        ruleset: Loaded rules.
        clock: The store's clock (default: a new one on the wall clock).
    """

    def __init__(self, store_id: str, zones: Mapping[str, str], ruleset: RuleSet,
                 clock: StoreClock | None = None) -> None:
        self.store_id = store_id
        self.zones = dict(zones)
        self.clock = clock or StoreClock()
        self.sessions: dict[str, Session] = {}
        self.set_rules(ruleset)

    # ------------------------------------------------------------------ state

    def set_rules(self, ruleset: RuleSet) -> None:
        """Swap the rules (hot reload); sessions and their marks stay."""
        self.ruleset = ruleset
        self.engine = RuleEngine(ruleset)
        self._flag_defaults = dict.fromkeys(ruleset.flags, False)

    def load(self, sessions: Iterable[Session]) -> None:
        """Restore sessions (after a restart) and the clock's position from them."""
        self.sessions = {s.visitor_id: s for s in sessions}
        for s in self.sessions.values():
            self.clock.observe(s.camera_id, _ts(s.last_seen))

    # ------------------------------------------------------------------ inputs

    def apply_events(self, events: Iterable[VisitorEvent]) -> Effects:
        fx = Effects()
        before = self.engine.evaluations
        for e in events:
            if e.store_id != self.store_id:
                raise ValueError(f"rules of store {self.store_id} got an event of store {e.store_id}: {e.event_id}")
            self._event(e, fx)
        fx.evaluations = self.engine.evaluations - before
        return fx

    def apply_ba_result(self, result: BaResult, received_at: datetime) -> Effects:
        """Feed a behavioural-analysis result: set external flags, then evaluate ba_result rules."""
        fx = Effects()
        before = self.engine.evaluations
        result = result.with_id()
        at = result.timestamp or result.last_frame_ts or received_at
        s = self._session(result.visitor_id, None, at, fx, touch=False)
        zone_id = result.zone_id
        if zone_id is None:  # the HIGH_VALUE visit in progress, if any
            zone_id = next((v.zone_id for v in s.open_visits.values() if v.zone_type == "HIGH_VALUE"), None)
        zone_type = self.zones.get(zone_id, "HIGH_VALUE") if zone_id else "HIGH_VALUE"
        doc = result.model_dump(mode="json")
        for name, flag in self.ruleset.external_flags(result.source):
            if doc.get(flag.field) == flag.match_value:
                s.flags[name] = True
        s.last_ba = {k: doc.get(k) for k in ("result_id", "status", "confidence", "zone_id", "frames_analyzed")}
        visit = s.open_visits.get(zone_id) if zone_id else None
        camera = visit.camera_id if visit else s.camera_id
        self._evaluate(s, _Trigger("ba_result", "BA_RESULT", zone_id, zone_type, camera, at,
                                   cause=f"ba|{result.result_id}", ba=result, visit=visit), fx)
        fx.sessions[s.visitor_id] = s
        fx.evaluations = self.engine.evaluations - before
        return fx

    def tick(self) -> Effects:
        """Loiter checks of open visits and session expiry, on each camera's clock."""
        fx = Effects()
        before = self.engine.evaluations
        for s in list(self.sessions.values()):
            for visit in list(s.open_visits.values()):
                rules = self.engine.rules_for("zone_loiter", visit.zone_type)
                if not rules or all(f"{r.id}|{visit.entry_event_id}" in s.loitered for r in rules):
                    continue
                now = self.clock.now_for(visit.camera_id)
                dwell = now - _ts(visit.entered_at)
                if dwell > 0 and self._loiter(s, visit, dwell, _dt(now), "TICK", None, fx):
                    fx.sessions[s.visitor_id] = s
            now = self.clock.now_for(s.camera_id)
            if now - _ts(s.last_seen) > self._limit(s):
                self._expire(s, _dt(now), fx)
        fx.evaluations = self.engine.evaluations - before
        return fx

    # ------------------------------------------------------------------ internals

    def _limit(self, s: Session) -> float:
        st = self.ruleset.settings
        return st.open_visit_timeout_seconds if s.open_visits else st.session_timeout_seconds

    def _session(self, visitor_id: str, camera_id: str | None, at: datetime, fx: Effects,
                 touch: bool = True) -> Session:
        """The visitor's session (a new one if none, or if it timed out before `at`). `touch=False` is for
        late inputs about the past (behavioural-analysis results): they neither expire nor extend it."""
        s = self.sessions.get(visitor_id)
        if touch and s is not None and (at - s.last_seen).total_seconds() > self._limit(s):
            # Expired before this event: decided by event time, so it does not depend on when ticks ran.
            self._expire(s, at, fx)
            s = None
        if s is None:
            s = Session(store_id=self.store_id, visitor_id=visitor_id, first_seen=at, last_seen=at,
                        camera_id=camera_id or "")
            self.sessions[visitor_id] = s
        if not touch:
            return s
        if at > s.last_seen:
            s.last_seen = at
        if camera_id:
            s.camera_id = camera_id
        s.events += 1
        return s

    def _expire(self, s: Session, at: datetime, fx: Effects) -> None:
        for zone_id, esc_id in s.escalations.items():
            fx.escalations.append(self._stop(s, zone_id, esc_id, at))
        del self.sessions[s.visitor_id]
        fx.sessions.pop(s.visitor_id, None)
        fx.expired.append(s)

    def _stop(self, s: Session, zone_id: str, esc_id: str, at: datetime) -> Escalation:
        return Escalation(escalation_id=derived_id(esc_id, "stop"), action="stop", service="", handler="",
                          rule_id="", store_id=self.store_id, visitor_id=s.visitor_id, zone_id=zone_id,
                          zone_type=self.zones.get(zone_id), at=at, params={"start_id": esc_id})

    def _visited(self, s: Session, zone_id: str, zone_type: str | None) -> None:
        s.zone_visit_counts[zone_id] = s.zone_visit_counts.get(zone_id, 0) + 1
        for name in self.ruleset.flags_for_zone_type(zone_type):
            s.flags[name] = True

    def _event(self, e: VisitorEvent, fx: Effects) -> None:
        self.clock.observe(e.camera_id, _ts(e.timestamp))
        if e.is_staff and self.ruleset.settings.ignore_staff:
            return
        s = self._session(e.visitor_id, e.camera_id, e.timestamp, fx)
        t = e.event_type
        if t is EventType.ZONE_ENTER:
            zid = e.zone_id or ""
            ztype = self.zones.get(zid)
            self._visited(s, zid, ztype)
            s.open_visits[zid] = Visit(zone_id=zid, zone_type=ztype, entered_at=e.timestamp,
                                       entry_event_id=str(e.event_id), camera_id=e.camera_id)
            self._evaluate(s, _Trigger("zone_entry", t.value, zid, ztype, e.camera_id, e.timestamp,
                                       cause=str(e.event_id), event=e), fx)
        elif t in (EventType.ENTRY, EventType.REENTRY, EventType.EXIT):
            zid, ztype = (EXIT_ZONE, "EXIT") if t is EventType.EXIT else (ENTRANCE_ZONE, "ENTRY")
            self._visited(s, zid, ztype)
            self._evaluate(s, _Trigger("zone_entry", t.value, zid, ztype, e.camera_id, e.timestamp,
                                       cause=str(e.event_id), event=e), fx)
        elif t is EventType.ZONE_EXIT:
            zid = e.zone_id or ""
            ztype = self.zones.get(zid)
            visit = s.open_visits.pop(zid, None)
            dwell = e.dwell_ms / 1000 if e.dwell_ms else (
                (e.timestamp - visit.entered_at).total_seconds() if visit else 0.0)
            esc = s.escalations.pop(zid, None)
            if esc:
                fx.escalations.append(self._stop(s, zid, esc, e.timestamp))
            if visit is not None and self.engine.rules_for("zone_loiter", ztype):
                # Catch-up: a visit whose dwell passed a loiter threshold between two ticks (backfill,
                # a late batch) still gets its loiter check, with the same alert id a tick would give.
                self._loiter(s, visit, dwell, e.timestamp, t.value, e, fx)
            self._evaluate(s, _Trigger("zone_exit", t.value, zid, ztype, e.camera_id, e.timestamp, dwell,
                                       cause=str(e.event_id), event=e, visit=visit), fx)
            if visit is not None:
                s.loitered = {m for m in s.loitered if not m.endswith(f"|{visit.entry_event_id}")}
        elif t is EventType.ZONE_DWELL:
            zid = e.zone_id or ""
            visit = s.open_visits.get(zid)
            if visit is None:  # its ZONE_ENTER was never seen: the visit started dwell ago
                start = e.timestamp - timedelta(milliseconds=e.dwell_ms)
                visit = Visit(zone_id=zid, zone_type=self.zones.get(zid), entered_at=start,
                              entry_event_id=f"{zid}@{int(_ts(start) * 1000)}", camera_id=e.camera_id)
            self._loiter(s, visit, e.dwell_ms / 1000, e.timestamp, t.value, e, fx)
        fx.sessions[s.visitor_id] = s

    def _loiter(self, s: Session, visit: Visit, dwell_s: float, at: datetime, source: str,
                event: VisitorEvent | None, fx: Effects) -> bool:
        """zone_loiter for one visit: each rule acts at most once per visit. True if a rule acted."""
        trig = _Trigger("zone_loiter", source, visit.zone_id, visit.zone_type, visit.camera_id, at, dwell_s,
                        cause=f"loiter|{visit.entry_event_id}", event=event, visit=visit)
        done = {m for m in s.loitered if m.endswith(f"|{visit.entry_event_id}")}
        acted = self._evaluate(s, trig, fx, skip_rules={m.split("|", 1)[0] for m in done})
        for rule_id in acted:
            s.loitered.add(f"{rule_id}|{visit.entry_event_id}")
        return bool(acted)

    def context(self, s: Session, trig: _Trigger) -> dict[str, Any]:
        """The flat dict the rules read (names: `workloads.lp.rules.CONTEXT_FIELDS`, plus session flags)."""
        e, ba = trig.event, trig.ba
        zid = trig.zone_id
        ctx: dict[str, Any] = {
            "event_type": trig.trigger,
            "source_event_type": trig.source,
            "store_id": self.store_id,
            "scene_id": self.store_id,
            "camera_id": trig.camera_id,
            "visitor_id": s.visitor_id,
            "object_id": s.visitor_id,
            "person_id": s.visitor_id,
            "zone_id": zid,
            "region_id": zid,
            "region_name": zid,
            "zone_type": trig.zone_type,
            "timestamp": trig.at.isoformat().replace("+00:00", "Z"),
            "dwell_seconds": round(trig.dwell_s, 1),
            "visit_count": s.zone_visit_counts.get(zid, 0) if zid else 0,
            "zone_visit_counts": s.zone_visit_counts,
            "total_zone_entries": sum(s.zone_visit_counts.values()),
            "zones_inside": sorted(s.open_visits),
            "session_seconds": round((trig.at - s.first_seen).total_seconds(), 1),
            "is_staff": bool(e.is_staff) if e else False,
            "confidence": e.confidence if e else (ba.confidence if ba else None),
            "sku_zone": e.metadata.sku_zone if e else None,
            "ba_status": ba.status if ba else None,
            "ba_confidence": ba.confidence if ba else None,
            "ba_message": ba.vlm_response if ba else "",
            "ba_frames_analyzed": ba.frames_analyzed if ba else 0,
        }
        ctx.update(self._flag_defaults)
        ctx.update(s.flags)
        return ctx

    def _evaluate(self, s: Session, trig: _Trigger, fx: Effects, skip_rules: set[str] | None = None) -> set[str]:
        """Evaluate, then act; returns the ids of rules whose actions ran."""
        ctx = self.context(s, trig)
        acted: set[str] = set()
        for action in self.engine.evaluate(trig.trigger, trig.zone_type, ctx):
            if skip_rules and action.rule_id in skip_rules:
                continue
            acted.add(action.rule_id)
            if action.type == "alert":
                alert = self._alert(s, trig, action, ctx)
                if alert is not None:
                    fx.alerts.append(alert)
            else:
                self._escalate(s, trig, action, ctx, fx)
        return acted

    def _alert(self, s: Session, trig: _Trigger, action: Action, ctx: dict[str, Any]) -> Alert | None:
        p = action.params
        alert_type = p["alert_type"]
        scope = p.get("fire_once_per", "none")
        mark = (f"{alert_type}|zone|{trig.zone_id or '*'}" if scope == "zone"
                else f"{alert_type}|session" if scope == "session" else None)
        if mark is not None:
            if mark in s.fired:
                return None
            s.fired.add(mark)
        severity = p.get("severity", "WARNING")
        flag = p.get("severity_if")
        if flag and p.get("severity_when_true") and ctx.get(flag):
            severity = p["severity_when_true"]
        return Alert(
            alert_id=derived_id(self.store_id, s.visitor_id, action.rule_id, action.index, trig.cause),
            alert_type=alert_type, severity=severity, rule_id=action.rule_id, rule_name=action.rule_name,
            store_id=self.store_id, visitor_id=s.visitor_id, zone_id=trig.zone_id, zone_type=trig.zone_type,
            camera_id=trig.camera_id, timestamp=trig.at, created_at=datetime.now(UTC),
            details=resolve_details(p, ctx), evidence=trig.evidence(),
        )

    def _escalate(self, s: Session, trig: _Trigger, action: Action, ctx: dict[str, Any], fx: Effects) -> None:
        service = action.params["service"]
        svc = self.ruleset.spec.services[service]
        visit = s.open_visits.get(trig.zone_id or "")
        esc = Escalation(
            escalation_id=derived_id(self.store_id, s.visitor_id, action.rule_id, action.index, trig.cause, "esc"),
            action="start", service=service, handler=svc.handler, rule_id=action.rule_id, store_id=self.store_id,
            visitor_id=s.visitor_id, zone_id=trig.zone_id, zone_type=trig.zone_type, camera_id=trig.camera_id,
            visit_id=visit.entry_event_id if visit else None, at=trig.at,
            params={k: v for k, v in action.params.items() if k != "service"},
        )
        if trig.zone_id and visit is not None:
            s.escalations[trig.zone_id] = esc.escalation_id
        fx.escalations.append(esc)
