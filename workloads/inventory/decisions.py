"""What a store should do about each SKU now: reorder, expect a stockout, refill the shelf from the backroom.

Inputs per SKU are the latest stock count, open deliveries, the daily forecast and its error, and
the latest shelf-camera gap observation of the SKU's planogram segments. Decisions are made at
`now` (store-local days for the forecast):

- the stock at `now` is the count minus the demand expected since it was taken (plus deliveries
  due in between), so an old morning count is not read as the evening's stock;
- **reorder** (`reorder.reorder`): order-up-to policy with safety stock, in whole packs;
- **stockout within the horizon** (`reorder.stockout_risk`): the chance that demand exceeds stock
  plus the deliveries that arrive in time;
- **shelf vs backroom**: the shelf is empty when the camera sees a gap ratio of at least
  `gap_alert_ratio` (newer than the count), or else when the count says 0 on the shelf. Empty with
  backroom stock is *replenish from backroom* (a job for staff, not the supplier); empty with no
  backroom stock is *shelf empty, no stock*.

Each decision that calls for action becomes an `InventoryAlert` (one per kind, SKU and store day).

Example:
    >>> item = ItemInputs(sku="A", on_hand=30, shelf_units=0, backroom_units=30, snapshot_at=NOW,
    ...                   daily_forecast=[4.0] * 7, sigma=1.0)
    >>> [str(a) for a in decide(item, NOW, DecisionSettings()).actions]
    ['REPLENISH_FROM_BACKROOM']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from workloads.inventory.alerts import AlertKind, InventoryAlert
from workloads.inventory.gap_state import GapObservation
from workloads.inventory.reorder import demand_over, hours_until_empty, reorder, stockout_risk

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # for examples


@dataclass(frozen=True)
class DecisionSettings:
    service_level: float = 0.95
    review_period_days: float = 1.0
    default_lead_time_days: float = 2.0
    stockout_horizon_h: float = 48.0
    stockout_probability: float = 0.5
    gap_alert_ratio: float = 0.5
    timezone: str = "UTC"


@dataclass
class ItemInputs:
    sku: str
    on_hand: float
    snapshot_at: datetime  #: when the count was taken (aware, or naive UTC)
    daily_forecast: Sequence[float] = ()  #: expected units per store-local day, day 0 = the day of `now`
    sigma: float = 0.0  #: one-day forecast error std
    shelf_units: float | None = None
    backroom_units: float | None = None
    lead_time_days: float | None = None
    pack_size: int = 1
    min_order_units: int = 0
    unit_cost: float | None = None
    product_name: str = ""
    category: str = ""
    deliveries: list[tuple[datetime, float]] = field(default_factory=list)  #: open: (expected at, units)
    gap: GapObservation | None = None
    shelf_capacity: int | None = None  #: units the SKU's planogram segments hold when full


class ItemDecision(BaseModel):
    sku: str
    product_name: str = ""
    category: str = ""
    on_hand: float = Field(description="Units at the last count.")
    on_hand_now: float = Field(description="Estimated units now (count minus expected sales since, plus arrivals).")
    shelf_units: float | None = None
    backroom_units: float | None = None
    on_order: float = Field(0.0, description="Units in open deliveries.")
    counted_at: datetime
    forecast_today: float = Field(0.0, description="Expected units sold in the rest of today.")
    forecast_7d: float = Field(0.0, description="Expected units sold in the next 7 days.")
    sigma: float = 0.0
    lead_time_days: float
    safety_stock: float = 0.0
    order_up_to: float = 0.0
    order_units: int = Field(0, description="Suggested supplier order (whole packs); 0 = none.")
    packs: int = 0
    pack_size: int = 1
    stockout_probability: float = Field(0.0, description="Chance of running out within the stockout horizon.")
    stockout_at: datetime | None = Field(None, description="When the expected stock reaches 0, if in the horizon.")
    runout_at: datetime | None = Field(None, description="When the expected stock reaches 0 within the forecast.")
    runout_date: date | None = Field(None, description="Store-local day of `runout_at`.")
    cover_days: float | None = Field(None, description="Days the stock now lasts at the next week's mean demand.")
    gap_ratio: float | None = Field(None, description="Latest camera gap ratio of the SKU's shelf segments.")
    shelf_empty: bool = False
    replenish_units: int = Field(0, description="Units to move from the backroom to the shelf.")
    stock_value: float | None = None
    actions: list[AlertKind] = Field(default_factory=list)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def day_fraction(now: datetime, tz: str) -> float:
    """How far into its store-local day `now` is (0 at midnight)."""
    local = _utc(now).astimezone(ZoneInfo(tz))
    return (local.hour * 3600 + local.minute * 60 + local.second) / 86400


def decide(item: ItemInputs, now: datetime, s: DecisionSettings) -> ItemDecision:
    now = _utc(now)
    counted = _utc(item.snapshot_at)
    frac = day_fraction(now, s.timezone)
    daily = list(item.daily_forecast)
    lead = item.lead_time_days if item.lead_time_days is not None else s.default_lead_time_days
    open_deliveries = [(_utc(t), q) for t, q in item.deliveries if q > 0]
    # stock now: the count minus what sold since (its day fractions), plus what arrived since
    since_h = max((now - counted).total_seconds() / 3600, 0.0)
    sold_since = 0.0
    if since_h > 0 and daily:
        back_days = since_h / 24
        # forecast day 0 is today; the count may be from earlier today or a previous day (use today's rate)
        sold_since = demand_over([daily[0]], back_days, 0.0)
    arrived = sum(q for t, q in open_deliveries if counted < t <= now)
    on_hand_now = max(item.on_hand - sold_since + arrived, 0.0)
    future = [((t - now).total_seconds() / 3600, q) for t, q in open_deliveries if t > now]
    late = sum(q for t, q in open_deliveries if t <= counted)  # due before the count but still open
    on_order = sum(q for _, q in future) + late
    d = ItemDecision(
        sku=item.sku, product_name=item.product_name, category=item.category, on_hand=item.on_hand,
        on_hand_now=round(on_hand_now, 3), shelf_units=item.shelf_units, backroom_units=item.backroom_units,
        on_order=on_order, counted_at=counted, sigma=item.sigma, lead_time_days=lead, pack_size=item.pack_size,
        stock_value=item.on_hand * item.unit_cost if item.unit_cost is not None else None,
    )
    if daily:
        d.forecast_today = demand_over(daily, 1 - frac, frac)
        d.forecast_7d = demand_over(daily, 7, frac)
        plan = reorder(on_hand_now, on_order, daily, item.sigma, lead, s.review_period_days, s.service_level,
                       item.pack_size, item.min_order_units, frac)
        d.safety_stock, d.order_up_to = plan.safety_stock, plan.order_up_to
        d.order_units, d.packs = plan.order_units, plan.packs
        risk = stockout_risk(on_hand_now, daily, item.sigma, s.stockout_horizon_h, future, frac)
        d.stockout_probability = risk.probability
        if risk.expected_at_h is not None:
            d.stockout_at = now + timedelta(hours=risk.expected_at_h)
        runout_h = hours_until_empty(on_hand_now, daily, (len(daily) - frac) * 24, future, frac)
        if runout_h is not None:
            d.runout_at = now + timedelta(hours=runout_h)
            d.runout_date = d.runout_at.astimezone(ZoneInfo(s.timezone)).date()
        rate = d.forecast_7d / 7
        d.cover_days = on_hand_now / rate if rate > 0 else None
        if d.order_units > 0:
            d.actions.append(AlertKind.REORDER)
        if risk.probability >= s.stockout_probability and risk.expected_demand > 0:
            d.actions.append(AlertKind.STOCKOUT_48H)
    _shelf(item, d, counted, s)
    return d


def _shelf(item: ItemInputs, d: ItemDecision, counted: datetime, s: DecisionSettings) -> None:
    gap = item.gap
    if gap is not None and _utc(gap.observed_at) >= counted:
        d.gap_ratio = gap.gap_ratio
        d.shelf_empty = gap.gap_ratio >= s.gap_alert_ratio
        missing = math.ceil(item.shelf_capacity * gap.gap_ratio) if item.shelf_capacity else None
    else:
        d.gap_ratio = gap.gap_ratio if gap is not None else None
        d.shelf_empty = item.shelf_units is not None and item.shelf_units <= 0
        missing = item.shelf_capacity - int(item.shelf_units or 0) if item.shelf_capacity else None
    if not d.shelf_empty:
        return
    backroom = item.backroom_units if item.backroom_units is not None else None
    if backroom is not None and backroom > 0:
        d.replenish_units = int(min(backroom, missing) if missing else backroom)
        d.actions.append(AlertKind.REPLENISH_FROM_BACKROOM)
    elif backroom is not None or d.on_hand_now <= 0:
        d.actions.append(AlertKind.SHELF_EMPTY_NO_STOCK)


def business_date(now: datetime, tz: str) -> date:
    return _utc(now).astimezone(ZoneInfo(tz)).date()


def alerts_for(store_id: str, decisions: Sequence[ItemDecision], now: datetime, tz: str) -> list[InventoryAlert]:
    """One alert per action of each decision, keyed by the store-local day."""
    day = business_date(now, tz)
    out = []
    for d in decisions:
        name = d.product_name or d.sku
        for kind in d.actions:
            if kind is AlertKind.REORDER:
                msg = (f"Order {d.order_units} x {name} ({d.packs} pack(s) of {d.pack_size}): stock "
                       f"{d.on_hand_now:.0f} + on order {d.on_order:.0f} is below the order-up-to level "
                       f"{d.order_up_to:.0f}")
                qty = d.order_units
            elif kind is AlertKind.STOCKOUT_48H:
                when = f"around {d.stockout_at:%a %H:%M} UTC" if d.stockout_at else "soon"
                msg = (f"{name} is likely to run out {when} (chance {d.stockout_probability:.0%}); "
                       f"{d.on_hand_now:.0f} left, {d.forecast_7d:.0f} expected to sell in 7 days")
                qty = None
            elif kind is AlertKind.REPLENISH_FROM_BACKROOM:
                msg = (f"Shelf of {name} is empty but the backroom holds {d.backroom_units:.0f}: "
                       f"move {d.replenish_units} to the shelf")
                qty = d.replenish_units
            else:
                msg = f"Shelf of {name} is empty and there is no backroom stock: order or recount"
                qty = d.order_units or None
            details = {"on_hand": d.on_hand, "on_hand_now": d.on_hand_now, "on_order": d.on_order,
                       "shelf_units": d.shelf_units, "backroom_units": d.backroom_units, "gap_ratio": d.gap_ratio,
                       "stockout_probability": round(d.stockout_probability, 4),
                       "stockout_at": d.stockout_at.isoformat() if d.stockout_at else None,
                       "order_up_to": round(d.order_up_to, 2), "safety_stock": round(d.safety_stock, 2)}
            out.append(InventoryAlert.make(store_id, d.sku, kind, day, msg, qty, details, created_at=_utc(now)))
    return out
