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
    """The JSON schema of `Plan`, for guided decoding (vLLM `guided_json` / `response_format`)."""
    return _ADAPTER.json_schema()
