"""The fixed set of query plans a plain-language question can become (never free SQL).

Each plan is a pydantic model with a literal `plan` tag; `Plan` is their discriminated union and
`plan_json_schema()` is what guided decoding constrains a language model to. A plan names stores,
SKUs and categories by id, and time as a relative `Window` that execution resolves against the
store's local "today" (so a cached plan never goes stale).

Example:
    >>> p = parse_plan({"plan": "stockout_risk", "skus": ["MILK-1L"], "window": "this_weekend"})
    >>> type(p).__name__, p.window.value
    ('StockoutRisk', 'this_weekend')
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Window(StrEnum):
    TODAY = "today"
    TOMORROW = "tomorrow"
    NEXT_48H = "next_48h"
    THIS_WEEKEND = "this_weekend"
    NEXT_7_DAYS = "next_7_days"
    YESTERDAY = "yesterday"
    LAST_7_DAYS = "last_7_days"
    LAST_30_DAYS = "last_30_days"

    def dates(self, today: date) -> tuple[date, date]:
        """First and last store-local day of the window (inclusive)."""
        if self is Window.TODAY:
            return today, today
        if self is Window.TOMORROW:
            return today + timedelta(days=1), today + timedelta(days=1)
        if self is Window.NEXT_48H:
            return today, today + timedelta(days=2)
        if self is Window.THIS_WEEKEND:
            sat = today + timedelta(days=(5 - today.weekday()) % 7) if today.weekday() != 6 else today
            return (sat, sat + timedelta(days=1)) if sat.weekday() == 5 else (sat, sat)
        if self is Window.NEXT_7_DAYS:
            return today, today + timedelta(days=6)
        if self is Window.YESTERDAY:
            return today - timedelta(days=1), today - timedelta(days=1)
        if self is Window.LAST_7_DAYS:
            return today - timedelta(days=7), today - timedelta(days=1)
        return today - timedelta(days=30), today - timedelta(days=1)


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stores: list[str] | None = Field(None, description="Store ids to look at; null = every store you may see.")


class _Items(_Plan):
    skus: list[str] | None = Field(None, description="SKU ids; null = every SKU.")
    category: str | None = Field(None, description="Only SKUs of this category.")


class RestockToday(_Plan):
    """What to restock today: shelves to refill from the backroom, orders to place, near stockouts."""

    plan: Literal["restock_today"] = "restock_today"
    category: str | None = Field(None, description="Only SKUs of this category.")
    limit: int = Field(50, ge=1, le=500)


class StockoutRisk(_Items):
    """Which stores / SKUs are expected to run out within a window."""

    plan: Literal["stockout_risk"] = "stockout_risk"
    window: Window = Field(Window.NEXT_48H, description="Run out before the end of this window.")


class LowStock(_Items):
    """SKUs whose stock is below their order-up-to level, fewest days of cover first."""

    plan: Literal["low_stock"] = "low_stock"
    limit: int = Field(50, ge=1, le=500)


class StockLevel(_Items):
    """Units on hand, on the shelf and in the backroom."""

    plan: Literal["stock_level"] = "stock_level"


class ShelfGaps(_Plan):
    """Shelf segments the cameras see (partly) empty."""

    plan: Literal["shelf_gaps"] = "shelf_gaps"
    min_gap_ratio: float = Field(0.5, ge=0, le=1, description="Only segments at least this empty.")


class BackroomOnly(_Plan):
    """Shelf empty while the backroom holds stock: refill from the backroom."""

    plan: Literal["backroom_only"] = "backroom_only"


class ReorderList(_Items):
    """Suggested supplier orders (whole packs)."""

    plan: Literal["reorder_list"] = "reorder_list"


class DemandForecast(_Items):
    """Units expected to sell in a future window."""

    plan: Literal["demand_forecast"] = "demand_forecast"
    window: Window = Field(Window.NEXT_7_DAYS)


class TopSellers(_Plan):
    """Best sellers by units in a past window."""

    plan: Literal["top_sellers"] = "top_sellers"
    category: str | None = None
    window: Window = Field(Window.LAST_7_DAYS)
    limit: int = Field(10, ge=1, le=100)


class SalesHistory(_Items):
    """Units sold in a past window."""

    plan: Literal["sales_history"] = "sales_history"
    window: Window = Field(Window.LAST_7_DAYS)


class DeliveriesDue(_Items):
    """Open deliveries expected in a window."""

    plan: Literal["deliveries_due"] = "deliveries_due"
    window: Window = Field(Window.NEXT_7_DAYS)


class StockValue(_Plan):
    """Value of the stock on hand (units x unit cost)."""

    plan: Literal["stock_value"] = "stock_value"
    category: str | None = None


Plan = Annotated[
    RestockToday | StockoutRisk | LowStock | StockLevel | ShelfGaps | BackroomOnly | ReorderList | DemandForecast
    | TopSellers | SalesHistory | DeliveriesDue | StockValue,
    Field(discriminator="plan"),
]
PLAN_TYPES: tuple[type[BaseModel], ...] = (
    RestockToday, StockoutRisk, LowStock, StockLevel, ShelfGaps, BackroomOnly, ReorderList, DemandForecast,
    TopSellers, SalesHistory, DeliveriesDue, StockValue,
)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Plan)


def parse_plan(data: dict[str, Any] | str) -> Any:
    """A plan from JSON text or a dict; raises pydantic's ValidationError naming the bad field."""
    return _ADAPTER.validate_json(data) if isinstance(data, str) else _ADAPTER.validate_python(data)


