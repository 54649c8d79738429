"""The prompt that asks a small language model to map a question to one query plan.

Small models (SmolLM2-135M) follow examples better than instructions, so the prompt is short: the
plan names with the words people use for each, the chain's own ids, today's date, and one worked
example per plan produced by the deterministic parser (so the examples can never disagree with the
schema), written in the order guided decoding makes the model write (`plans.guided_dump`). Guided
decoding constrains the output to the schema; the prompt only has to make the *right* valid plan the
likely one. Each choice here was measured on the question table (docs/inventory.md).

Example:
    >>> msgs = build_messages("what do I need to restock today?", Vocabulary(stores={"S1": "Main"}),
    ...                       date(2026, 3, 2))
    >>> [m["role"] for m in msgs][:2], "restock_today" in msgs[0]["content"]
    (['system', 'user'], True)
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from workloads.inventory.parser import UnknownQuestion, Vocabulary, parse_question
from workloads.inventory.plans import PLAN_TYPES, guided_dump

#: One worked example per plan, worded unlike the evaluation table (`question_set.QUESTIONS`, a test checks),
#: so the measured accuracy is not the model copying a solved question. The order matters more than it
#: should: SmolLM2-135M leans on the last examples, and putting the filtered examples first and the
#: chain-wide ones last dropped exact plans from 8 to 1 of 27 (docs/inventory.md); this order measured best.
EXAMPLES = [
    "Give me today's restock list for {store}",
    "Which items could run out in the next 48 hours?",
    "What is low on stock in {store}?",
    "How many units of {product} are on hand?",
    "Where are the empty spots on the shelves?",
    "Which products are in the backroom but not on the shelf?",
    "What should we order from suppliers for {store}?",
    "How much {product} will we sell tomorrow?",
    "Top 3 products yesterday",
    "How much {product} did we sell in the last 30 days?",
    "What deliveries are coming this week?",
    "How much is the {category} stock in {store} worth?",
]
#: How people ask for each plan. Listing these words next to the plan names raised the right plan kind
#: from 11 to 14 of 27 questions (SmolLM2-135M); the plans' own one-line descriptions did not help.
ASKED_AS = {
    "restock_today": "restock, refill, replenish today",
    "stockout_risk": "run out, sell out, out of stock, stockouts",
    "low_stock": "running low, low stock, short on",
    "stock_level": "how many do we have, how much is left, in stock, on hand",
    "shelf_gaps": "empty shelves, gaps, holes on the shelf",
    "backroom_only": "stock in the backroom but not on the shelf",
    "reorder_list": "reorder, order from suppliers, purchase order",
    "demand_forecast": "how many will we sell, demand, forecast",
    "top_sellers": "best sellers, top N, sold best, most popular",
    "sales_history": "how many did we sell, sales, sold",
    "deliveries_due": "deliveries, arriving, shipments",
    "stock_value": "stock value, worth, cost of stock",
}
MAX_NAMES = 60  #: ids listed in the prompt (a small model's context is short)


def _plan_lines() -> list[str]:
    return [f"- {t.model_fields['plan'].default}: {ASKED_AS[t.model_fields['plan'].default]}" for t in PLAN_TYPES]


def examples(vocab: Vocabulary) -> list[tuple[str, Any]]:
    """The worked examples for this vocabulary: (question, plan from the rule parser); each names other ids."""
    products = list(vocab.products.values()) or ["milk"]
    stores = list(vocab.stores) or ["S1"]
    cats = sorted(vocab.categories) or ["dairy"]
    out = []
    for i, ex in enumerate(EXAMPLES):
        q = ex.format(product=products[i % len(products)], store=stores[i % len(stores)],
                      category=cats[i % len(cats)])
        try:
            out.append((q, parse_question(q, vocab)))
        except UnknownQuestion:
            continue
    return out


def build_messages(question: str, vocab: Vocabulary, today: date) -> list[dict[str, str]]:
    """Chat messages: system (plans and how they are asked, ids, date), then worked examples, then the question."""
    stores = ", ".join(f"{sid} ({name})" if name and name != sid else sid
                       for sid, name in list(vocab.stores.items())[:MAX_NAMES])
    products = ", ".join(f"{sku} ({name})" if name else sku for sku, name in list(vocab.products.items())[:MAX_NAMES])
    cats = ", ".join(sorted(vocab.categories)[:MAX_NAMES])
    system = "\n".join([
        "You turn a store manager's question into ONE query plan, as JSON matching the schema.",
        "Plans (and the words that ask for them):",
        *_plan_lines(),
        f"Store ids: {stores or '(none)'}.",
        f"SKUs: {products or '(none)'}.",
        f"Categories: {cats or '(none)'}.",
        f"Today is {today:%A %Y-%m-%d}.",
        "Use null for 'all stores' or 'all SKUs'. Answer with the JSON only.",
    ])
    msgs = [{"role": "system", "content": system}]
    for q, plan in examples(vocab):
        msgs += [{"role": "user", "content": q},
                 {"role": "assistant", "content": json.dumps(guided_dump(plan), separators=(",", ":"))}]
    msgs.append({"role": "user", "content": question})
    return msgs
