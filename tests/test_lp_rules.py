"""Loss-prevention rules: loading the Intel format, variables, operators, groups, validation messages."""

from __future__ import annotations

import json
import typing

import pytest

from workloads.config import ZoneType
from workloads.lp.alert_config import AlertConfigError, dedup_key, load_alert_config
from workloads.lp.conditions import OPERATORS, ConditionError, compile_condition, parse_field
from workloads.lp.engine import RuleEngine, resolve_details
from workloads.lp.rules import CONTEXT_FIELDS, DEFAULT_RULES_FILE, RulesError, load_rules
from workloads.lp.settings import DEFAULT_ALERT_CONFIG_FILE, ZoneTypeName
from workloads.lp.variables import VariableError, substitute

# A rules file in the exact shape Intel's application ships (frame-capture settings we ignore,
# `services` with a handler, a disabled rule, `description` keys): it must load unchanged.
INTEL_STYLE = """
settings:
  session_timeout_seconds: 90
  frame_capture_count: 15
  frame_capture_interval_seconds: 1.0
variables:
  repeat_visit_threshold: 4
  loiter_threshold_seconds: 15
session_flags:
  visited_high_value: {trigger: zone_visited, zone_type: HIGH_VALUE}
  visited_checkout: {trigger: zone_visited, zone_type: CHECKOUT}
  visited_exit: {trigger: zone_visited, zone_type: EXIT}
  concealment_suspected:
    trigger: external
    source: behavioral_analysis
    field: status
    match_value: suspicious
services:
  behavioral_analysis:
    handler: ba_orchestrator
rules:
  - id: restricted_zone
    name: Restricted Zone Violation
    enabled: true
    trigger: {event_type: zone_entry, zone_type: RESTRICTED}
    conditions: []
    actions:
      - type: alert
        params: {alert_type: ZONE_VIOLATION, severity: CRITICAL, details: {zone_type: $ctx.zone_type}}
  - id: repeated_visits
    name: Repeated High-Value Zone Visits
    enabled: true
    trigger: {event_type: zone_entry, zone_type: HIGH_VALUE}
    conditions:
      - field: zone_visit_counts[region_id]
        op: gte
        value: ${repeat_visit_threshold:4}
    actions:
      - type: alert
        params:
          alert_type: REPEATED_VISIT
          severity: WARNING
          fire_once_per: session
          threshold: ${repeat_visit_threshold:4}
          details: {visit_count: $ctx.visit_count, threshold: $param.threshold}
  - id: behavioral_analysis
    name: Trigger Behavioral Analysis on High-Value Entry
    enabled: true
    trigger: {event_type: zone_entry, zone_type: HIGH_VALUE}
    conditions: []
    actions:
      - type: escalate
        params: {service: behavioral_analysis}
  - id: concealment_detected
    name: Concealment Detected by Behavioral Analysis
    enabled: true
    trigger: {event_type: ba_result, zone_type: HIGH_VALUE}
    conditions:
      - {field: ba_status, op: eq, value: suspicious}
    actions:
      - type: alert
        params:
          alert_type: CONCEALMENT
          severity: WARNING
          details: {confidence: $ctx.ba_confidence, message: $ctx.ba_message, frames_analyzed: $ctx.ba_frames_analyzed}
  - id: checkout_visited
    name: Checkout Zone Visited
    description: Person entered a CHECKOUT zone.
    enabled: false
    trigger: {event_type: zone_entry, zone_type: CHECKOUT}
    conditions: []
    actions:
      - type: alert
        params: {alert_type: CHECKOUT_VISITED, severity: INFO}
  - id: checkout_bypass
    name: Checkout Bypass Detection
    enabled: true
    trigger: {event_type: zone_entry, zone_type: EXIT}
    conditions:
      - {field: visited_high_value, op: eq, value: true}
      - {field: visited_checkout, op: eq, value: false}
    actions:
      - type: alert
        params:
          alert_type: CHECKOUT_BYPASS
          severity: WARNING
          severity_if: concealment_suspected
          severity_when_true: CRITICAL
          details:
            visited_high_value: $ctx.visited_high_value
            concealment_suspected: $ctx.concealment_suspected
  - id: loitering
    name: Loitering in High-Value Zone
    description: Person remains in a HIGH_VALUE zone longer than the threshold.
    enabled: true
    trigger: {event_type: zone_loiter, zone_type: HIGH_VALUE}
    conditions:
      - {field: dwell_seconds, op: gt, value: "${loiter_threshold_seconds:40}"}
    actions:
      - type: alert
        params:
          alert_type: LOITERING
          severity: WARNING
          fire_once_per: session
          threshold: ${loiter_threshold_seconds:40}
          details: {dwell_seconds: $ctx.dwell_seconds, threshold: $param.threshold}
"""


