"""Loss-prevention store logic without Redis or Ray: scripted visits in, exactly these alerts out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workloads.events import EventType, VisitorEvent, deterministic_event_id
from workloads.lp.clock import StoreClock
from workloads.lp.models import BaResult
from workloads.lp.processor import Effects, StoreRules
from workloads.lp.rules import CONTEXT_FIELDS, DEFAULT_RULES_FILE, load_rules

T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
ZONES = {"HV": "HIGH_VALUE", "HV2": "HIGH_VALUE", "P1": "PRODUCT", "P2": "PRODUCT", "CO": "CHECKOUT",
         "EX": "EXIT", "R": "RESTRICTED", "Q": "BILLING_QUEUE"}
DEFAULT = DEFAULT_RULES_FILE.read_text()


def ev(t: float, kind: str, zone: str | None = None, visitor: str = "v1", camera: str = "C1", dwell: float = 0,
       staff: bool = False) -> VisitorEvent:
    etype = EventType(kind)
    return VisitorEvent(
        event_id=deterministic_event_id(camera, t, visitor, kind, zone), store_id="S1", camera_id=camera,
        visitor_id=visitor, event_type=etype, zone_id=zone, timestamp=T0 + timedelta(seconds=t),
        dwell_ms=int(dwell * 1000), is_staff=staff,
    )


def visit(t: float, zone: str, seconds: float, **kw) -> list[VisitorEvent]:
    return [ev(t, "ZONE_ENTER", zone, **kw), ev(t + seconds, "ZONE_EXIT", zone, dwell=seconds, **kw)]


class FakeWall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(text: str = DEFAULT, override=None, wall: FakeWall | None = None) -> StoreRules:
    return StoreRules("S1", ZONES, load_rules(text, override), StoreClock(wall=wall or FakeWall(0.0)))


def fired(fx: Effects) -> list[tuple[str, str, str | None, str]]:
    return [(a.alert_type, a.severity, a.zone_id, a.visitor_id) for a in fx.alerts]


# ---------------------------------------------------------------------------------------------- every rule


@pytest.mark.parametrize(
    ("name", "events", "expected"),
    [
        ("restricted zone", [ev(0, "ZONE_ENTER", "R")], [("ZONE_VIOLATION", "CRITICAL", "R", "v1")]),
        ("restricted zone, twice: once per zone", [*visit(0, "R", 2), *visit(10, "R", 2)],
         [("ZONE_VIOLATION", "CRITICAL", "R", "v1")]),
        ("product zone: nothing", [*visit(0, "P1", 100)], []),
        ("repeated visits: 3rd entry fires (threshold 3)", [*visit(0, "HV", 2), *visit(10, "HV", 2),
                                                             *visit(20, "HV", 2)],
         [("REPEATED_VISIT", "WARNING", "HV", "v1")]),
        ("repeated visits: 2 entries do not", [*visit(0, "HV", 2), *visit(10, "HV", 2)], []),
        ("repeated visits: counted per zone", [*visit(0, "HV", 2), *visit(10, "HV2", 2), *visit(20, "HV", 2)], []),
        ("loitering from the camera's ZONE_DWELL", [ev(0, "ZONE_ENTER", "HV"), ev(31, "ZONE_DWELL", "HV", dwell=31)],
         [("LOITERING", "WARNING", "HV", "v1")]),
        ("ZONE_DWELL under the threshold", [ev(0, "ZONE_ENTER", "HV"), ev(10, "ZONE_DWELL", "HV", dwell=10)], []),
        ("checkout bypass through an EXIT zone", [*visit(0, "HV", 5), ev(20, "ZONE_ENTER", "EX")],
         [("CHECKOUT_BYPASS", "WARNING", "EX", "v1")]),
        ("checkout bypass through the exit line", [*visit(0, "HV", 5), ev(20, "EXIT")],
         [("CHECKOUT_BYPASS", "WARNING", "@exit", "v1")]),
        ("exit zone then exit line: one alert", [*visit(0, "HV", 5), *visit(20, "EX", 1), ev(22, "EXIT")],
         [("CHECKOUT_BYPASS", "WARNING", "EX", "v1")]),
        ("paid: no bypass", [*visit(0, "HV", 5), *visit(10, "CO", 30), ev(50, "EXIT")], []),
        ("no high-value zone: no bypass", [*visit(0, "P1", 5), ev(50, "EXIT")], []),
        ("staff are ignored", [ev(0, "ZONE_ENTER", "R", staff=True)], []),
        ("visitors are independent", [*visit(0, "HV", 5, visitor="a"), *visit(0, "CO", 5, visitor="b"),
                                       ev(30, "EXIT", visitor="a"), ev(30, "EXIT", visitor="b")],
         [("CHECKOUT_BYPASS", "WARNING", "@exit", "a")]),
    ],
)
def test_default_rules(name, events, expected) -> None:
    assert fired(make().apply_events(events)) == expected


def test_repeated_visits_fire_once_per_session() -> None:
    events = [e for i in range(6) for e in visit(i * 10, "HV", 2)]
    assert fired(make().apply_events(events)) == [("REPEATED_VISIT", "WARNING", "HV", "v1")]


def test_concealment_from_behavioural_analysis_and_critical_bypass() -> None:
    lp = make()
    lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    fx = lp.apply_ba_result(BaResult(person_id="v1", region_id="HV", status="suspicious", confidence=0.91,
                                     vlm_response="hand to pocket", frames_analyzed=8), T0 + timedelta(seconds=5))
    assert fired(fx) == [("CONCEALMENT", "WARNING", "HV", "v1")]
    assert fx.alerts[0].details == {"confidence": 0.91, "message": "hand to pocket", "frames_analyzed": 8}
    assert lp.sessions["v1"].flags["concealment_suspected"] is True
    fx = lp.apply_events([ev(6, "ZONE_EXIT", "HV", dwell=6), ev(20, "EXIT")])
    assert fired(fx) == [("CHECKOUT_BYPASS", "CRITICAL", "@exit", "v1")]  # severity_if concealment_suspected
    assert fx.alerts[0].details["concealment_suspected"] is True


@pytest.mark.parametrize("status", ["no_match", "no_enough_data"])
def test_unsuspicious_results_fire_nothing(status) -> None:
    lp = make()
    lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    assert fired(lp.apply_ba_result(BaResult(person_id="v1", region_id="HV", status=status), T0)) == []
    assert "concealment_suspected" not in lp.sessions["v1"].flags
    assert fired(lp.apply_events([ev(6, "ZONE_EXIT", "HV", dwell=6), ev(20, "EXIT")])) == [
        ("CHECKOUT_BYPASS", "WARNING", "@exit", "v1")]


def test_ba_result_without_zone_uses_the_open_high_value_visit() -> None:
    lp = make()
    lp.apply_events([ev(0, "ZONE_ENTER", "HV2")])
    fx = lp.apply_ba_result(BaResult(person_id="v1", status="suspicious"), T0)
    assert fired(fx) == [("CONCEALMENT", "WARNING", "HV2", "v1")]


def test_ba_result_ids_are_derived_from_content() -> None:
    a = BaResult(person_id="v1", region_id="HV", status="suspicious", confidence=0.5).with_id()
    b = BaResult(person_id="v1", region_id="HV", status="suspicious", confidence=0.5).with_id()
    c = BaResult(person_id="v1", region_id="HV", status="suspicious", confidence=0.6).with_id()
    assert a.result_id == b.result_id != c.result_id


# ---------------------------------------------------------------------------------------------- loitering by tick


def test_loitering_fires_while_still_inside_once_the_threshold_passes() -> None:
    wall = FakeWall((T0 + timedelta(seconds=1)).timestamp())
    lp = make(wall=wall)
    assert fired(lp.apply_events([ev(0, "ZONE_ENTER", "HV")])) == []
    wall.t = (T0 + timedelta(seconds=29)).timestamp()
    assert fired(lp.tick()) == []
    wall.t = (T0 + timedelta(seconds=31)).timestamp()
    fx = lp.tick()
    assert fired(fx) == [("LOITERING", "WARNING", "HV", "v1")]
    assert fx.alerts[0].details == {"dwell_seconds": 31.0, "threshold": 30}
    wall.t += 60
    assert fired(lp.tick()) == []  # once per visit and rule
    # The camera's own ZONE_DWELL for the same visit adds nothing either.
    assert fired(lp.apply_events([ev(40, "ZONE_DWELL", "HV", dwell=40)])) == []


def test_loiter_threshold_from_rules_variables() -> None:
    wall = FakeWall((T0 + timedelta(seconds=1)).timestamp())
    lp = make(override='{"loiter_threshold_seconds": 5}', wall=wall)
    lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    wall.t = (T0 + timedelta(seconds=6)).timestamp()
    assert fired(lp.tick()) == [("LOITERING", "WARNING", "HV", "v1")]


def test_a_visit_that_ended_does_not_loiter() -> None:
    wall = FakeWall((T0 + timedelta(seconds=1)).timestamp())
    lp = make(wall=wall)
    lp.apply_events(visit(0, "HV", 10))
    wall.t = (T0 + timedelta(seconds=100)).timestamp()
    assert fired(lp.tick()) == []


def test_backfill_clock_follows_the_camera_not_the_wall() -> None:
    """Old footage: the wall is far ahead, so the camera's clock is its latest event, not now."""
    lp = make(wall=FakeWall((T0 + timedelta(days=30)).timestamp()))
    lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    assert fired(lp.tick()) == []  # 30 days on the wall, 0 s on the camera
    lp.apply_events([ev(45, "ZONE_ENTER", "P1", visitor="other")])  # the camera moves on
    assert fired(lp.tick()) == [("LOITERING", "WARNING", "HV", "v1")]


