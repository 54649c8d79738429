"""Running a plan on DuckDB: one fixed, parameterised SQL template per plan type.

The connection (`InventoryLake.connect`) has a view per lake table (`sales`, `latest_stock`,
`deliveries`, `forecasts`, ...) plus two tables registered for the question: `decisions` (per store
x SKU: stock now, order suggestion, run-out time, shelf state; from `decisions.decide`) and `gaps`
(the shelf cameras' latest observations). Values from the plan only ever reach SQL as bound
parameters; the SQL text comes from this module alone.

Example:
    >>> sql, params = plan_sql(ShelfGaps(stores=["S1"]), ["S1", "S2"], date(2026, 3, 2))
    >>> params["stores"], params["min_gap"]
    (['S1'], 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

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
)

_SCOPE = "list_contains($stores, store_id)"
_SKUS = "($skus is null or list_contains($skus, sku))"
_CAT = "($category is null or lower(category) = lower($category))"


@dataclass
class PlanResult:
    columns: list[str]
    rows: list[dict[str, Any]]
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def _scope(plan: Any, allowed: list[str]) -> list[str]:
    """The stores a plan may read: those it names, within those the caller may see."""
    if plan.stores is None:
        return list(allowed)
    return [s for s in plan.stores if s in set(allowed)]


def plan_sql(plan: Any, allowed_stores: list[str], today: date) -> tuple[str, dict[str, Any]]:
    """The SQL text and parameters of a plan (stores restricted to `allowed_stores`)."""
    p: dict[str, Any] = {"stores": _scope(plan, allowed_stores)}
    if isinstance(plan, RestockToday):
        p |= {"category": plan.category, "limit": plan.limit}
        sql = f"""
select store_id, sku, product_name, action, quantity, reason from (
  select store_id, sku, product_name, category, 0 as prio, 'replenish_from_backroom' as action,
         replenish_units as quantity, 'shelf empty, ' || cast(backroom_units as bigint) || ' in the backroom' as reason
  from decisions where list_contains(actions, 'REPLENISH_FROM_BACKROOM')
  union all
  select store_id, sku, product_name, category, 1, 'order', order_units,
         'expected to run out ' || coalesce(strftime(runout_at, '%a %H:%M'), 'soon')
  from decisions where list_contains(actions, 'STOCKOUT_48H') and order_units > 0
  union all
  select store_id, sku, product_name, category, 2, 'order', order_units,
         'below order-up-to level ' || cast(round(order_up_to) as bigint)
  from decisions where order_units > 0 and not list_contains(actions, 'STOCKOUT_48H')
  union all
  select store_id, sku, product_name, category, 3, 'check_shelf', null, 'shelf empty and no backroom stock'
  from decisions where list_contains(actions, 'SHELF_EMPTY_NO_STOCK')
) where {_SCOPE} and {_CAT} order by prio, store_id, sku limit $limit"""
    elif isinstance(plan, StockoutRisk):
        start, end = plan.window.dates(today)
        p |= {"skus": plan.skus, "category": plan.category, "end": end}
        sql = f"""
select store_id, sku, product_name, round(on_hand_now, 1) as on_hand_now, on_order, runout_at, runout_date,
       round(stockout_probability, 3) as stockout_probability_48h
from decisions where {_SCOPE} and {_SKUS} and {_CAT} and runout_date is not null and runout_date <= $end
order by runout_at, store_id, sku"""
    elif isinstance(plan, LowStock):
        p |= {"skus": plan.skus, "category": plan.category, "limit": plan.limit}
        sql = f"""
select store_id, sku, product_name, round(on_hand_now, 1) as on_hand_now, on_order,
       round(order_up_to, 1) as order_up_to, round(cover_days, 1) as cover_days
from decisions where {_SCOPE} and {_SKUS} and {_CAT} and on_hand_now + on_order < order_up_to
order by cover_days nulls last, store_id, sku limit $limit"""
    elif isinstance(plan, StockLevel):
        p |= {"skus": plan.skus, "category": plan.category}
        sql = f"""
select store_id, sku, product_name, on_hand, shelf_units, backroom_units, snapshot_at as counted_at
from latest_stock where {_SCOPE} and {_SKUS} and {_CAT} order by store_id, sku"""
    elif isinstance(plan, ShelfGaps):
        p |= {"min_gap": plan.min_gap_ratio}
        sql = f"""
select store_id, segment_id, sku, camera_id, round(gap_ratio, 3) as gap_ratio, facings, empty_facings, observed_at
from gaps where {_SCOPE} and gap_ratio >= $min_gap order by gap_ratio desc, store_id, segment_id"""
    elif isinstance(plan, BackroomOnly):
        sql = f"""
select store_id, sku, product_name, backroom_units, replenish_units, gap_ratio
from decisions where {_SCOPE} and list_contains(actions, 'REPLENISH_FROM_BACKROOM') order by store_id, sku"""
    elif isinstance(plan, ReorderList):
        p |= {"skus": plan.skus, "category": plan.category}
        sql = f"""