def test_intel_format_loads_unchanged() -> None:
    rs = load_rules(INTEL_STYLE)
    assert [r.id for r in rs.rules] == ["restricted_zone", "repeated_visits", "behavioral_analysis",
                                         "concealment_detected", "checkout_visited", "checkout_bypass", "loitering"]
    assert rs.settings.session_timeout_seconds == 90
    assert rs.settings.model_extra == {"frame_capture_count": 15, "frame_capture_interval_seconds": 1.0}
    assert rs.spec.services["behavioral_analysis"].handler == "ba_orchestrator"
    assert rs.flags_for_zone_type("HIGH_VALUE") == ["visited_high_value"]
    assert [n for n, _ in rs.external_flags("behavioral_analysis")] == ["concealment_suspected"]


def test_shipped_files_load() -> None:
    rs = load_rules(DEFAULT_RULES_FILE.read_text())
    assert {r.id for r in rs.rules if r.enabled} == {"restricted_zone", "loitering", "repeated_visits",
                                                    "behavioral_analysis", "concealment_detected", "checkout_bypass"}
    cfg = load_alert_config(DEFAULT_ALERT_CONFIG_FILE.read_text())
    assert {s.alert_type for s in cfg.subscriptions} >= {"ZONE_VIOLATION", "LOITERING", "REPEATED_VISIT",
                                                          "CONCEALMENT", "CHECKOUT_BYPASS"}


def test_zone_type_names_match_the_fleet_config() -> None:
    assert set(typing.get_args(ZoneTypeName)) == {z.value for z in ZoneType}


# ---------------------------------------------------------------------------------------------- variables


@pytest.mark.parametrize(
    ("override", "expected_threshold", "expected_loiter"),
    [
        (None, 4, 15),  # the variables section
        ('{"repeat_visit_threshold": 7}', 7, 15),  # RULES_VARIABLES wins over the section
        ({"loiter_threshold_seconds": 2.5}, 4, 2.5),
    ],
)
def test_variables_and_overrides(override, expected_threshold, expected_loiter) -> None:
    rs = load_rules(INTEL_STYLE, override)
    assert rs.variables["repeat_visit_threshold"] == expected_threshold
    engine = RuleEngine(rs)
    ctx = {"zone_visit_counts": {"HV": expected_threshold}, "region_id": "HV"}
    assert next(a.rule_id for a in engine.evaluate("zone_entry", "HIGH_VALUE", ctx)) == "repeated_visits"
    ctx["zone_visit_counts"]["HV"] = expected_threshold - 1
    assert [a.rule_id for a in engine.evaluate("zone_entry", "HIGH_VALUE", ctx)] == ["behavioral_analysis"]
    params = next(p for t, p in next(r for r in rs.rules if r.id == "loitering").actions)
    assert params["threshold"] == expected_loiter


@pytest.mark.parametrize(
    ("node", "variables", "expected"),
    [
        ("${x:4}", {}, 4),
        ("${x:4}", {"x": 9}, 9),
        ("${x:true}", {}, True),
        ("${x:1.5}", {}, 1.5),
        ("over ${x:4} s", {}, "over 4 s"),
        ("${x}", {"x": "a"}, "a"),
        ({"a": ["${x:1}", "plain"]}, {}, {"a": [1, "plain"]}),
        ("$ctx.zone_type", {}, "$ctx.zone_type"),
    ],
)
def test_substitute(node, variables, expected) -> None:
    assert substitute(node, variables) == expected


def test_variable_without_value_names_where() -> None:
    with pytest.raises(VariableError, match=r"rules\[0\].value: variable 'nope'"):
        substitute({"rules": [{"value": "${nope}"}]}, {})


@pytest.mark.parametrize("override", ["not json", "[1, 2]"])
def test_bad_override_is_an_error(override) -> None:
    with pytest.raises(RulesError, match="RULES_VARIABLES"):
        load_rules(INTEL_STYLE, override)


