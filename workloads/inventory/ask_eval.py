"""Score a planner on the fixed question table: exact plans, right plan kind, right fields, latency, fallbacks.

`exact` is the number that matters (the plan that runs is exactly the expected one). `kind` counts
questions whose plan tag is right even if a field is wrong; `fields` is the share of the expected
plan's fields (stores, skus, category, window, limit, ...) that are right, over questions of the
right kind. A fallback (the model failed and the rule parser answered) counts as the model's miss
for `exact`, so a broken endpoint cannot score well by borrowing the rules' answers.

Example:
    >>> from workloads.inventory.plans import StockoutRisk, Window
    >>> score(StockoutRisk(skus=["MILK-1L"]), StockoutRisk(skus=["MILK-1L"], window=Window.TOMORROW))
    (False, True, 3, 4)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel

from workloads.inventory.parser import UnknownQuestion, Vocabulary
from workloads.inventory.planner import Planner


@dataclass(frozen=True)
class CaseResult:
    question: str
    expected: dict[str, Any]
    got: dict[str, Any] | None  #: None: no plan at all (the rule parser did not know the question)
    planner: str
    note: str
    seconds: float
    exact: bool
    kind: bool
    fields_right: int
    fields: int


def score(expected: BaseModel, got: BaseModel | None) -> tuple[bool, bool, int, int]:
    """(exact, right kind, fields right, fields compared); fields are compared only for the right kind."""
    want = expected.model_dump(mode="json")
    if got is None:
        return False, False, 0, len(want) - 1
    have = got.model_dump(mode="json")
    if have["plan"] != want["plan"]:
        return False, False, 0, len(want) - 1
    keys = [k for k in want if k != "plan"]
    right = sum(_same(want[k], have.get(k)) for k in keys)
    return right == len(keys), True, right, len(keys)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(a) == sorted(b)  # ["S1", "S2"] and ["S2", "S1"] select the same rows
    return a == b


def evaluate(planner: Planner, cases: Sequence[tuple[str, BaseModel]], vocab: Vocabulary, today: date,
             progress: Callable[[int, int], None] | None = None, model_only: bool = True) -> list[CaseResult]:
    """Plan every question once, in order. `model_only`: a fallback answer counts as wrong."""
    out = []
    for i, (question, expected) in enumerate(cases):
        t0 = time.perf_counter()
        try:
            planned = planner.plan(question, vocab, today)
            plan, who, note = planned.plan, planned.planner, planned.note
        except UnknownQuestion as e:
            plan, who, note = None, "none", str(e)[:120]
        seconds = time.perf_counter() - t0
        exact, kind, right, n = score(expected, plan)
        if model_only and note:  # the rules answered for a failed model
            exact = kind = False
            right = 0
        out.append(CaseResult(question, expected.model_dump(mode="json"),
                              None if plan is None else plan.model_dump(mode="json"), who, note, seconds, exact,
                              kind, right, n))
        if progress:
            progress(i + 1, len(cases))
    return out


def summarise(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The numbers of one run (docs/inventory.md's table)."""
    n = len(results)
    secs = sorted(r.seconds for r in results)
    kind = [r for r in results if r.kind]
    return {
        "questions": n,
        "exact": sum(r.exact for r in results),
        "exact_share": round(sum(r.exact for r in results) / n, 3) if n else 0.0,
        "kind": len(kind),
        "field_accuracy": round(sum(r.fields_right for r in kind) / max(1, sum(r.fields for r in kind)), 3),
        "fallbacks": sum(bool(r.note) for r in results),
        "latency_p50_s": round(statistics.median(secs), 3) if secs else 0.0,
        "latency_max_s": round(secs[-1], 3) if secs else 0.0,
        "latency_mean_s": round(statistics.fmean(secs), 3) if secs else 0.0,
    }