def test_camera_feed_time_drives_the_clock() -> None:
    lp = make(wall=FakeWall((T0 + timedelta(days=30)).timestamp()))
    lp.clock.slack_s = 2.0
    lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    lp.clock.feed("C1", (T0 + timedelta(seconds=31)).timestamp())
    assert fired(lp.tick()) == []  # 31 s of feed minus 2 s of slack is under the threshold
    lp.clock.feed("C1", (T0 + timedelta(seconds=33)).timestamp())
    assert fired(lp.tick()) == [("LOITERING", "WARNING", "HV", "v1")]


# ---------------------------------------------------------------------------------------------- fire_once_per

SCOPES = """
session_flags: {}
rules:
  - id: by_zone
    trigger: {event_type: zone_entry, zone_type: PRODUCT}
    actions: [{type: alert, params: {alert_type: Z, fire_once_per: zone}}]
  - id: by_session
    trigger: {event_type: zone_entry, zone_type: PRODUCT}
    actions: [{type: alert, params: {alert_type: S, fire_once_per: session}}]
  - id: every_time
    trigger: {event_type: zone_entry, zone_type: PRODUCT}
    actions: [{type: alert, params: {alert_type: N, fire_once_per: none}}]
  - id: default_scope
    trigger: {event_type: zone_exit, zone_type: PRODUCT}
    conditions: [{field: dwell_seconds, op: gte, value: 5}]
    actions: [{type: alert, params: {alert_type: D, severity: info}}]
"""