# ---------------------------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("op", "field_value", "value", "expected"),
    [
        ("eq", "suspicious", "suspicious", True),
        ("eq", None, None, True),
        ("eq", False, False, True),
        ("ne", 3, 4, True),
        ("ne", 3, 3, False),
        ("gt", 16.0, 15, True),
        ("gt", 15, 15, False),
        ("gt", None, 15, False),
        ("gt", "16", 15, True),  # numeric strings compare as numbers
        ("gt", "abc", 15, False),  # incomparable: false, not an error
        ("gte", 4, 4, True),
        ("gte", 3, 4, False),
        ("lt", 3, 4, True),
        ("lt", 4, 4, False),
        ("lte", 4, 4, True),
        ("lte", 5, 4, False),
        ("in", "HIGH_VALUE", ["HIGH_VALUE", "RESTRICTED"], True),
        ("in", "PRODUCT", ["HIGH_VALUE", "RESTRICTED"], False),
        ("not_in", "PRODUCT", ["HIGH_VALUE"], True),
        ("not_in", "HIGH_VALUE", ["HIGH_VALUE"], False),
    ],
)
def test_operator_table(op, field_value, value, expected) -> None:
    assert op in OPERATORS
    assert compile_condition({"field": "f", "op": op, "value": value})({"f": field_value}) is expected


@pytest.mark.parametrize(
    ("cond", "ctx", "expected"),
    [
        ({"any": [{"field": "a", "op": "eq", "value": 1}, {"field": "b", "op": "eq", "value": 1}]}, {"b": 1}, True),
        ({"any": [{"field": "a", "op": "eq", "value": 1}, {"field": "b", "op": "eq", "value": 1}]}, {}, False),
        ({"all": [{"field": "a", "op": "eq", "value": 1}, {"field": "b", "op": "eq", "value": 1}]},
         {"a": 1, "b": 1}, True),
        ({"all": [{"field": "a", "op": "eq", "value": 1}, {"field": "b", "op": "eq", "value": 1}]}, {"a": 1}, False),
        ({"not": {"field": "a", "op": "eq", "value": 1}}, {"a": 2}, True),
        ({"not": {"any": [{"field": "a", "op": "gt", "value": 5}]}}, {"a": 9}, False),
    ],
)
def test_condition_groups(cond, ctx, expected) -> None:
    assert compile_condition(cond)(ctx) is expected


@pytest.mark.parametrize(
    ("path", "ctx", "expected"),
    [
        ("zone_visit_counts[region_id]", {"zone_visit_counts": {"HV": 3}, "region_id": "HV"}, 3),
        ("zone_visit_counts[region_id]", {"zone_visit_counts": {"HV": 3}, "region_id": "X"}, None),
        ("zone_visit_counts['HV']", {"zone_visit_counts": {"HV": 3}}, 3),
        ('zone_visit_counts["HV"]', {"zone_visit_counts": {"HV": 3}}, 3),
        ("zones_inside[0]", {"zones_inside": ["A", "B"]}, "A"),
        ("zones_inside[5]", {"zones_inside": ["A"]}, None),
        ("last.status", {"last": {"status": "ok"}}, "ok"),
        ("missing.deeper[0]", {}, None),
    ],
)
def test_field_paths(path, ctx, expected) -> None:
    assert parse_field(path).get(ctx) == expected


@pytest.mark.parametrize(
    ("cond", "error"),
    [
        ({"field": "a", "op": "gtee", "value": 1}, "unknown op 'gtee'"),
        ({"field": "a", "op": "in", "value": 1}, "needs a list"),
        ({"field": "a", "op": "gt", "value": "many"}, "needs a number"),
        ({"field": "a", "op": "eq"}, "needs a `value`"),
        ({"op": "eq", "value": 1}, "needs `field`"),
        ({"field": "a[", "op": "eq", "value": 1}, "cannot read"),
        ({"any": []}, "non-empty list"),
        ({"any": [], "all": []}, "exactly one key"),
        ({"field": "a", "op": "eq", "value": 1, "extra": 2}, "unknown key"),
        ("a == 1", "is a mapping"),
    ],
)
def test_bad_conditions(cond, error) -> None:
    with pytest.raises(ConditionError, match=error.replace("[", r"\[")):
        compile_condition(cond)


# ---------------------------------------------------------------------------------------------- validation