def plan_json_schema() -> dict[str, Any]:
    """The JSON schema of `Plan` as pydantic writes it (any ids, fields in declaration order, defaults optional)."""
    return _ADAPTER.json_schema()


#: Windows that make sense per plan: a stockout or a forecast looks ahead, sales look back.
FUTURE_WINDOWS = (Window.TODAY, Window.TOMORROW, Window.NEXT_48H, Window.THIS_WEEKEND, Window.NEXT_7_DAYS)
PAST_WINDOWS = (Window.TODAY, Window.YESTERDAY, Window.LAST_7_DAYS, Window.LAST_30_DAYS)
_WINDOWS_OF = {"stockout_risk": FUTURE_WINDOWS, "demand_forecast": FUTURE_WINDOWS, "deliveries_due": FUTURE_WINDOWS,
               "sales_history": PAST_WINDOWS, "top_sellers": PAST_WINDOWS}


def guided_dump(plan: BaseModel) -> dict[str, Any]:
    """A plan as `guided_schema` makes a model write it: `plan` first, then every field."""
    data = plan.model_dump(mode="json")
    return {"plan": data.pop("plan"), **data}


def guided_schema(stores: Sequence[str] = (), skus: Sequence[str] = (), categories: Sequence[str] = (),
                  max_items: int = 8, max_enum: int = 2000) -> dict[str, Any]:
    """The schema a language model is held to: stricter than `plan_json_schema`, same plans.

    Why each difference (each measured on the question table, docs/inventory.md): `plan` comes first,
    so the model picks the kind of question before any field; every field is required, in a fixed
    order, so a small model fills a form instead of choosing which keys to write; store ids, SKUs and
    categories are enums of the chain's own ids, so it cannot invent one ("Downtown" for `S1`); lists
    are bounded, so a model that repeats itself cannot run past the token budget; windows are the
    ones that make sense for the plan. Every plan it allows is valid under `Plan`. A list of more than
    `max_enum` ids is left free (a string), to keep the grammar small for very large assortments.
    """
    schema = copy.deepcopy(plan_json_schema())
    enums = {"stores": list(stores), "skus": list(skus), "category": list(categories)}
    for name, d in schema["$defs"].items():
        props = d.get("properties")
        if not props or "plan" not in props:
            continue
        tag = props["plan"]["const"]
        ordered = {"plan": props.pop("plan"), **props}
        for key, values in enums.items():
            if key not in ordered:
                continue
            item: dict[str, Any] = {"enum": values} if len(values) <= max_enum else {"type": "string"}
            if not values:  # nothing to choose from: only null
                ordered[key] = {"type": "null"}
            elif key == "category":
                ordered[key] = {"anyOf": [item, {"type": "null"}]}
            else:
                ordered[key] = {"anyOf": [{"type": "array", "items": item, "minItems": 1,
                                           "maxItems": min(max_items, len(values))}, {"type": "null"}]}
        if "window" in ordered and tag in _WINDOWS_OF:
            ordered["window"] = {"enum": [w.value for w in _WINDOWS_OF[tag]]}
        if "min_gap_ratio" in ordered:
            ordered["min_gap_ratio"] = {"enum": [0.25, 0.5, 0.75, 1.0]}
        d["properties"] = ordered
        d["required"] = list(ordered)
        schema["$defs"][name] = d
    schema.pop("discriminator", None)
    schema["anyOf"] = schema.pop("oneOf")  # the branches differ by their `plan` const: anyOf is exact here
    return schema
