"""Rule conditions: field paths into the flat context, the operator table, and compilation to closures.

A condition is one of:
    * `{field, op, value}` with `op` in `OPERATORS` (Intel's eq ne gt gte lt lte, plus `in`, `not_in`);
    * `{any: [conditions]}`, `{all: [conditions]}`, `{not: condition}` (groups, an extension).

A field is a context name, optionally followed by `.name` or `[key]` steps. In `[key]`, a bare name
is looked up in the context (`zone_visit_counts[region_id]` indexes the visit counts by the event's
region), a quoted string or a number is used as is (`zone_visit_counts['HV1']`). A missing field
is None: ordering comparisons with None are false, `eq null` is true.

Conditions compile once, when the rules load, to plain closures (`ctx -> bool`), so evaluating a rule
is a few Python calls, not a walk over YAML.

Example:
    >>> check = compile_condition({"field": "zone_visit_counts[region_id]", "op": "gte", "value": 3})
    >>> check({"zone_visit_counts": {"HV1": 3}, "region_id": "HV1"})
    True
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Ctx = Mapping[str, Any]
Check = Callable[[Ctx], bool]
Getter = Callable[[Ctx], Any]


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Ordering that is false (not an error) for None and incomparable types; numeric strings compare as numbers."""

    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        if isinstance(a, str) != isinstance(b, str):
            try:
                a, b = float(a), float(b)
            except (TypeError, ValueError):
                return False
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return compare


def _member(a: Any, b: Any) -> bool:
    try:
        return a in b
    except TypeError:
        return False


#: op name -> (function of (field value, rule value), what it means). The table is the reference.
OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "eq": (operator.eq, "field equals value"),
    "ne": (operator.ne, "field differs from value"),
    "gt": (_ordered(operator.gt), "field > value (numbers; false when either is missing)"),
    "gte": (_ordered(operator.ge), "field >= value"),
    "lt": (_ordered(operator.lt), "field < value"),
    "lte": (_ordered(operator.le), "field <= value"),
    "in": (_member, "field is one of value (a list)"),
    "not_in": (lambda a, b: not _member(a, b), "field is none of value (a list)"),
}

GROUPS = ("any", "all", "not")

_STEP = re.compile(
    r"""\.(?P<attr>[A-Za-z_][A-Za-z0-9_]*)
      | \[\s*(?:(?P<ctx>[A-Za-z_][A-Za-z0-9_]*)|'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<num>-?\d+))\s*\]""",
    re.VERBOSE,
)
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message says what is wrong (the caller adds where)."""


@dataclass(frozen=True)
class FieldPath:
    """A parsed field: its root name, the context names it indexes by, and a fast getter."""

    text: str
    root: str
    ctx_refs: tuple[str, ...]
    get: Getter


def parse_field(text: str) -> FieldPath:
    """Parse `name`, `name.sub`, `name[ctx_name]`, `name['literal']` or `name[3]` into a getter."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError(f"field must be a non-empty string, got {text!r}")
    text = text.strip()
    m = _ROOT.match(text)
    if not m:
        raise ConditionError(f"field {text!r} must start with a name")
    root, pos = m.group(0), m.end()
    steps: list[tuple[str, Any]] = []
    refs: list[str] = []
    while pos < len(text):
        s = _STEP.match(text, pos)
        if not s:
            raise ConditionError(f"field {text!r}: cannot read {text[pos:]!r} (use .name, [name], ['key'] or [0])")
        if s.group("attr") is not None:
            steps.append(("key", s.group("attr")))
        elif s.group("ctx") is not None:
            steps.append(("ctx", s.group("ctx")))
            refs.append(s.group("ctx"))
        elif s.group("num") is not None:
            steps.append(("key", int(s.group("num"))))
        else:
            steps.append(("key", s.group("sq") if s.group("sq") is not None else s.group("dq")))
        pos = s.end()

    if not steps:
        def get(ctx: Ctx) -> Any:
            return ctx.get(root)
    else:
        frozen = tuple(steps)

        def get(ctx: Ctx) -> Any:
            value = ctx.get(root)
            for kind, key in frozen:
                if value is None:
                    return None
                k = ctx.get(key) if kind == "ctx" else key
                if isinstance(value, Mapping):
                    value = value.get(k)
                elif isinstance(value, (list, tuple)) and isinstance(k, int):
                    value = value[k] if -len(value) <= k < len(value) else None
                else:
                    return None
            return value

    return FieldPath(text, root, tuple(refs), get)


def _fields_of(raw: Any) -> list[FieldPath]:
    """Every field a (valid) condition reads, for validation against the known context names."""
    if isinstance(raw, dict):
        if "field" in raw:
            return [parse_field(raw["field"])]
        out: list[FieldPath] = []
        for g in GROUPS:
            if g in raw:
                items = raw[g] if isinstance(raw[g], list) else [raw[g]]
                for item in items:
                    out += _fields_of(item)
        return out
    return []


def fields_read(raw: Any) -> list[FieldPath]:
    return _fields_of(raw)


def compile_condition(raw: Any) -> Check:
    """A closure `ctx -> bool` for one condition (or group); ConditionError if it is malformed."""
    if not isinstance(raw, dict):
        raise ConditionError(f"a condition is a mapping ({{field, op, value}} or any/all/not), got {raw!r}")
    groups = [g for g in GROUPS if g in raw]
    if groups:
        if len(raw) != 1:
            raise ConditionError(f"a group has exactly one key ({'/'.join(GROUPS)}), got {sorted(raw)}")
        g = groups[0]
        if g == "not":
            inner = compile_condition(raw["not"])
            return lambda ctx: not inner(ctx)
        items = raw[g]
        if not isinstance(items, list) or not items:
            raise ConditionError(f"`{g}` takes a non-empty list of conditions")
        checks = tuple(compile_condition(c) for c in items)
        if g == "any":
            return lambda ctx: any(c(ctx) for c in checks)
        return lambda ctx: all(c(ctx) for c in checks)

    unknown = set(raw) - {"field", "op", "value"}
    if unknown:
        raise ConditionError(f"unknown key(s) {sorted(unknown)} (a condition has field, op, value)")
    if "field" not in raw or "op" not in raw:
        raise ConditionError("a condition needs `field` and `op` (and `value`)")
    op_name = raw["op"]
    if op_name not in OPERATORS:
        raise ConditionError(f"unknown op {op_name!r} (allowed: {', '.join(OPERATORS)})")
    if "value" not in raw:
        raise ConditionError(f"op {op_name!r} needs a `value`")
    value = raw["value"]
    if op_name in ("in", "not_in") and not isinstance(value, list):
        raise ConditionError(f"op {op_name!r} needs a list value, got {value!r}")
    if op_name in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConditionError(f"op {op_name!r} needs a number, got {value!r}") from None
    fn = OPERATORS[op_name][0]
    get = parse_field(raw["field"]).get
    if op_name in ("in", "not_in"):
        value = tuple(value)
    return lambda ctx: fn(get(ctx), value)