def test_fire_once_per_scopes() -> None:
    events = [*visit(0, "P1", 1), *visit(10, "P2", 6), *visit(20, "P1", 7), *visit(30, "P1", 1)]
    got = [(a.alert_type, a.zone_id) for a in make(SCOPES).apply_events(events).alerts]
    assert sorted(got) == sorted([
        ("Z", "P1"), ("Z", "P2"),  # once per zone
        ("S", "P1"),  # once per session
        ("N", "P1"), ("N", "P2"), ("N", "P1"), ("N", "P1"),  # every entry
        ("D", "P2"), ("D", "P1"),  # default scope is none; condition on exit dwell
    ])


def test_severity_is_upper_cased_and_defaulted() -> None:
    fx = make(SCOPES).apply_events(visit(0, "P1", 6))
    assert {a.alert_type: a.severity for a in fx.alerts} == {"Z": "WARNING", "S": "WARNING", "N": "WARNING",
                                                              "D": "INFO"}


GROUPS = """
session_flags:
  visited_high_value: {trigger: zone_visited, zone_type: HIGH_VALUE}
rules:
  - id: grouped
    trigger: {event_type: zone_entry, zone_type: EXIT}
    conditions:
      - any:
          - {field: visited_high_value, op: eq, value: true}
          - {field: "zone_visit_counts['P1']", op: gte, value: 2}
      - not: {field: camera_id, op: in, value: [STAFF_DOOR]}
    actions: [{type: alert, params: {alert_type: G}}]
"""