def _with_rule(rule: str, extra: str = "") -> str:
    return f"""
session_flags:
  visited_high_value: {{trigger: zone_visited, zone_type: HIGH_VALUE}}
services:
  behavioral_analysis: {{handler: ba_orchestrator}}
{extra}
rules:
  - id: ok
    trigger: {{event_type: zone_entry}}
    actions: [{{type: alert, params: {{alert_type: OK}}}}]
{rule}
"""


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entri}, "
                    "actions: [{type: alert, params: {alert_type: X}}]}"),
         "rules[1] (id 'bad').trigger.event_type", "zone_entry"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry, zone_type: VIP}, "
                    "actions: [{type: alert, params: {alert_type: X}}]}"),
         "rules[1] (id 'bad').trigger.zone_type", "HIGH_VALUE"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, conditions: [{field: dwell_seconds, op: gtt, "
                    "value: 3}], actions: [{type: alert, params: {alert_type: X}}]}"),
         "rules[1] (id 'bad').conditions[0]", "unknown op 'gtt'"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, conditions: [{field: dwel_seconds, op: gt, "
                    "value: 3}], actions: [{type: alert, params: {alert_type: X}}]}"),
         "rules[1] (id 'bad').conditions[0].field", "unknown field 'dwel_seconds'"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, conditions: [{field: 'zone_visit_counts[zone]',"
                    " op: gt, value: 3}], actions: [{type: alert, params: {alert_type: X}}]}"),
         "rules[1] (id 'bad').conditions[0].field", "unknown field 'zone'"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, "
                    "actions: [{type: alert, params: {alert_type: X, severity: SEVERE}}]}"),
         "rules[1] (id 'bad').actions[0].params.severity", "CRITICAL"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, "
                    "actions: [{type: alert, params: {alert_type: X, fire_once_per: visit}}]}"),
         "rules[1] (id 'bad').actions[0].params.fire_once_per", "session"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: [{type: alert, params: "
                    "{alert_type: X, severity_if: concealment_suspected, severity_when_true: CRITICAL}}]}"),
         "rules[1] (id 'bad').actions[0].params.severity_if", "not a session flag"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: [{type: alert, params: "
                    "{alert_type: X, severity_if: visited_high_value}}]}"),
         "rules[1] (id 'bad').actions[0]", "go together"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: [{type: escalate, params: "
                    "{service: vlm}}]}"),
         "rules[1] (id 'bad').actions[0].params.service", "unknown service 'vlm'"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: [{type: alert, params: "
                    "{alert_type: X, details: {a: $ctx.nope}}}]}"),
         "rules[1] (id 'bad').actions[0].params.details.a", "unknown field 'nope'"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: [{type: alert, params: "
                    "{alert_type: X, details: {a: $param.threshold}}}]}"),
         "rules[1] (id 'bad').actions[0].params.details.a", "names no param"),
        (_with_rule("  - {id: ok, trigger: {event_type: zone_entry}, "
                    "actions: [{type: alert, params: {alert_type: X}}]}"),
         "rules[1] (id 'ok')", "duplicate rule id"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: []}"),
         "rules[1] (id 'bad').actions", "at least 1"),
        (_with_rule("  - {id: bad, trigger: {event_type: zone_entry}, actions: [{type: page, params: {}}]}"),
         "rules[1] (id 'bad').actions[0].type", "'alert' or 'escalate'"),
        (_with_rule("", "  extra_flag: {trigger: zone_visited}").replace("services:", "session_flags2:"),
         "session_flags2", "Extra inputs"),
        (_with_rule("", "settings: {session_timeout_seconds: -1}"),
         "settings.session_timeout_seconds", "greater than 0"),
        ("rules: [\n  - id: x\n   bad indent", "not valid YAML", ""),
        ("- just\n- a list", "expected a mapping", ""),
    ],
)
def test_validation_names_rule_and_field(text, where, what) -> None:
    with pytest.raises(RulesError) as err:
        load_rules(text, source="test.yaml")
    message = str(err.value)
    assert message.startswith("test.yaml:")
    assert where in message and what in message, message


def test_every_problem_is_reported_at_once() -> None:
    text = _with_rule(
        "  - {id: a, trigger: {event_type: nope}, actions: [{type: alert, params: {alert_type: X}}]}\n"
        "  - {id: b, trigger: {event_type: zone_entry}, conditions: [{field: x, op: zz, value: 1}], "
        "actions: [{type: alert, params: {alert_type: X}}]}"
    )
    with pytest.raises(RulesError) as err:
        load_rules(text)
    assert len(err.value.problems) == 2
    assert "rules[1] (id 'a')" in err.value.problems[0] and "rules[2] (id 'b')" in err.value.problems[1]


# ---------------------------------------------------------------------------------------------- engine


def test_engine_selects_by_trigger_and_zone_type_and_skips_disabled() -> None:
    engine = RuleEngine(load_rules(INTEL_STYLE))
    assert [r.id for r in engine.rules_for("zone_entry", "HIGH_VALUE")] == ["repeated_visits", "behavioral_analysis"]
    assert engine.rules_for("zone_entry", "CHECKOUT") == ()  # checkout_visited is disabled
    assert [r.id for r in engine.rules_for("zone_loiter", "HIGH_VALUE")] == ["loitering"]
    assert engine.rules_for("zone_loiter", "PRODUCT") == ()
    before = engine.evaluations
    engine.evaluate("zone_entry", "HIGH_VALUE", {"zone_visit_counts": {}, "region_id": "HV"})
    assert engine.evaluations - before == 2


def test_rule_without_zone_type_matches_every_zone() -> None:
    rs = load_rules(_with_rule(""))
    engine = RuleEngine(rs)
    for zt in ("PRODUCT", "EXIT", None):
        assert [a.params["alert_type"] for a in engine.evaluate("zone_entry", zt, {})] == ["OK"]


def test_details_substitution() -> None:
    params = {"threshold": 15, "details": {"d": "$ctx.dwell_seconds", "t": "$param.threshold", "lit": 3,
                                            "n": {"z": "$ctx.zone_visit_counts[region_id]"}}}
    ctx = {"dwell_seconds": 16.2, "zone_visit_counts": {"HV": 2}, "region_id": "HV"}
    assert resolve_details(params, ctx) == {"d": 16.2, "t": 15, "lit": 3, "n": {"z": 2}}


def test_context_fields_are_documented() -> None:
    assert all(desc for desc in CONTEXT_FIELDS.values())


# ---------------------------------------------------------------------------------------------- alert config


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ({"metadata": {"person_id": "v1", "zone_id": "HV"}}, "hash"),
        ({"metadata": {"person_id": "v1", "zone_id": None}}, None),  # on_missing: skip -> no dedup
    ],
)
def test_dedup_key(view, expected) -> None:
    cfg = load_alert_config(DEFAULT_ALERT_CONFIG_FILE.read_text())
    key = dedup_key(cfg.for_type("LOITERING"), view)
    assert (key is None) if expected is None else (len(key) == 16)


