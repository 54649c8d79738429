"""The rules file: Intel's store-wide loss-prevention `rules.yaml` format, validated, with extensions.

The format (a file written for Intel's application loads unchanged):
    settings        runtime knobs; `session_timeout_seconds` is used, unknown keys are kept and ignored
    variables       defaults for `${name:default}` placeholders (overridable with RULES_VARIABLES)
    session_flags   named booleans on each visitor's session: `zone_visited` (set on entering a zone
                    of `zone_type`) or `external` (set when a `source` result's `field` equals `match_value`)
    services        named escalation targets (`handler`), referenced by `escalate` actions
    rules[]         id, name, enabled, trigger {event_type, zone_type}, conditions[] (all must hold),
                    actions[] {type: alert | escalate, params}

Extensions: `any`/`all`/`not` condition groups and `in`/`not_in` operators (see `conditions`); validation
that names the rule and the field at fault; our own `settings` keys (`SETTINGS` below).

Example:
    >>> rs = load_rules(DEFAULT_RULES_FILE.read_text())
    >>> sorted(r.id for r in rs.rules if r.enabled)[:2]
    ['behavioral_analysis', 'checkout_bypass']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workloads.lp.conditions import Check, ConditionError, compile_condition, fields_read, parse_field
from workloads.lp.settings import DEFAULT_RULES_FILE, ZoneTypeName
from workloads.lp.variables import VariableError, parse_override, substitute

__all__ = [
    "CONTEXT_FIELDS",
    "DEFAULT_RULES_FILE",
    "TRIGGERS",
    "CompiledRule",
    "RuleSet",
    "RulesError",
    "load_rules",
    "load_rules_file",
]

TriggerName = Literal["zone_entry", "zone_exit", "zone_loiter", "ba_result"]
TRIGGERS: tuple[str, ...] = ("zone_entry", "zone_exit", "zone_loiter", "ba_result")
Severity = Literal["INFO", "WARNING", "CRITICAL"]
FireOncePer = Literal["zone", "session", "none"]

#: Every name the context of a rule evaluation carries (besides the session flags, spread at the top level).
#: This table is the reference for rule authors; a test checks the processor builds exactly these.
CONTEXT_FIELDS: dict[str, str] = {
    "event_type": "the trigger: zone_entry, zone_exit, zone_loiter or ba_result",
    "source_event_type": "what caused it: a visitor event type (ZONE_ENTER, EXIT, ...), TICK or BA_RESULT",
    "store_id": "the store",
    "scene_id": "the store (Intel's name for it)",
    "camera_id": "camera of the event",
    "visitor_id": "the visitor (person) id",
    "object_id": "the visitor id (Intel's name)",
    "person_id": "the visitor id (Intel's alert-service name)",
    "zone_id": "zone of the event; `@entrance` / `@exit` for crossing the store boundary",
    "region_id": "the zone id (Intel's name)",
    "region_name": "the zone id (our zones have no separate display name)",
    "zone_type": "type of the zone (ENTRY, PRODUCT, HIGH_VALUE, BILLING_QUEUE, CHECKOUT, EXIT, RESTRICTED)",
    "timestamp": "event time, ISO-8601 UTC",
    "dwell_seconds": "seconds in the zone: at exit, at loiter (so far), else 0",
    "visit_count": "entries into this zone during the session, this one included",
    "zone_visit_counts": "map zone id -> entries during the session (index it: zone_visit_counts[region_id])",
    "total_zone_entries": "zone entries during the session, all zones",
    "zones_inside": "ids of the zones the visitor is in now",
    "session_seconds": "seconds since the session's first event",
    "is_staff": "the event was from a person recognised as staff",
    "confidence": "detection confidence of the event",
    "sku_zone": "product category of the zone, when it has one",
    "ba_status": "behavioural analysis result status (suspicious, no_match, no_enough_data, ...)",
    "ba_confidence": "behavioural analysis confidence",
    "ba_message": "behavioural analysis explanation (the VLM's response)",
    "ba_frames_analyzed": "frames the behavioural analysis looked at",
}


class RulesError(ValueError):
    """A rules file that cannot be used. `problems` lists each one with where it is (rule id and field)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the rules\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settings(BaseModel):
    """`settings:`. Unknown keys (e.g. Intel's frame-capture cadence) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    session_timeout_seconds: float = Field(
        90.0, gt=0, description="A session with no open zone visit expires after this long without an event."
    )
    open_visit_timeout_seconds: float = Field(
        3600.0, gt=0, description="Extension: a session with an open zone visit expires after this long "
        "without an event (a visit whose ZONE_EXIT never came)."
    )
    tick_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="Extension: how often open visits are checked for zone_loiter rules and "
        "sessions for expiry."
    )
    ignore_staff: bool = Field(True, description="Extension: events of staff never reach the rules.")


SETTINGS = {name: f.description for name, f in Settings.model_fields.items()}


class SessionFlag(_Strict):
    trigger: Literal["zone_visited", "external"]
    zone_type: ZoneTypeName | None = None
    source: str | None = None
    field: str = "status"
    match_value: Any = None
    description: str = ""

    @model_validator(mode="after")
    def _complete(self) -> SessionFlag:
        if self.trigger == "zone_visited" and self.zone_type is None:
            raise ValueError("a zone_visited flag needs zone_type")
        if self.trigger == "external" and not self.source:
            raise ValueError("an external flag needs source (e.g. behavioral_analysis)")
        return self


class Service(BaseModel):
    model_config = ConfigDict(extra="allow")

    handler: str = Field(min_length=1)


class Trigger(_Strict):
    event_type: TriggerName
    zone_type: ZoneTypeName | None = None


class AlertParams(BaseModel):
    """`params` of an alert action. Extra keys (e.g. `threshold`) are kept for `$param.<name>`."""

    model_config = ConfigDict(extra="allow")

    alert_type: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    severity: Severity = "WARNING"
    fire_once_per: FireOncePer = "none"
    severity_if: str | None = None
    severity_when_true: Severity | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("severity", "severity_when_true", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _pair(self) -> AlertParams:
        if (self.severity_if is None) != (self.severity_when_true is None):
            raise ValueError("severity_if and severity_when_true go together")
        return self


class EscalateParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    service: str = Field(min_length=1)


class ActionSpec(_Strict):
    type: Literal["alert", "escalate"]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params(self) -> ActionSpec:
        model = AlertParams if self.type == "alert" else EscalateParams
        try:
            model.model_validate(self.params)
        except ValidationError as e:
            raise ValueError("; ".join(f"params.{_loc(err['loc'])}: {err['msg']}" for err in e.errors())) from None
        return self


class RuleSpec(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    description: str = ""
    enabled: bool = True
    trigger: Trigger
    conditions: list[Any] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(min_length=1)

    @field_validator("conditions")
    @classmethod
    def _compile(cls, conditions: list[Any]) -> list[Any]:
        for i, c in enumerate(conditions):
            try:
                compile_condition(c)
            except ConditionError as e:
                raise ValueError(f"conditions[{i}]: {e}") from None
        return conditions


class RulesFile(_Strict):
    settings: Settings = Field(default_factory=Settings)
    variables: dict[str, Any] = Field(default_factory=dict)
    session_flags: dict[str, SessionFlag] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule with its conditions compiled to one check."""

    id: str
    name: str
    enabled: bool
    trigger: str
    zone_type: str | None
    check: Check
    actions: tuple[tuple[str, dict[str, Any]], ...]  #: (type, params), in file order
    n_conditions: int


