"""`${name:default}` placeholders of a rules file, resolved before validation.

Precedence: the JSON object in `RULES_VARIABLES` (environment), then the file's `variables:` section,
then the placeholder's own default. A string that is only a placeholder takes the value's type
(`${threshold:4}` becomes the integer 4); a placeholder inside a longer string is interpolated.

Example:
    >>> substitute({"value": "${n:4}", "msg": "over ${n:4}s"}, {"n": 9})
    {'value': 9, 'msg': 'over 9s'}
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

ENV_VAR = "RULES_VARIABLES"

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_MISSING = object()


class VariableError(ValueError):
    """A placeholder without a value, or an override that is not a JSON object; names where."""


def parse_override(raw: str | None) -> dict[str, Any]:
    """The `RULES_VARIABLES` JSON object (empty when unset)."""
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise VariableError(f"{ENV_VAR}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise VariableError(f"{ENV_VAR}: expected a JSON object of variable -> value, got {type(value).__name__}")
    return value


def _scalar(text: str) -> Any:
    """A default written in the placeholder, typed the way YAML would type it (`4` -> 4, `true` -> True)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def substitute(node: Any, variables: dict[str, Any], where: str = "") -> Any:
    """A copy of `node` (YAML data) with every placeholder in its strings resolved."""
    if isinstance(node, dict):
        return {k: substitute(v, variables, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, variables, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def value_of(m: re.Match[str]) -> Any:
        name, default = m.group(1), m.group(2)
        if name in variables:
            return variables[name]
        if default is not None:
            return _scalar(default)
        raise VariableError(f"{where or '(top level)'}: variable {name!r} has no value and no default")

    whole = _PLACEHOLDER.fullmatch(node.strip())
    if whole:
        return value_of(whole)
    return _PLACEHOLDER.sub(lambda m: str(value_of(m)), node)
