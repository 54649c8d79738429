"""Planners: a question in, a typed plan out. `RulePlanner` always works; `LlmPlanner` asks a model.

`LlmPlanner` calls an OpenAI-compatible chat endpoint (vLLM serving SmolLM2-135M-Instruct, for
instance) with the plan JSON schema for guided decoding, as `response_format: {type: json_schema}`
(the default; vLLM turns it into structured outputs) or vLLM's `structured_outputs: {json: ...}`.
vLLM 0.32 silently ignores the older `guided_json` field, so that mode is only for old servers.
Whatever comes back is validated against the same pydantic union; a timeout, an HTTP error or an
invalid plan falls back to the rule parser, and the answer says which planner produced the plan and why.

Status: served by vLLM (the `planner_llm` Serve app, SmolLM2-135M-Instruct on CPU), guided decoding
kept all 27 table questions valid, 8 of 27 exactly right (rule parser: 27); `storefleet inventory
ask-eval` reproduces it (docs/inventory.md).

Example:
    >>> RulePlanner().plan("which shelves are empty?", Vocabulary(), date(2026, 3, 2)).plan.plan
    'shelf_gaps'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from workloads.inventory.parser import Vocabulary, mentioned_ids, parse_question
from workloads.inventory.plans import guided_schema, parse_plan
from workloads.inventory.prompt import build_messages
from workloads.inventory.settings import LlmPlannerConfig


@dataclass(frozen=True)
class Planned:
    plan: Any  #: one of `plans.PLAN_TYPES`
    planner: str  #: "rules" or "llm:<model>"
    note: str = ""  #: why the fallback was used, if it was


class Planner(Protocol):
    def plan(self, question: str, vocab: Vocabulary, today: date) -> Planned: ...


class RulePlanner:
    """The deterministic parser as a planner."""

    def plan(self, question: str, vocab: Vocabulary, today: date) -> Planned:
        return Planned(parse_question(question, vocab), "rules")


class LlmPlanner:
    """A model behind an OpenAI-compatible endpoint, constrained to the plan schema; rules as fallback."""

    def __init__(self, cfg: LlmPlannerConfig, client: httpx.Client | None = None,
                 fallback: Planner | None = None) -> None:
        self.cfg = cfg
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = client or httpx.Client(base_url=cfg.base_url.rstrip("/"), timeout=cfg.timeout_s,
                                             headers=headers)
        self.fallback = fallback or RulePlanner()

    def schema(self, question: str, vocab: Vocabulary) -> dict[str, Any]:
        """The plan schema, its ids held to those the question names (`ids: mentioned`) or may see (`all`)."""
        if self.cfg.ids == "mentioned":
            return guided_schema(*mentioned_ids(question, vocab))
        return guided_schema(sorted(vocab.stores), sorted(vocab.products), sorted(vocab.categories))

    def request_body(self, question: str, vocab: Vocabulary, today: date) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": build_messages(question, vocab, today),
            "temperature": 0.0,
            "max_tokens": self.cfg.max_tokens,
        }
        schema = self.schema(question, vocab)
        if self.cfg.guided == "guided_json":
            body["guided_json"] = schema
        elif self.cfg.guided == "structured_outputs":
            body["structured_outputs"] = {"json": schema}
        else:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "query_plan", "schema": schema}}
        return body

    def plan(self, question: str, vocab: Vocabulary, today: date) -> Planned:
        try:
            r = self.client.post("/chat/completions", json=self.request_body(question, vocab, today))
            r.raise_for_status()
            text = r.json()["choices"][0]["message"]["content"]
            return Planned(parse_plan(json.loads(text)), f"llm:{self.cfg.model}")
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError, ValidationError) as e:
            why = f"llm planner failed ({type(e).__name__}: {str(e)[:200]}); rule parser used"
            fb = self.fallback.plan(question, vocab, today)
            return Planned(fb.plan, fb.planner, why)


def make_planner(cfg: LlmPlannerConfig | None) -> Planner:
    return LlmPlanner(cfg) if cfg is not None else RulePlanner()
