"""The prompt that asks a small language model to map a question to one query plan.

Small models (SmolLM2-135M) follow examples better than instructions, so the prompt is short: the
plan names with one line each, the chain's own ids (so the model copies real store ids and SKUs
instead of inventing them), today's date, and worked examples produced by the deterministic parser
(so the examples can never disagree with the schema). Guided decoding constrains the output to the
JSON schema; the prompt only has to make the *right* valid plan the likely one.

Example:
    >>> msgs = build_messages("what do I need to restock today?", Vocabulary(stores={"S1": "Main"}),
    ...                       date(2026, 3, 2))
    >>> [m["role"] for m in msgs][:2], "restock_today" in msgs[0]["content"]
    (['system', 'user'], True)
"""

from __future__ import annotations

import json
from datetime import date

from workloads.inventory.parser import UnknownQuestion, Vocabulary, parse_question
from workloads.inventory.plans import PLAN_TYPES

EXAMPLES = [
    "What do I need to restock today?",
    "Which stores will run out of {product} this weekend?",
    "How many {product} do we have in {store}?",
    "Which shelves are empty?",
    "What should we reorder in {store}?",
    "What are the top 5 sellers last week?",
]
MAX_NAMES = 60  #: ids listed in the prompt (a small model's context is short)


def _plan_lines() -> list[str]:
    out = []
    for t in PLAN_TYPES:
        tag = t.model_fields["plan"].default
        out.append(f"- {tag}: {(t.__doc__ or '').strip().splitlines()[0]}")
    return out


def build_messages(question: str, vocab: Vocabulary, today: date) -> list[dict[str, str]]:
    """Chat messages: system (plans, names, date, rules), then worked examples, then the question."""
    stores = ", ".join(f"{sid} ({name})" if name and name != sid else sid
                       for sid, name in list(vocab.stores.items())[:MAX_NAMES])
    products = ", ".join(f"{sku} ({name})" if name else sku for sku, name in list(vocab.products.items())[:MAX_NAMES])
    cats = ", ".join(sorted(vocab.categories)[:MAX_NAMES])
    system = "\n".join([
        "You turn a store manager's question into ONE query plan, as JSON matching the schema. Plans:",
        *_plan_lines(),
        f"Store ids: {stores or '(none)'}.",
        f"SKUs: {products or '(none)'}.",
        f"Categories: {cats or '(none)'}.",
        f"Today is {today:%A %Y-%m-%d}. Windows: today, tomorrow, next_48h, this_weekend, next_7_days, yesterday, "
        "last_7_days, last_30_days.",
        "Use only the ids above; use null for 'all stores' or 'all SKUs'. Answer with the JSON only.",
    ])
    msgs = [{"role": "system", "content": system}]
    sample_product = next(iter(vocab.products.values()), "milk")
    sample_store = next(iter(vocab.stores), "S1")
    for ex in EXAMPLES:
        q = ex.format(product=sample_product, store=sample_store)
        try:
            plan = parse_question(q, vocab)
        except UnknownQuestion:
            continue
        msgs += [{"role": "user", "content": q},
                 {"role": "assistant", "content": json.dumps(plan.model_dump(mode="json"), separators=(",", ":"))}]
    msgs.append({"role": "user", "content": question})
    return msgs
