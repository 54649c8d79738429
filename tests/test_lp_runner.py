"""The rule loop against a real Redis (no Ray): exactly these alerts, exactly once, across crashes,
hot reloads, expiry, behavioural-analysis inputs, dedup windows and operator actions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.test_lp_processor import DEFAULT, T0, ZONES, ev, visit
from workloads.lp.alert_config import AlertConfig, load_alert_config
from workloads.lp.models import BaResult
from workloads.lp.processor import StoreRules
from workloads.lp.rules import load_rules
from workloads.lp.runner import RuleRunner, RulesSource
from workloads.lp.settings import DEFAULT_ALERT_CONFIG_FILE
from workloads.lp.store import AlertFilter, LpStore
from workloads.state import keys
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration

NO_DEDUP = AlertConfig()
DEFAULT_ALERTS = load_alert_config(DEFAULT_ALERT_CONFIG_FILE.read_text())


def make_runner(client: redis.Redis, text: str = DEFAULT, path: Path | None = None,
                alert_config: AlertConfig = NO_DEDUP, batch: int = 500, cls: type[RuleRunner] = RuleRunner,
                **kw) -> RuleRunner:
    source = RulesSource.from_file(path) if path else RulesSource(text)
    return cls(client, "S1", ZONES, source, alert_config, batch=batch, **kw)


def drain(r: RuleRunner) -> None:
    """Step until every event and result is applied, then tick once more."""
    while r.step(block_ms=1) or r.lag():
        pass
    r.tick()


def stored(client: redis.Redis) -> list[tuple[str, str, str, str | None]]:
    alerts, _ = LpStore(client).list_alerts(["S1"], AlertFilter(), limit=1000)
    return sorted((a.alert_type, a.severity, a.visitor_id, a.zone_id) for a in alerts)


SCRIPT = [
    ev(0, "ZONE_ENTER", "R", visitor="intruder"),
    *visit(0, "HV", 2, visitor="repeat"), *visit(10, "HV", 2, visitor="repeat"), *visit(20, "HV", 2, visitor="repeat"),
    *visit(0, "HV", 5, visitor="bypass"), ev(30, "EXIT", visitor="bypass"),
    *visit(0, "HV", 5, visitor="payer"), *visit(10, "CO", 20, visitor="payer"), ev(40, "EXIT", visitor="payer"),
    *visit(0, "HV", 45, visitor="loiterer"),
    *visit(0, "P1", 200, visitor="browser"),
]
EXPECTED = [
    ("CHECKOUT_BYPASS", "WARNING", "bypass", "@exit"),
    ("LOITERING", "WARNING", "loiterer", "HV"),
    ("REPEATED_VISIT", "WARNING", "repeat", "HV"),
    ("ZONE_VIOLATION", "CRITICAL", "intruder", "R"),
]


def test_scripted_visits_give_exactly_these_alerts(redis_client) -> None:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.lp_alerts_channel("S1"))
    EventLog(redis_client).append(SCRIPT)
    r = make_runner(redis_client)
    drain(r)
    assert stored(redis_client) == EXPECTED
    assert redis_client.xlen(keys.lp_alerts_stream("S1")) == 4
    published = []
    deadline = time.monotonic() + 5
    while len(published) < 4 and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.2)
        if m and m["type"] == "message":
            published.append(json.loads(m["data"])["alert_type"])
    assert sorted(published) == sorted(t for t, *_ in EXPECTED)
    # One escalation per high-value entry (start) and its exit (stop).
    escalations = LpStore(redis_client).escalations("S1", count=1000)
    hv_entries = sum(1 for e in SCRIPT if e.event_type == "ZONE_ENTER" and e.zone_id == "HV")
    assert [e.action for e in escalations].count("start") == hv_entries
    assert [e.action for e in escalations].count("stop") == hv_entries
    st = r.status()
    assert st["event_lag"] == 0 and st["alerts_created"] == 4 and st["rules_error"] is None
    assert LpStore(redis_client).get_status("S1")["alerts_created"] == 4


class Crash(Exception):
    """The process died: nothing after this point of the step happened."""


class CrashingRunner(RuleRunner):
    crash_at = 0

    def _commit(self, fx, cursors) -> None:
        self.crash_at -= 1
        if self.crash_at == 0:
            raise Crash  # derived in memory, never written: like a kill before EXEC
        super()._commit(fx, cursors)


@pytest.mark.parametrize("crash_at", [1, 2, 4, 7])
def test_crash_mid_sequence_loses_and_duplicates_nothing(redis_client, crash_at) -> None:
    events = [*SCRIPT, *[e for i in range(5) for e in visit(100 + i * 10, "HV", 2, visitor="late")],
              ev(200, "EXIT", visitor="late")]
    reference = StoreRules("S1", ZONES, load_rules(DEFAULT))
    expected = reference.apply_events(events).alerts + reference.tick().alerts
    log = EventLog(redis_client)
    log.append(events[:30])
    first = make_runner(redis_client, batch=5, cls=CrashingRunner)
    first.crash_at = crash_at
    with pytest.raises(Crash):
        while True:
            first.step(block_ms=1)
    log.append(events[30:])  # more arrive while the actor is down
    second = make_runner(redis_client, batch=5)  # a restarted actor: sessions and cursor from Redis
    drain(second)
    alerts, _ = LpStore(redis_client).list_alerts(["S1"], AlertFilter(), limit=1000)
    assert sorted(a.alert_id for a in alerts) == sorted(a.alert_id for a in expected)
    assert redis_client.xlen(keys.lp_alerts_stream("S1")) == len(expected)  # no duplicate deliveries either
    assert int(redis_client.hget(keys.lp_alert_counters("S1"), "total")) == len(expected)


def test_restart_rebuilds_sessions_from_redis(redis_client) -> None:
    log = EventLog(redis_client)
    log.append([*visit(0, "HV", 2), *visit(10, "HV", 2)])
    drain(make_runner(redis_client))
    assert stored(redis_client) == []
    log.append(visit(20, "HV", 2))  # the third entry, seen by a new runner
    r = make_runner(redis_client)
    assert r.rules.sessions["v1"].zone_visit_counts == {"HV": 2}
    drain(r)
    assert stored(redis_client) == [("REPEATED_VISIT", "WARNING", "v1", "HV")]


def test_replaying_a_step_changes_nothing(redis_client) -> None:
    """A cursor moved back (operator replay) re-derives the same ids: no alert or stream entry twice."""
    EventLog(redis_client).append(SCRIPT)
    drain(make_runner(redis_client))
    redis_client.delete(keys.consumer_cursor("S1", "lp-rules"), keys.lp_sessions("S1"),
                        keys.lp_sessions_by_seen("S1"))
    drain(make_runner(redis_client))
    assert stored(redis_client) == EXPECTED
    assert redis_client.xlen(keys.lp_alerts_stream("S1")) == 4


def test_session_expiry_removes_it_from_redis(redis_client) -> None:
    text = DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 60")
    log = EventLog(redis_client)
    log.append([*visit(0, "HV", 5)])
    r = make_runner(redis_client, text)
    drain(r)
    assert LpStore(redis_client).session("S1", "v1") is not None
    log.append([ev(70, "ZONE_ENTER", "P1", visitor="other")])  # the camera's clock passes v1's timeout
    drain(r)
    assert LpStore(redis_client).session("S1", "v1") is None
    assert redis_client.zscore(keys.lp_sessions_by_seen("S1"), "v1") is None
    assert [s.visitor_id for s in LpStore(redis_client).sessions("S1")] == ["other"]


def test_live_session_expires_on_the_wall_clock(redis_client) -> None:
    text = DEFAULT.replace("session_timeout_seconds: 900", "session_timeout_seconds: 1")
    now = datetime.now(UTC)
    EventLog(redis_client).append([ev(0, "ZONE_ENTER", "P1").model_copy(update={"timestamp": now}),
                                   ev(0.5, "ZONE_EXIT", "P1").model_copy(update={"timestamp": now})])
    r = make_runner(redis_client, text)
    drain(r)
    assert "v1" in r.rules.sessions
    deadline = time.monotonic() + 10
    while "v1" in r.rules.sessions and time.monotonic() < deadline:
        time.sleep(0.3)
        r.tick()
    assert LpStore(redis_client).session("S1", "v1") is None


def test_live_loitering_fires_while_inside(redis_client) -> None:
    now = datetime.now(UTC)
    EventLog(redis_client).append([ev(0, "ZONE_ENTER", "HV").model_copy(update={"timestamp": now})])
    r = make_runner(redis_client, variables_override='{"loiter_threshold_seconds": 1}')
    drain(r)
    deadline = time.monotonic() + 10
    while not stored(redis_client) and time.monotonic() < deadline:
        time.sleep(0.3)
        r.tick()
    assert stored(redis_client) == [("LOITERING", "WARNING", "v1", "HV")]
    assert "HV" in r.rules.sessions["v1"].open_visits  # still inside


def test_ba_result_through_its_stream(redis_client) -> None:
    store = LpStore(redis_client)
    EventLog(redis_client).append([ev(0, "ZONE_ENTER", "HV")])
    r = make_runner(redis_client)
    drain(r)
    result = BaResult(person_id="v1", region_id="HV", status="suspicious", confidence=0.8, vlm_response="pocket")
    rid = store.add_ba_result("S1", result, received_at=T0 + timedelta(seconds=3))
    assert store.add_ba_result("S1", result) == rid  # a retried post: same id
    drain(r)
    EventLog(redis_client).append([ev(5, "ZONE_EXIT", "HV", dwell=5), ev(10, "EXIT")])
    drain(r)
    assert stored(redis_client) == [("CHECKOUT_BYPASS", "CRITICAL", "v1", "@exit"),
                                    ("CONCEALMENT", "WARNING", "v1", "HV")]  # once, though posted twice


def test_time_window_dedup_from_the_alert_config(redis_client) -> None:
    text = DEFAULT.replace("fire_once_per: zone\n", "fire_once_per: none\n")  # every restricted entry alerts
    EventLog(redis_client).append([*visit(0, "R", 1), *visit(30, "R", 1), *visit(90, "R", 1),
                                   ev(95, "ZONE_ENTER", "R", visitor="other")])
    drain(make_runner(redis_client, text, alert_config=DEFAULT_ALERTS))  # ZONE_VIOLATION window: 60 s
    got = [(a.visitor_id, a.timestamp) for a in LpStore(redis_client).list_alerts(["S1"], AlertFilter())[0]]
    assert sorted(got) == [("other", T0 + timedelta(seconds=95)), ("v1", T0), ("v1", T0 + timedelta(seconds=90))]
    assert LpStore(redis_client).suppressed("S1") == {"ZONE_VIOLATION": 1}


def test_hot_reload_keeps_old_rules_when_the_file_is_invalid(redis_client, tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT)
    log = EventLog(redis_client)
    r = make_runner(redis_client, path=path)
    v1 = r.rules.ruleset.version
    path.write_text(DEFAULT.replace("op: gte", "op: greater_or_equal"))
    _touch(path)
    r.tick()
    assert r.rules.ruleset.version == v1
    assert "rules[2] (id 'repeated_visits').conditions[0]: unknown op 'greater_or_equal'" in r.rules_error
    assert "unknown op" in LpStore(redis_client).get_status("S1")["rules_error"]
    log.append([*visit(0, "HV", 1), *visit(5, "HV", 1), *visit(10, "HV", 1)])
    drain(r)
    assert stored(redis_client) == [("REPEATED_VISIT", "WARNING", "v1", "HV")]  # the old rules still run
    path.write_text(DEFAULT.replace("repeat_visit_threshold: 3", "repeat_visit_threshold: 2")
                    .replace("fire_once_per: session\n          threshold: ${repeat",
                             "fire_once_per: none\n          threshold: ${repeat"))
    _touch(path)
    r.tick()
    assert r.rules_error is None and r.rules.ruleset.version != v1
    assert LpStore(redis_client).get_rules("S1")["source"] == f"file:{path.resolve()}"
    log.append(visit(20, "HV", 1))
    drain(r)
    assert stored(redis_client).count(("REPEATED_VISIT", "WARNING", "v1", "HV")) == 2


def test_rules_put_in_redis_are_picked_up_and_survive_restart(redis_client) -> None:
    store = LpStore(redis_client)
    r = make_runner(redis_client)
    new = DEFAULT.replace("repeat_visit_threshold: 3", "repeat_visit_threshold: 2")
    store.put_rules(["S1"], new, "v-api", "api", "test")
    r.tick()
    assert r.rules.ruleset.variables["repeat_visit_threshold"] == 2 and r.rules_source == "api"
    store.put_rules(["S1"], "rules: [oops", "v-bad", "api", "test")
    r.tick()
    assert r.rules.ruleset.variables["repeat_visit_threshold"] == 2 and "not valid YAML" in r.rules_error
    store.put_rules(["S1"], new, "v-api2", "api", "test")
    restarted = make_runner(redis_client)  # Redis copy is newer than the (unchanged) file: it wins
    assert restarted.rules.ruleset.variables["repeat_visit_threshold"] == 2


def _touch(path: Path) -> None:
    """Give the file a new mtime even on file systems with coarse timestamps."""
    st = path.stat()
    import os

    os.utime(path, (st.st_atime, st.st_mtime + 1))


# ---------------------------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("steps", "final", "changed"),
    [
        ([("ack", "ann")], "acknowledged", [True]),
        ([("ack", "ann"), ("ack", "bob")], "acknowledged", [True, False]),  # a retry: first who/when kept
        ([("resolve", "ann")], "resolved", [True]),
        ([("ack", "ann"), ("resolve", "bob")], "resolved", [True, True]),
        ([("resolve", "ann"), ("ack", "bob")], "resolved", [True, False]),
    ],
)
def test_acknowledge_and_resolve(redis_client, steps, final, changed) -> None:
    EventLog(redis_client).append([ev(0, "ZONE_ENTER", "R")])
    drain(make_runner(redis_client))
    store = LpStore(redis_client)
    (alert,), _ = store.list_alerts(["S1"], AlertFilter())
    got = []
    for i, (action, who) in enumerate(steps):
        after, did = store.transition("S1", alert.alert_id, action, who, note=f"step {i}",
                                      when=T0 + timedelta(hours=i + 1))
        got.append(did)
    assert after.status == final and got == changed
    if final == "acknowledged":
        assert after.acknowledged_by == "ann" and after.acknowledged_at == T0 + timedelta(hours=1)
    counts = store.count_alerts(["S1"], AlertFilter())
    assert counts["by_status"] == {final: 1}
    assert store.transition("S1", "no-such-id", "ack", "ann") == (None, False)


def test_list_filters_and_paging(redis_client) -> None:
    EventLog(redis_client).append(SCRIPT)
    drain(make_runner(redis_client))
    store = LpStore(redis_client)
    page1, cur = store.list_alerts(["S1"], AlertFilter(), limit=3)
    page2, cur2 = store.list_alerts(["S1"], AlertFilter(), limit=3, cursor=cur)
    assert len(page1) == 3 and len(page2) == 1 and cur2 is None
    assert len({a.alert_id for a in page1 + page2}) == 4
    assert [a.timestamp for a in page1 + page2] == sorted((a.timestamp for a in page1 + page2), reverse=True)
    crit, _ = store.list_alerts(["S1"], AlertFilter(severities={"CRITICAL"}))
    assert [a.alert_type for a in crit] == ["ZONE_VIOLATION"]
    window, _ = store.list_alerts(["S1"], AlertFilter(start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=46)))
    assert sorted(a.alert_type for a in window) == ["CHECKOUT_BYPASS", "LOITERING", "REPEATED_VISIT"]
    assert store.count_alerts(["S1"], AlertFilter(types={"LOITERING", "ZONE_VIOLATION"}))["total"] == 2
    assert store.count_alerts(["S1"], AlertFilter())["by_type"] == {t: 1 for t, *_ in EXPECTED}
    with pytest.raises(ValueError, match="invalid cursor"):
        store.list_alerts(["S1"], AlertFilter(), cursor="garbage")