@dataclass(frozen=True)
class RuleSet:
    """A loaded rules file: the validated spec, compiled rules, and a version (hash of what was loaded)."""

    spec: RulesFile
    rules: tuple[CompiledRule, ...]
    text: str
    version: str
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.spec.settings

    @property
    def flags(self) -> dict[str, SessionFlag]:
        return self.spec.session_flags

    def flags_for_zone_type(self, zone_type: str | None) -> list[str]:
        return [n for n, f in self.flags.items() if f.trigger == "zone_visited" and f.zone_type == zone_type]

    def external_flags(self, source: str) -> list[tuple[str, SessionFlag]]:
        return [(n, f) for n, f in self.flags.items() if f.trigger == "external" and f.source == source]

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rules": [{"id": r.id, "name": r.name, "enabled": r.enabled, "trigger": r.trigger,
                       "zone_type": r.zone_type} for r in self.rules],
            "session_flags": sorted(self.flags),
            "services": sorted(self.spec.services),
            "variables": self.variables,
            "settings": self.settings.model_dump(),
        }


def _rule_label(raw: Any, i: int) -> str:
    rid = raw["rules"][i].get("id") if isinstance(raw, dict) and isinstance(raw.get("rules"), list) \
        and i < len(raw["rules"]) and isinstance(raw["rules"][i], dict) else None
    return f"rules[{i}] (id {rid!r})" if rid else f"rules[{i}]"


def _format(err: ValidationError, raw: Any) -> list[str]:
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        # Our validators say where inside their value ("conditions[0]: ...", "params.severity: ..."):
        # fold that into the path.
        head, sep, tail = msg.partition(": ")
        extra = ""
        if sep and loc and isinstance(loc[-1], str) and head.startswith(f"{loc[-1]}["):
            loc, extra, msg = loc[:-1], head, tail
        elif sep and head.startswith("params."):
            extra, msg = head, tail
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rest = ".".join(p for p in (_loc(loc[2:]) if loc[2:] else "", extra) if p)
            out.append(f"{_rule_label(raw, loc[1])}" + (f".{rest}" if rest else "") + f": {msg}")
        else:
            out.append(f"{_loc(loc)}: {msg}")
    return out