@pytest.mark.parametrize(
    ("events", "count"),
    [
        ([*visit(0, "HV", 1), ev(10, "ZONE_ENTER", "EX")], 1),
        ([*visit(0, "P1", 1), *visit(5, "P1", 1), ev(10, "ZONE_ENTER", "EX")], 1),
        ([*visit(0, "P1", 1), ev(10, "ZONE_ENTER", "EX")], 0),
        ([*visit(0, "HV", 1), ev(10, "ZONE_ENTER", "EX", camera="STAFF_DOOR")], 0),
    ],
)
def test_groups_and_in(events, count) -> None:
    assert len(make(GROUPS).apply_events(events).alerts) == count


# ---------------------------------------------------------------------------------------------- sessions


def test_session_expiry_on_the_camera_clock() -> None:
    text = DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 60")
    lp = make(text)
    lp.apply_events([*visit(0, "HV", 5), *visit(10, "HV", 5)])
    lp.apply_events([ev(50, "ZONE_ENTER", "P1", visitor="other")])
    assert lp.tick().expired == []
    lp.apply_events([ev(80, "ZONE_EXIT", "P1", visitor="other", dwell=30)])  # the camera reaches 80 s
    fx = lp.tick()
    assert [s.visitor_id for s in fx.expired] == ["v1"] and "v1" not in lp.sessions
    # A new session starts from nothing: the earlier high-value visits are forgotten.
    assert fired(lp.apply_events([*visit(90, "HV", 5), ev(100, "EXIT")])) == [
        ("CHECKOUT_BYPASS", "WARNING", "@exit", "v1")]
    assert lp.sessions["v1"].zone_visit_counts == {"HV": 1, "@exit": 1}


def test_open_visit_keeps_the_session_until_its_own_timeout() -> None:
    text = DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 60").replace(
        "open_visit_timeout_seconds: 3600", "open_visit_timeout_seconds: 500")
    lp = make(text)
    lp.apply_events([ev(0, "ZONE_ENTER", "P1")])
    lp.apply_events([ev(400, "ZONE_ENTER", "P2", visitor="other")])
    assert lp.tick().expired == []  # 400 s idle, but inside P1: under the open-visit timeout
    assert "v1" in lp.sessions
    lp.apply_events([ev(501, "ZONE_ENTER", "P2", visitor="third")])
    assert "v1" in [s.visitor_id for s in lp.tick().expired]


def test_escalation_starts_on_high_value_entry_and_stops_on_exit() -> None:
    lp = make()
    fx = lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    assert [(e.action, e.service, e.handler, e.zone_id) for e in fx.escalations] == [
        ("start", "behavioral_analysis", "ba_orchestrator", "HV")]
    start = fx.escalations[0]
    assert start.visit_id == str(ev(0, "ZONE_ENTER", "HV").event_id)
    fx = lp.apply_events([ev(10, "ZONE_EXIT", "HV", dwell=10)])
    assert [(e.action, e.params["start_id"]) for e in fx.escalations] == [("stop", start.escalation_id)]


def test_ids_derive_from_the_cause() -> None:
    events = [*visit(0, "HV", 5), *visit(10, "HV", 5), *visit(20, "HV", 5), ev(22, "ZONE_ENTER", "R"), ev(30, "EXIT")]
    a, b = make().apply_events(events), make().apply_events(events)
    assert [x.alert_id for x in a.alerts] == [x.alert_id for x in b.alerts]
    assert len({x.alert_id for x in a.alerts}) == 3
    assert [x.escalation_id for x in a.escalations] == [x.escalation_id for x in b.escalations]


