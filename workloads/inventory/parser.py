"""The deterministic question parser: keywords and the chain's own names -> a typed plan.

It covers the same plans as the language-model planner and answers when no model is deployed (or
when the model's output does not validate). Entities come from a `Vocabulary` built from the fleet
config and the lake: store ids and names, SKU ids and product names, categories. Intent rules are
ordered from the most specific to the most general; a question none of them matches raises
`UnknownQuestion` listing what can be asked.

Example:
    >>> vocab = Vocabulary(stores={"S1": "Downtown"}, products={"MILK-1L": "Whole milk 1L"},
    ...                    categories={"dairy"})
    >>> parse_question("Which stores will run out of whole milk this weekend?", vocab).model_dump(mode="json")
    {'stores': None, 'skus': ['MILK-1L'], 'category': None, 'plan': 'stockout_risk', 'window': 'this_weekend'}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workloads.inventory.plans import (
    BackroomOnly,
    DeliveriesDue,
    DemandForecast,
    LowStock,
    ReorderList,
    RestockToday,
    SalesHistory,
    ShelfGaps,
    StockLevel,
    StockoutRisk,
    StockValue,
    TopSellers,
    Window,
)


class UnknownQuestion(ValueError):
    """A question no plan matches; the message lists what can be asked."""


@dataclass
class Vocabulary:
    stores: dict[str, str] = field(default_factory=dict)  #: id -> name
    products: dict[str, str] = field(default_factory=dict)  #: sku -> product name
    categories: set[str] = field(default_factory=set)


def _norm(text: str) -> str:
    return " " + re.sub(r"[^0-9a-z]+", " ", text.lower()).strip() + " "


_WINDOWS: list[tuple[str, Window]] = [
    (r" (48|forty eight) ?h(ours?)? | (next|coming) (2|two) days | two days ", Window.NEXT_48H),
    (r" (this |the |next )?week ?end | saturday | sunday ", Window.THIS_WEEKEND),
    (r" tomorrow ", Window.TOMORROW),
    (r" yesterday ", Window.YESTERDAY),
    (r" (last|past|previous) (30 days|month|4 weeks|four weeks) | this month ", Window.LAST_30_DAYS),
    (r" (last|past|previous) (7 days|week|seven days) ", Window.LAST_7_DAYS),
    (r" (next|coming) (7 days|seven days|week) | this week ", Window.NEXT_7_DAYS),
    (r" today | tonight | now ", Window.TODAY),
]


def find_window(q: str) -> Window | None:
    for pattern, w in _WINDOWS:
        if re.search(pattern, q):
            return w
    return None


def find_stores(q: str, vocab: Vocabulary) -> list[str] | None:
    hits = [sid for sid, name in vocab.stores.items()
            if _norm(sid) in q or (name and _norm(name) in q)]
    return sorted(set(hits)) or None


def _core(name: str) -> set[str]:
    """A product name's words without sizes and counts: `Whole milk 1L` -> {whole, milk}."""
    return {t for t in _norm(name).split() if not any(c.isdigit() for c in t) and len(t) > 1}


def _tokens(q: str) -> set[str]:
    words = set(q.split())
    return words | {w[:-1] for w in words if w.endswith("s") and len(w) > 3}  # plurals: "eggs" -> "egg"


def find_skus(q: str, vocab: Vocabulary) -> list[str] | None:
    """SKU ids named literally, else whole product names, else products whose name without sizes is
    all in the question (`whole milk` finds `Whole milk 1L`; the most words matched win).
    """
    hits = [sku for sku in vocab.products if _norm(sku) in q]
    if hits:
        return sorted(set(hits))
    rest = q  # whole product names, longest first, each part of the question used once
    for sku, name in sorted(vocab.products.items(), key=lambda kv: -len(kv[1])):
        if name and _norm(name) in rest:
            hits.append(sku)
            rest = rest.replace(_norm(name), " ")
    if hits:
        return sorted(hits)
    words = _tokens(q)
    scored = [(len(core), sku) for sku, name in vocab.products.items() if (core := _core(name)) and core <= words]
    if not scored:
        return None
    best = max(n for n, _ in scored)
    return sorted(sku for n, sku in scored if n == best)


def find_category(q: str, vocab: Vocabulary) -> str | None:
    for c in sorted(vocab.categories, key=len, reverse=True):
        if c and (_norm(c) in q or _norm(c.rstrip("s")) in q or _norm(c + "s") in q):
            return c
    return None