select store_id, sku, product_name, order_units, packs, pack_size, round(on_hand_now, 1) as on_hand_now, on_order,
       round(order_up_to, 1) as order_up_to
from decisions where {_SCOPE} and {_SKUS} and {_CAT} and order_units > 0 order by store_id, sku"""
    elif isinstance(plan, DemandForecast):
        start, end = plan.window.dates(today)
        p |= {"skus": plan.skus, "category": plan.category, "start": start, "end": end}
        sql = """
select f.store_id, f.sku, any_value(s.product_name) as product_name, round(sum(f.yhat), 1) as expected_units,
       min(f.date) as first_day, max(f.date) as last_day
from forecasts f left join latest_stock s using (store_id, sku)
where list_contains($stores, f.store_id) and ($skus is null or list_contains($skus, f.sku))
  and ($category is null or lower(s.category) = lower($category)) and f.date between $start and $end
group by f.store_id, f.sku order by expected_units desc, f.store_id, f.sku"""
    elif isinstance(plan, TopSellers):
        start, end = plan.window.dates(today)
        p |= {"category": plan.category, "start": start, "end": end, "limit": plan.limit}
        sql = """
select x.sku, any_value(s.product_name) as product_name, sum(x.quantity) as units
from sales x left join latest_stock s using (store_id, sku)
where list_contains($stores, x.store_id) and x.date between $start and $end
  and ($category is null or lower(s.category) = lower($category))
group by x.sku order by units desc, x.sku limit $limit"""
    elif isinstance(plan, SalesHistory):
        start, end = plan.window.dates(today)
        p |= {"skus": plan.skus, "category": plan.category, "start": start, "end": end}
        sql = """
select x.store_id, x.sku, any_value(s.product_name) as product_name, sum(x.quantity) as units,
       count(*) filter (where x.quantity > 0) as days_with_sales
from sales x left join latest_stock s using (store_id, sku)
where list_contains($stores, x.store_id) and ($skus is null or list_contains($skus, x.sku))
  and ($category is null or lower(s.category) = lower($category)) and x.date between $start and $end
group by x.store_id, x.sku order by units desc, x.store_id, x.sku"""
    elif isinstance(plan, DeliveriesDue):
        start, end = plan.window.dates(today)
        p |= {"skus": plan.skus, "category": plan.category, "start": start, "end": end}
        sql = """
select d.store_id, d.sku, any_value(s.product_name) as product_name, d.delivery_id, d.expected_at, d.quantity
from deliveries d left join latest_stock s using (store_id, sku)
where list_contains($stores, d.store_id) and ($skus is null or list_contains($skus, d.sku))
  and ($category is null or lower(s.category) = lower($category)) and d.status = 'expected'
  and cast(d.expected_at as date) between $start and $end
group by all order by d.expected_at, d.store_id, d.sku"""
    elif isinstance(plan, StockValue):
        p |= {"category": plan.category}
        sql = f"""
select store_id, coalesce(nullif(category, ''), 'uncategorised') as category, sum(on_hand) as units,
       round(sum(on_hand * unit_cost), 2) as value
from latest_stock where {_SCOPE} and {_CAT} group by all order by store_id, value desc"""
    else:
        raise TypeError(f"no SQL for plan {type(plan).__name__}")
    return sql.strip(), p


def run_plan(con: duckdb.DuckDBPyConnection, plan: Any, allowed_stores: list[str], today: date) -> PlanResult:
    sql, params = plan_sql(plan, allowed_stores, today)
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return PlanResult(cols, rows, sql, params)


def summarise(plan: Any, result: PlanResult, today: date) -> str:
    """One sentence for the answer (the rows carry the detail)."""
    n = len(result.rows)
    tag = plan.plan
    if n == 0:
        return {"restock_today": "Nothing needs restocking today.",
                "stockout_risk": "No stockout expected in that window.",
                "shelf_gaps": "No empty shelves seen.",
                "backroom_only": "No empty shelf has stock waiting in the backroom.",
                "reorder_list": "Nothing to reorder."}.get(tag, "No matching data.")
    if tag == "stockout_risk":
        stores = sorted({r["store_id"] for r in result.rows})
        _, end = plan.window.dates(today)
        return f"{n} item(s) in {len(stores)} store(s) expected to run out by {end:%a %Y-%m-%d}: {', '.join(stores)}."
    if tag == "restock_today":
        moves = sum(1 for r in result.rows if r["action"] == "replenish_from_backroom")
        orders = sum(1 for r in result.rows if r["action"] == "order")
        return f"{moves} shelf refill(s) from the backroom and {orders} order(s) today."
    if tag == "demand_forecast":
        total = sum(r["expected_units"] or 0 for r in result.rows)
        return f"About {total:.0f} units expected to sell ({n} store x SKU rows)."
    if tag == "stock_value":
        return f"Stock on hand is worth {sum(r['value'] or 0 for r in result.rows):,.2f}."
    return f"{n} row(s)."