def test_dedup_key_differs_by_fields_and_type() -> None:
    cfg = load_alert_config(DEFAULT_ALERT_CONFIG_FILE.read_text())
    a = dedup_key(cfg.for_type("LOITERING"), {"metadata": {"person_id": "v1", "zone_id": "HV"}})
    b = dedup_key(cfg.for_type("LOITERING"), {"metadata": {"person_id": "v2", "zone_id": "HV"}})
    c = dedup_key(cfg.for_type("REPEATED_VISIT"), {"metadata": {"person_id": "v1", "zone_id": "HV"}})
    assert len({a, b, c}) == 3
    assert dedup_key(cfg.for_type("NO_SUCH_TYPE"), {"metadata": {"person_id": "v1"}}) is None


@pytest.mark.parametrize(
    ("cfg", "error"),
    [
        ({"subscriptions": [{"alert_type": "A", "dedup": {"enabled": True, "fields": []}}]}, "needs fields"),
        ({"subscriptions": [{"alert_type": "A", "delivery": [{"type": "mqtt"}]}]}, "needs a topic"),
        ({"subscriptions": [{"alert_type": "A", "delivery": [{"type": "webhook", "url": "ftp://x"}]}]}, "http"),
        ({"subscriptions": [{"alert_type": "A"}, {"alert_type": "A"}]}, "more than one subscription"),
        ({"service": {"retry_attempts": 0}}, "service.retry_attempts"),
    ],
)
def test_bad_alert_config(cfg, error) -> None:
    with pytest.raises(AlertConfigError, match=error):
        load_alert_config(json.dumps(cfg), "ac.yaml")