def test_alerts_carry_evidence() -> None:
    fx = make().apply_events([*visit(0, "HV", 5), ev(20, "EXIT")])
    kinds = [(r.kind, r.id) for r in fx.alerts[0].evidence]
    assert kinds[0] == ("event", str(ev(20, "EXIT").event_id)) and kinds[1][0] == "clip"


def test_context_has_exactly_the_documented_fields() -> None:
    lp = make()
    lp.apply_events([ev(0, "ZONE_ENTER", "HV")])
    from workloads.lp.processor import _Trigger

    ctx = lp.context(lp.sessions["v1"], _Trigger("zone_entry", "ZONE_ENTER", "HV", "HIGH_VALUE", "C1", T0))
    assert set(ctx) == set(CONTEXT_FIELDS) | set(lp.ruleset.flags)


def test_hot_swap_keeps_sessions() -> None:
    lp = make()
    lp.apply_events([*visit(0, "HV", 5), *visit(10, "HV", 5)])
    lp.set_rules(load_rules(DEFAULT, {"repeat_visit_threshold": 2}))
    # Threshold now 2: the 3rd entry (count 3 >= 2) fires; the session kept its counts.
    assert fired(lp.apply_events(visit(20, "HV", 5))) == [("REPEATED_VISIT", "WARNING", "HV", "v1")]


def test_rejects_events_of_another_store() -> None:
    bad = ev(0, "ZONE_ENTER", "HV").model_copy(update={"store_id": "S2"})
    with pytest.raises(ValueError, match="store S2"):
        make().apply_events([bad])


# ---------------------------------------------------------------------------------------------- independent of ticks


def test_loiter_passed_between_ticks_is_caught_at_exit_with_the_same_id() -> None:
    caught = make().apply_events(visit(0, "HV", 40))  # no tick ran while the person was inside
    assert fired(caught) == [("LOITERING", "WARNING", "HV", "v1")]
    assert caught.alerts[0].details["dwell_seconds"] == 40
    wall = FakeWall((T0 + timedelta(seconds=1)).timestamp())
    live = make(wall=wall)
    live.apply_events([ev(0, "ZONE_ENTER", "HV")])
    wall.t = (T0 + timedelta(seconds=31)).timestamp()
    ticked = live.tick()
    assert [a.alert_id for a in ticked.alerts] == [a.alert_id for a in caught.alerts]
    assert fired(live.apply_events([ev(40, "ZONE_EXIT", "HV", dwell=40)])) == []


def test_expiry_is_decided_by_event_time_without_a_tick() -> None:
    lp = make(DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 60"))
    lp.apply_events([*visit(0, "HV", 5), *visit(10, "HV", 5)])
    fx = lp.apply_events([*visit(100, "HV", 5)])  # 85 s after the last event: a new session
    assert [s.visitor_id for s in fx.expired] == ["v1"]
    assert lp.sessions["v1"].zone_visit_counts == {"HV": 1}
    assert fired(fx) == []  # the third visit overall, but the first of this session


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 100])
def test_alerts_do_not_depend_on_batching(batch) -> None:
    events = [*visit(0, "HV", 5), *visit(10, "HV", 35), *visit(60, "HV", 5), ev(70, "ZONE_ENTER", "R"),
              *visit(75, "P1", 5), ev(85, "EXIT"), *visit(300, "HV", 5, visitor="w"), ev(400, "EXIT", visitor="w")]
    reference = make(DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 60"))
    expected = sorted(a.alert_id for a in reference.apply_events(events).alerts)
    lp = make(DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 60"))
    got: list[str] = []
    for i in range(0, len(events), batch):
        got += [a.alert_id for a in lp.apply_events(events[i:i + batch]).alerts]
        got += [a.alert_id for a in lp.tick().alerts]
    # v1: loitering (35 s visit), repeated visit (3rd), zone violation, checkout bypass. w's exit comes
    # 95 s after their high-value visit, past the 60 s timeout: a new session, no bypass.
    assert sorted(got) == expected and len(expected) == 4
