"""The rule engine: which rules a trigger in a zone type selects, and which of them hold for a context.

Pure and small on purpose (the shape of Intel's engine): it imports nothing from the service around
it, evaluates a flat context dict and returns actions; sessions, dedup, alerts and escalations are
the caller's business (see `processor`).

Example:
    >>> from workloads.lp.rules import load_rules, DEFAULT_RULES_FILE
    >>> engine = RuleEngine(load_rules(DEFAULT_RULES_FILE.read_text()))
    >>> [a.params["alert_type"] for a in engine.evaluate("zone_entry", "RESTRICTED", {"zone_type": "RESTRICTED"})]
    ['ZONE_VIOLATION']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workloads.lp.conditions import ConditionError, FieldPath, parse_field
from workloads.lp.rules import TRIGGERS, CompiledRule, RuleSet

_field: Any = lru_cache(maxsize=4096)(parse_field)


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a rule that matched: `type` is alert or escalate; `index` its place in the rule."""

    rule_id: str
    rule_name: str
    type: str
    params: Mapping[str, Any]
    index: int


class RuleEngine:
    """Evaluates a RuleSet. `evaluations` counts rules whose conditions were checked (for metrics)."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.evaluations = 0
        self._by_trigger: dict[str, list[CompiledRule]] = {t: [] for t in TRIGGERS}
        for r in ruleset.rules:
            if r.enabled:
                self._by_trigger[r.trigger].append(r)
        self._selected: dict[tuple[str, str | None], tuple[CompiledRule, ...]] = {}

    def rules_for(self, trigger: str, zone_type: str | None) -> tuple[CompiledRule, ...]:
        """Enabled rules of `trigger` whose zone_type is `zone_type` or unset, in file order."""
        key = (trigger, zone_type)
        sel = self._selected.get(key)
        if sel is None:
            sel = tuple(r for r in self._by_trigger.get(trigger, ()) if r.zone_type in (None, zone_type))
            self._selected[key] = sel
        return sel

    def evaluate(self, trigger: str, zone_type: str | None, ctx: Mapping[str, Any]) -> list[Action]:
        """Actions of every selected rule whose conditions all hold, in rule then action order."""
        out: list[Action] = []
        rules = self.rules_for(trigger, zone_type)
        self.evaluations += len(rules)
        for r in rules:
            if r.check(ctx):
                out += [Action(r.id, r.name, t, p, i) for i, (t, p) in enumerate(r.actions)]
        return out

    def is_rule_enabled(self, rule_id: str) -> bool:
        return any(r.id == rule_id and r.enabled for r in self.ruleset.rules)


def resolve_details(params: Mapping[str, Any], ctx: Mapping[str, Any]) -> Any:
    """An alert's `details`: `$ctx.<field>` from the context, `$param.<name>` from the action's params."""
    def value(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("$ctx."):
            try:
                fp: FieldPath = _field(v[5:])
                return fp.get(ctx)
            except ConditionError:
                return None
        if isinstance(v, str) and v.startswith("$param."):
            return params.get(v[7:])
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [value(x) for x in v]
        return v

    return value(dict(params.get("details") or {}))
