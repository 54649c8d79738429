"""Questions in plain language: a fixed set of questions -> the right typed plans (rule parser), the LLM
planner's request/response handling and fallback, and plans run on DuckDB over a real lake."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import httpx
import jsonschema
import pytest

from workloads.config import FleetConfig
from workloads.inventory import batch
from workloads.inventory.parser import UnknownQuestion, mentioned_ids, parse_question
from workloads.inventory.planner import LlmPlanner, RulePlanner
from workloads.inventory.plans import PLAN_TYPES, RestockToday, ShelfGaps, guided_dump, guided_schema, parse_plan
from workloads.inventory.plans import Window as W
from workloads.inventory.prompt import ASKED_AS, build_messages, examples
from workloads.inventory.question_set import QUESTIONS, VOCAB
from workloads.inventory.service import InventoryService
from workloads.inventory.settings import LlmPlannerConfig
from workloads.inventory.tables import Dataset


@pytest.mark.parametrize(("question", "expected"), QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_questions_map_to_plans(question, expected):
    plan = parse_question(question, VOCAB)
    assert plan == expected
    assert parse_plan(plan.model_dump(mode="json")) == plan  # valid under the schema's union


def test_unknown_question_says_what_can_be_asked():
    with pytest.raises(UnknownQuestion, match="what to restock today"):
        parse_question("tell me a joke", VOCAB)


@pytest.mark.parametrize(
    ("window", "today", "first", "last"),
    [
        (W.THIS_WEEKEND, date(2026, 3, 5), date(2026, 3, 7), date(2026, 3, 8)),  # Thursday
        (W.THIS_WEEKEND, date(2026, 3, 7), date(2026, 3, 7), date(2026, 3, 8)),  # Saturday
        (W.THIS_WEEKEND, date(2026, 3, 8), date(2026, 3, 8), date(2026, 3, 8)),  # Sunday: what is left of it
        (W.NEXT_48H, date(2026, 3, 5), date(2026, 3, 5), date(2026, 3, 7)),
        (W.LAST_7_DAYS, date(2026, 3, 5), date(2026, 2, 26), date(2026, 3, 4)),
    ],
)
def test_windows_resolve_to_store_days(window, today, first, last):
    assert window.dates(today) == (first, last)


def test_prompt_lists_plans_ids_and_worked_examples():
    msgs = build_messages("what needs restocking?", VOCAB, date(2026, 3, 5))
    system = msgs[0]["content"]
    assert "stockout_risk" in system and "MILK-1L (Whole milk 1L)" in system and "Thursday 2026-03-05" in system
    shown = [json.loads(m["content"]) for m in msgs if m["role"] == "assistant"]
    assert [e["plan"] for e in shown] == [e[1].plan for e in examples(VOCAB)]
    assert all(next(iter(e)) == "plan" for e in shown)  # written the way guided decoding makes the model write
    assert msgs[-1] == {"role": "user", "content": "what needs restocking?"}


def test_worked_examples_cover_every_plan_and_none_is_an_evaluated_question():
    ex = examples(VOCAB)
    assert sorted(p.plan for _, p in ex) == sorted(t.model_fields["plan"].default for t in PLAN_TYPES)
    assert not {q.lower() for q, _ in ex} & {q.lower() for q, _ in QUESTIONS}
    assert set(ASKED_AS) == {t.model_fields["plan"].default for t in PLAN_TYPES}


ALL_IDS = (sorted(VOCAB.stores), sorted(VOCAB.products), sorted(VOCAB.categories))


@pytest.mark.parametrize(("question", "expected"), QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_guided_schema_allows_every_expected_plan(question, expected):
    jsonschema.validate(guided_dump(expected), guided_schema(*ALL_IDS))
    jsonschema.validate(guided_dump(expected), guided_schema(*mentioned_ids(question, VOCAB)))  # ids it names


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        ({**guided_dump(ShelfGaps()), "stores": ["Downtown"]}, "is not one of"),  # a name, not an id
        ({**guided_dump(ShelfGaps()), "stores": None, "extra": 1}, "Additional properties"),
        ({k: v for k, v in guided_dump(ShelfGaps()).items() if k != "min_gap_ratio"}, "required"),
        ({"plan": "sales_history", "stores": None, "skus": None, "category": None, "window": "tomorrow"},
         "is not one of"),  # sales look back
        ({**guided_dump(RestockToday()), "stores": ["S1", "S2", "S1"]}, "too long"),
    ],
    ids=["unknown-id", "extra-field", "missing-field", "future-sales", "runaway-list"],
)
def test_guided_schema_refuses_what_a_plan_must_not_be(plan, why):
    schema = guided_schema(*ALL_IDS)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(plan, schema)
    branch = next(d for d in schema["$defs"].values() if d.get("properties", {}).get("plan", {}).get("const")
                  == plan["plan"])
    with pytest.raises(jsonschema.ValidationError, match=why):  # and for the reason given
        jsonschema.validate(plan, {**branch, "$defs": schema["$defs"]})


@pytest.mark.parametrize(
    ("question", "ids"),
    [
        ("Will S2 run out of oat milk in the next 48 hours?", (["S2"], ["OAT-1L"], [])),
        ("Which dairy items are running low in the airport store?", (["S2"], [], ["dairy"])),
        ("What do I need to restock today?", ([], [], [])),
    ],
)
def test_mentioned_ids_are_what_the_question_names(question, ids):
    assert mentioned_ids(question, VOCAB) == ids


def _llm(reply: httpx.Response | None, mode: str = "response_format") -> tuple[LlmPlanner, list[dict]]:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        return reply

    cfg = LlmPlannerConfig(base_url="http://llm.test/v1", model="smollm2", guided=mode)
    client = httpx.Client(base_url=cfg.base_url, transport=httpx.MockTransport(handler))
    return LlmPlanner(cfg, client), seen


def _chat(content: str) -> httpx.Response:
    """An OpenAI chat completion response body, as vLLM returns it."""
    return httpx.Response(200, json={"id": "x", "object": "chat.completion", "model": "smollm2",
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": content}}]})


@pytest.mark.parametrize(
    ("mode", "where"),
    [
        ("response_format", lambda b: b["response_format"]["json_schema"]["schema"]),  # OpenAI's field; vLLM 0.32 ok
        ("structured_outputs", lambda b: b["structured_outputs"]["json"]),  # vLLM's own field
        ("guided_json", lambda b: b["guided_json"]),  # old vLLM only (0.32 ignores it)
    ],
)
def test_llm_planner_sends_the_schema_and_uses_a_valid_plan(mode, where):
    planner, seen = _llm(_chat('{"plan": "shelf_gaps", "stores": ["S1"], "min_gap_ratio": 0.4}'), mode)
    got = planner.plan("where are the holes in the shelves of Downtown?", VOCAB, date(2026, 3, 5))
    assert got.plan == ShelfGaps(stores=["S1"], min_gap_ratio=0.4) and got.planner == "llm:smollm2"
    body = seen[0]
    assert where(body) == guided_schema(["S1"], [], []) and body["temperature"] == 0.0  # Downtown is S1
    assert body["messages"][-1]["content"] == "where are the holes in the shelves of Downtown?"
    assert {"guided_json", "structured_outputs", "response_format"} & set(body) == {mode}


def test_llm_planner_default_is_the_field_vllm_032_honours():
    assert LlmPlannerConfig(base_url="http://x/v1", model="m").guided == "response_format"


def test_llm_planner_with_all_ids_offers_every_id():
    planner, seen = _llm(_chat('{"plan": "backroom_only", "stores": null}'))
    planner.cfg = planner.cfg.model_copy(update={"ids": "all"})
    planner.plan("what is in the backroom?", VOCAB, date(2026, 3, 5))
    assert seen[0]["response_format"]["json_schema"]["schema"] == guided_schema(*ALL_IDS)


@pytest.mark.parametrize(
    "reply",
    [_chat('{"plan": "drop_table"}'), _chat("not json"), httpx.Response(500, text="boom"), _chat('{"plan": 1}')],
    ids=["unknown-plan", "not-json", "http-500", "bad-field"],
)
def test_llm_planner_falls_back_to_the_rules_and_says_why(reply):
    planner, _ = _llm(reply)
    got = planner.plan("What do I need to restock today?", VOCAB, date(2026, 3, 5))
    assert got.plan == RestockToday() and got.planner == "rules" and "llm planner failed" in got.note


# ------------------------------------------------------------------------------ plans run on DuckDB

NOW = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)  # a Thursday


@pytest.fixture
def service(tmp_path, redis_client) -> InventoryService:
    fleet = FleetConfig.model_validate({
        "inventory": {"data_dir": str(tmp_path / "lake")},
        "stores": [{"id": sid, "name": name, "cameras": [{"id": f"C{sid}", "source": "synthetic:empty"}]}
                   for sid, name in (("S1", "Downtown"), ("S2", "Airport"))],
    })
    svc = InventoryService(fleet, redis_client, clock=NOW.timestamp)
    days = [date(2026, 3, 4) - timedelta(days=i) for i in range(56)]
    files = {
        Dataset.SALES: "store_id,sku,date,quantity\n" + "".join(
            f"{s},{sku},{d},{q}\n" for d in days for s in ("S1", "S2") for sku, q in (("MILK-1L", 10), ("CRISPS", 3))),
        Dataset.SNAPSHOTS: "store_id,sku,snapshot_at,product_name,category,on_hand,shelf_units,backroom_units,"
        "unit_cost\n"
        "S1,MILK-1L,2026-03-05T07:00:00Z,Whole milk 1L,dairy,25,5,20,0.9\n"  # about 2.5 days: runs out Saturday
        "S2,MILK-1L,2026-03-05T07:00:00Z,Whole milk 1L,dairy,200,40,160,0.9\n"
        "S1,CRISPS,2026-03-05T07:00:00Z,Salted crisps 150g,snacks,40,0,40,1.5\n"  # shelf empty, backroom full
        "S2,CRISPS,2026-03-05T07:00:00Z,Salted crisps 150g,snacks,40,20,20,1.5\n",
    }
    for ds, text in files.items():
        f = tmp_path / f"{ds}.csv"
        f.write_text(text)
        assert svc.import_file(f, ds).errors == 0
    batch.run_local(svc.lake.root, batch.BatchSettings(horizon_days=10))
    return svc


def test_which_stores_will_run_out_this_weekend(service):
    a = service.ask("Which stores will run out of whole milk this weekend?", now=NOW)
    assert a.plan == {"stores": None, "skus": ["MILK-1L"], "category": None, "plan": "stockout_risk",
                      "window": "this_weekend"}
    assert [(r["store_id"], r["runout_date"]) for r in a.rows] == [("S1", "2026-03-07")]
    assert "from decisions" in a.sql and a.params["end"] == "2026-03-08"
    assert a.summary.startswith("1 item(s) in 1 store(s) expected to run out by Sun 2026-03-08: S1")


def test_restock_today_lists_backroom_moves_first(service):
    a = service.ask("What do I need to restock today?", now=NOW)
    first = a.rows[0]
    assert (first["store_id"], first["sku"], first["action"], first["quantity"]) == \
        ("S1", "CRISPS", "replenish_from_backroom", 40)
    assert ("S1", "MILK-1L", "order") in {(r["store_id"], r["sku"], r["action"]) for r in a.rows}


def test_a_store_key_only_sees_its_store(service):
    a = service.ask("What is our stock worth?", allowed_stores=["S2"], now=NOW)
    assert {r["store_id"] for r in a.rows} == {"S2"}
    other = service.ask("How many whole milk do we have in S1?", allowed_stores=["S2"], now=NOW)
    assert other.rows == [] and "left out stores this key may not read: S1" in other.note


@pytest.mark.parametrize(
    ("question", "check"),
    [
        ("What is our stock worth?", lambda rows: round(sum(r["value"] for r in rows), 2) == 322.5),
        ("What are the top 5 best sellers last week?", lambda rows: [r["sku"] for r in rows] == ["MILK-1L", "CRISPS"]),
        ("How many whole milk did we sell yesterday?", lambda rows: [r["units"] for r in rows] == [10.0, 10.0]),
        ("How much whole milk will we sell this weekend?",
         lambda rows: all(19 < r["expected_units"] < 21 for r in rows) and len(rows) == 2),
        ("Which shelves are empty?", lambda rows: rows == []),
        ("What is sitting in the backroom while the shelf is empty?",
         lambda rows: [r["sku"] for r in rows] == ["CRISPS"]),
    ],
)
def test_plans_run_on_duckdb(service, question, check):
    a = service.ask(question, now=NOW)
    assert a.planner == "rules" and check(a.rows), a.rows


def test_rule_planner_is_a_planner():
    assert RulePlanner().plan("which shelves are empty?", VOCAB, date(2026, 3, 5)).plan == ShelfGaps()