def mentioned_ids(question: str, vocab: Vocabulary) -> tuple[list[str], list[str], list[str]]:
    """Store ids, SKUs and categories the question names (by id or name): what a model may filter on."""
    q = _norm(question)
    cat = find_category(q, vocab)
    return find_stores(q, vocab) or [], find_skus(q, vocab) or [], [cat] if cat else []


def find_limit(q: str) -> int | None:
    m = re.search(r" (top|best|first) (\d{1,3}) ", q)
    return int(m.group(2)) if m else None


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: str
    build: Callable[[dict[str, Any]], Any]


def _items(e: dict[str, Any]) -> dict[str, Any]:
    return {"stores": e["stores"], "skus": e["skus"], "category": e["category"]}


_RULES: list[_Rule] = [
    _Rule("backroom_only", r" backroom | back room | stock ?room ",
          lambda e: BackroomOnly(stores=e["stores"])),
    _Rule("stockout_risk", r" run(ning)? out | runs out | stock ?outs? | sell(ing)? out | out of stock ",
          lambda e: StockoutRisk(**_items(e), window=e["window"] or Window.NEXT_48H)),
    _Rule("restock_today", r" restock | re stock | replenish | refill | top up ",
          lambda e: RestockToday(stores=e["stores"], category=e["category"], limit=e["limit"] or 50)),
    _Rule("shelf_gaps", r" empty shel| gaps? | bare | holes? | empty spots? | shelves? (are|is) empty ",
          lambda e: ShelfGaps(stores=e["stores"])),
    _Rule("reorder_list", r" reorder | re order | order from | purchase orders? | should (i|we) order | "
          r"what (do|should) (i|we) order | order list | need to order ",
          lambda e: ReorderList(**_items(e))),
    _Rule("deliveries_due", r" deliver| arriv| shipments? | incoming | inbound ",
          lambda e: DeliveriesDue(**_items(e), window=e["window"] or Window.NEXT_7_DAYS)),
    _Rule("top_sellers", r" best sell| top sell| top \d+ | most (sold|popular)| fastest (selling|moving)| "
          r"sells? best | sold best ",
          lambda e: TopSellers(stores=e["stores"], category=e["category"],
                               window=e["past_window"] or Window.LAST_7_DAYS, limit=e["limit"] or 10)),
    _Rule("demand_forecast", r" forecast| expect(ed)? to sell | will (we )?sell | demand | predict",
          lambda e: DemandForecast(**_items(e), window=e["future_window"] or Window.NEXT_7_DAYS)),
    _Rule("sales_history", r" sold | sales | did (we )?sell | how (many|much) .*sell ",
          lambda e: SalesHistory(**_items(e), window=e["past_window"] or Window.LAST_7_DAYS)),
    _Rule("stock_value", r" value | worth | stock cost | cost of (the )?stock ",
          lambda e: StockValue(stores=e["stores"], category=e["category"])),
    _Rule("low_stock", r" low | running short | short on | below | days of cover | almost gone ",
          lambda e: LowStock(**_items(e), limit=e["limit"] or 50)),
    _Rule("stock_level", r" how (many|much) | in stock | on hand | do we have | stock level | inventory (of|for) | "
          r"left ",
          lambda e: StockLevel(**_items(e))),
]
_FUTURE = {Window.TODAY, Window.TOMORROW, Window.NEXT_48H, Window.THIS_WEEKEND, Window.NEXT_7_DAYS}


def parse_question(question: str, vocab: Vocabulary) -> Any:
    """The plan for `question`; raises `UnknownQuestion` when none fits."""
    q = _norm(question)
    window = find_window(q)
    e = {
        "stores": find_stores(q, vocab), "skus": find_skus(q, vocab), "category": find_category(q, vocab),
        "window": window, "limit": find_limit(q),
        "future_window": window if window in _FUTURE else None,
        "past_window": window if window not in _FUTURE else None,
    }
    for rule in _RULES:
        if re.search(rule.pattern, q):
            return rule.build(e)
    raise UnknownQuestion(
        f"no query plan matches {question!r}. Ask about: what to restock today, stockouts (which stores will "
        "run out of X this weekend), low stock, stock levels, empty shelves, backroom stock, reorders, demand "
        "forecasts, best sellers, sales, deliveries, or stock value."
    )


RULE_NAMES = [r.name for r in _RULES]