def _cross_check(spec: RulesFile) -> list[str]:
    """References between sections: fields, flags and services that a rule names must exist."""
    problems: list[str] = []
    known = set(CONTEXT_FIELDS) | set(spec.session_flags)
    seen: set[str] = set()
    for i, r in enumerate(spec.rules):
        label = f"rules[{i}] (id {r.id!r})"
        if r.id in seen:
            problems.append(f"{label}: duplicate rule id")
        seen.add(r.id)
        for j, c in enumerate(r.conditions):
            for fp in fields_read(c):
                for name in (fp.root, *fp.ctx_refs):
                    if name not in known:
                        problems.append(f"{label}.conditions[{j}].field: unknown field {name!r} in {fp.text!r} "
                                        f"(known: context fields and session flags {sorted(spec.session_flags)})")
        for k, a in enumerate(r.actions):
            where = f"{label}.actions[{k}].params"
            if a.type == "escalate":
                svc = a.params["service"]
                if svc not in spec.services:
                    problems.append(f"{where}.service: unknown service {svc!r} (services: {sorted(spec.services)})")
                continue
            p = AlertParams.model_validate(a.params)
            if p.severity_if is not None and p.severity_if not in spec.session_flags:
                problems.append(f"{where}.severity_if: {p.severity_if!r} is not a session flag "
                                f"(flags: {sorted(spec.session_flags)})")
            for key, value in p.details.items():
                if isinstance(value, str) and value.startswith("$ctx."):
                    try:
                        fp = parse_field(value[5:])
                    except ConditionError as e:
                        problems.append(f"{where}.details.{key}: {e}")
                        continue
                    for name in (fp.root, *fp.ctx_refs):
                        if name not in known:
                            problems.append(f"{where}.details.{key}: unknown field {name!r} in {value!r}")
                elif isinstance(value, str) and value.startswith("$param.") and value[7:] not in a.params:
                    problems.append(f"{where}.details.{key}: {value!r} names no param of this action")
    for name in spec.session_flags:
        if name in CONTEXT_FIELDS:
            problems.append(f"session_flags.{name}: the name is taken by a context field")
    return problems


def _normalised(a: ActionSpec) -> dict[str, Any]:
    """Params with defaults filled in and severities upper-cased (extra keys kept for `$param.`)."""
    model = AlertParams if a.type == "alert" else EscalateParams
    return model.model_validate(a.params).model_dump()


def load_rules(text: str, variables_override: str | dict[str, Any] | None = None, source: str = "rules") -> RuleSet:
    """Parse, substitute variables into, validate and compile a rules file; RulesError lists every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RulesError(source, [f"not valid YAML: {e}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError(source, [f"expected a mapping at the top level, got {type(raw).__name__}"])
    try:
        override = parse_override(variables_override) if not isinstance(variables_override, dict) \
            else variables_override
        file_vars = raw.get("variables") or {}
        if not isinstance(file_vars, dict):
            raise RulesError(source, ["variables: expected a mapping of name -> value"])
        variables = {**file_vars, **override}
        resolved = {k: (v if k == "variables" else substitute(v, variables, k)) for k, v in raw.items()}
    except VariableError as e:
        raise RulesError(source, [str(e)]) from None
    try:
        spec = RulesFile.model_validate(resolved)
    except ValidationError as e:
        raise RulesError(source, _format(e, raw)) from None
    problems = _cross_check(spec)
    if problems:
        raise RulesError(source, problems)
    compiled = []
    for r in spec.rules:
        checks = tuple(compile_condition(c) for c in r.conditions)
        if not checks:
            def check(ctx: Any) -> bool:
                return True
        elif len(checks) == 1:
            check = checks[0]
        else:
            def check(ctx: Any, _c: tuple[Check, ...] = checks) -> bool:
                return all(c(ctx) for c in _c)
        compiled.append(CompiledRule(
            r.id, r.name or r.id, r.enabled, r.trigger.event_type, r.trigger.zone_type, check,
            tuple((a.type, _normalised(a)) for a in r.actions), len(r.conditions),
        ))
    digest = hashlib.sha256(text.encode() + repr(sorted(override.items())).encode()).hexdigest()[:16]
    return RuleSet(spec, tuple(compiled), text, digest, variables)


def load_rules_file(path: str | Path, variables_override: str | dict[str, Any] | None = None) -> RuleSet:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise RulesError(str(p), [f"cannot read: {e.strerror or e}"]) from None
    return load_rules(text, variables_override, str(p))
