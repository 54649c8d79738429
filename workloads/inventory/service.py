"""The inventory facade the API, the CLI and the shelf cameras use: lake + Redis + config in one place.

It gathers a store's inputs (latest counts, open deliveries, forecasts with their error, shelf-gap
observations, planogram capacities) with DuckDB over the lake and from Redis, runs the pure
decision logic, publishes alerts idempotently, and answers questions by planning them and running
the plan on DuckDB. No Ray here; the batch forecast's Ray Data job lives in
`deployments.inventory_batch`.

Example:
    >>> svc = InventoryService(fleet, redis.Redis.from_url(url))  # doctest: +SKIP
    >>> svc.restock("S1").replenish_from_backroom  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import redis
from pydantic import BaseModel, Field

from workloads.config import FleetConfig, StoreConfig
from workloads.inventory.alerts import AlertKind, InventoryAlert, InventoryAlertLog
from workloads.inventory.decisions import DecisionSettings, ItemDecision, ItemInputs, alerts_for, decide
from workloads.inventory.gap_state import GapObservation, ShelfGapState
from workloads.inventory.intake import ImportReport, Progress, import_bytes, import_file
from workloads.inventory.lake import InventoryLake
from workloads.inventory.parser import Vocabulary
from workloads.inventory.planner import Planner, make_planner
from workloads.inventory.queries import run_plan, summarise
from workloads.inventory.tables import Dataset


class RestockLine(BaseModel):
    sku: str
    product_name: str = ""
    quantity: int
    reason: str


class RestockList(BaseModel):
    store_id: str
    business_date: date
    replenish_from_backroom: list[RestockLine] = Field(description="Shelf empty, stock in the backroom: move it.")
    reorder: list[RestockLine] = Field(description="Orders to place with the supplier (whole packs).")
    shelf_empty_no_stock: list[RestockLine] = Field(description="Shelf empty and nothing in the backroom.")


class StoreInventory(BaseModel):
    store_id: str
    as_of: datetime = Field(description="When the decisions were made.")
    forecast_run: str | None = Field(None, description="The batch forecast run the forecasts come from.")
    items: list[ItemDecision] = Field(description="Per SKU: stock, forecast, order suggestion, stockout risk, shelf.")
    gaps: list[GapObservation] = Field(description="Latest shelf-camera observation of every planogram segment.")
    alerts: list[InventoryAlert] = Field(description="The store's most recent inventory alerts.")


class HeatCell(BaseModel):
    store_id: str
    area: str = Field(description="Category of the SKUs (or `uncategorised`).")
    skus: int
    low: int = Field(description="SKUs at risk: stockout expected within the horizon, empty shelf, or stock at or "
                     "below safety stock.")
    share: float = Field(description="low / skus: the cell's heat.")
    empty_shelves: int
    stockouts_48h: int


class Heatmap(BaseModel):
    as_of: datetime
    stores: list[str]
    areas: list[str]
    cells: list[HeatCell]


class Answer(BaseModel):
    question: str
    planner: str = Field(description="`rules` or `llm:<model>`: who turned the question into the plan.")
    note: str = Field("", description="Why the rule parser answered instead of the model, if it did.")
    plan: dict[str, Any] = Field(description="The typed query plan that ran.")
    sql: str = Field(description="The SQL the plan ran on DuckDB (parameters bound separately).")
    params: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]]
    summary: str
    today: date


_DECISION_PLANS = {"restock_today", "stockout_risk", "low_stock", "backroom_only", "reorder_list"}


class InventoryService:
    def __init__(self, fleet: FleetConfig, client: redis.Redis, lake: InventoryLake | None = None,
                 planner: Planner | None = None, clock: Callable[[], float] = time.time) -> None:
        self.fleet, self.client, self.clock = fleet, client, clock
        self.cfg = fleet.inventory
        self.lake = lake or InventoryLake(self.cfg.lake_dir())
        self.alerts = InventoryAlertLog(client)
        self.gaps = ShelfGapState(client)
        self.planner = planner or make_planner(self.cfg.llm_planner)

    # ------------------------------------------------------------------------------------ imports

    def _zones(self) -> dict[str, str]:
        return {s.id: s.timezone for s in self.fleet.stores}

    def import_file(self, path: str | Path, dataset: Dataset, store_id: str | None = None,
                    progress: Progress | None = None) -> ImportReport:
        return import_file(self.lake, path, dataset, self.cfg.cleaning, self._zones(), store_id, progress)

    def import_upload(self, body: bytes, fmt: str, dataset: Dataset, source: str, store_id: str) -> ImportReport:
        report = import_bytes(self.lake, body, fmt, dataset, source, self.cfg.cleaning, self._zones(), store_id)
        if report.stored.new or report.stored.updated:
            self.evaluate([store_id])  # a new count changes what to do now
        return report

    # ------------------------------------------------------------------------------------ decisions

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def settings(self, store: StoreConfig) -> DecisionSettings:
        c = self.cfg
        return DecisionSettings(
            service_level=store.inventory.service_level or c.service_level, review_period_days=c.review_period_days,
            default_lead_time_days=c.default_lead_time_days, stockout_horizon_h=c.stockout_horizon_h,
            stockout_probability=c.stockout_probability, gap_alert_ratio=c.gap_alert_ratio, timezone=store.timezone,
        )

    def _frames(self, store_ids: list[str]) -> dict[str, pd.DataFrame]:
        con = self.lake.connect()
        try:
            p = {"stores": store_ids}
            q = {
                "stock": "select * from latest_stock where list_contains($stores, store_id)",
                "series": "select * from forecast_series where list_contains($stores, store_id)",
                "forecasts": "select store_id, sku, date, yhat from forecasts where list_contains($stores, store_id)",
                "deliveries": "select store_id, sku, expected_at, quantity from deliveries "
                              "where list_contains($stores, store_id) and status = 'expected'",
            }
            return {k: con.execute(sql, p).df() for k, sql in q.items()}
        finally:
            con.close()

    def item_inputs(self, store_ids: Iterable[str], now: datetime | None = None) -> dict[str, list[ItemInputs]]:
        """Every counted SKU of each store, with its forecast aligned to the store-local today."""
        now = now or self.now()
        ids = list(store_ids)
        f = self._frames(ids)
        out: dict[str, list[ItemInputs]] = {s: [] for s in ids}
        fc = {k: pd.Series(g["yhat"].to_numpy(), index=pd.to_datetime(g["date"]).dt.date)
              for k, g in f["forecasts"].groupby(["store_id", "sku"])}
        series = {(r.store_id, r.sku): r for r in f["series"].itertuples()}
        dels: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        for r in f["deliveries"].itertuples():
            dels.setdefault((r.store_id, r.sku), []).append((pd.Timestamp(r.expected_at).to_pydatetime(),
                                                            float(r.quantity)))
        for store_id in ids:
            store = self.fleet.store(store_id)
            today = now.astimezone(ZoneInfo(store.timezone)).date()
            gaps = self.gaps.get(store_id)
            by_sku: dict[str, list[GapObservation]] = {}
            for g in gaps.values():
                by_sku.setdefault(g.sku, []).append(g)
            capacity: dict[str, int | None] = {}
            for seg in store.inventory.planogram:
                prev = capacity.get(seg.sku, 0)
                capacity[seg.sku] = None if prev is None or seg.capacity_units is None else prev + seg.capacity_units
            for r in f["stock"][f["stock"]["store_id"] == store_id].itertuples():
                key = (store_id, r.sku)
                ser = series.get(key)
                daily = _aligned(fc.get(key), today, float(ser.mean_daily) if ser is not None else None,
                                 self.cfg.horizon_days)
                obs = by_sku.get(r.sku)
                out[store_id].append(ItemInputs(
                    sku=r.sku, product_name=r.product_name or "", category=r.category or "",
                    on_hand=float(r.on_hand), snapshot_at=pd.Timestamp(r.snapshot_at).to_pydatetime(),
                    shelf_units=_num(r.shelf_units), backroom_units=_num(r.backroom_units),
                    lead_time_days=_num(r.lead_time_days), pack_size=int(_num(r.pack_size) or 1),
                    min_order_units=int(_num(r.min_order_units) or 0), unit_cost=_num(r.unit_cost),
                    daily_forecast=daily, sigma=float(ser.sigma) if ser is not None else 0.0,
                    deliveries=dels.get(key, []),
                    gap=max(obs, key=lambda g: g.gap_ratio) if obs else None,
                    shelf_capacity=capacity.get(r.sku),
                ))
        return out

    def decisions(self, store_ids: Iterable[str], now: datetime | None = None) -> dict[str, list[ItemDecision]]:
        now = now or self.now()
        inputs = self.item_inputs(store_ids, now)
        return {s: [decide(i, now, self.settings(self.fleet.store(s))) for i in items]
                for s, items in inputs.items()}

    def evaluate(self, store_ids: Iterable[str] | None = None, now: datetime | None = None,
                 publish: bool = True) -> dict[str, list[InventoryAlert]]:
        """Decide for every SKU of the stores and publish the alerts; returns the alerts that were new."""
        now = now or self.now()
        ids = list(store_ids) if store_ids is not None else [s.id for s in self.fleet.stores]
        out: dict[str, list[InventoryAlert]] = {}
        for store_id, decisions in self.decisions(ids, now).items():
            alerts = alerts_for(store_id, decisions, now, self.fleet.store(store_id).timezone)
            if publish:
                new = set(self.alerts.publish(alerts))
                alerts = [a for a in alerts if a.alert_id in new]
            out[store_id] = alerts
        return out

    def on_shelf_gaps(self, observations: list[GapObservation], now: datetime | None = None) -> list[str]:
        """A shelf camera's observations: store them, then raise the shelf alerts of the SKUs they show empty."""
        if not observations:
            return []
        self.gaps.put(observations)
        empty = {o.sku for o in observations if o.gap_ratio >= self.cfg.gap_alert_ratio}
        if not empty:
            return []
        store_id = observations[0].store_id
        now = now or self.now()
        decisions = [d for d in self.decisions([store_id], now)[store_id] if d.sku in empty]
        shelf_kinds = {AlertKind.REPLENISH_FROM_BACKROOM, AlertKind.SHELF_EMPTY_NO_STOCK}
        alerts = [a for a in alerts_for(store_id, decisions, now, self.fleet.store(store_id).timezone)
                  if a.kind in shelf_kinds]
        return self.alerts.publish(alerts)

    # ------------------------------------------------------------------------------------ views

    def store_view(self, store_id: str, now: datetime | None = None, alerts: int = 50) -> StoreInventory:
        now = now or self.now()
        run = None
        con = self.lake.connect()
        try:
            rows = con.execute("select any_value(run_id) from forecast_series where store_id = $s",
                               {"s": store_id}).fetchall()
            run = rows[0][0] if rows else None
        finally:
            con.close()
        return StoreInventory(store_id=store_id, as_of=now, forecast_run=run,
                              items=self.decisions([store_id], now)[store_id],
                              gaps=sorted(self.gaps.get(store_id).values(), key=lambda g: g.segment_id),
                              alerts=self.alerts.recent(store_id, alerts))

    def restock(self, store_id: str, now: datetime | None = None) -> RestockList:
        now = now or self.now()
        store = self.fleet.store(store_id)
        rep, order, none = [], [], []
        for d in self.decisions([store_id], now)[store_id]:
            if AlertKind.REPLENISH_FROM_BACKROOM in d.actions:
                rep.append(RestockLine(sku=d.sku, product_name=d.product_name, quantity=d.replenish_units,
                                       reason=f"shelf empty, {d.backroom_units:.0f} in the backroom"))
            if AlertKind.SHELF_EMPTY_NO_STOCK in d.actions:
                none.append(RestockLine(sku=d.sku, product_name=d.product_name, quantity=d.order_units,
                                        reason="shelf empty, no backroom stock"))
            if d.order_units > 0:
                why = (f"may run out by {d.stockout_at:%a %H:%M} UTC" if AlertKind.STOCKOUT_48H in d.actions and
                       d.stockout_at else f"stock {d.on_hand_now:.0f} + on order {d.on_order:.0f} below "
                       f"{d.order_up_to:.0f}")
                order.append(RestockLine(sku=d.sku, product_name=d.product_name, quantity=d.order_units, reason=why))
        return RestockList(store_id=store_id, business_date=now.astimezone(ZoneInfo(store.timezone)).date(),
                           replenish_from_backroom=rep, reorder=order, shelf_empty_no_stock=none)

    def heatmap(self, store_ids: Iterable[str] | None = None, now: datetime | None = None) -> Heatmap:
        now = now or self.now()
        ids = list(store_ids) if store_ids is not None else [s.id for s in self.fleet.stores]
        cells = []
        for store_id, decisions in self.decisions(ids, now).items():
            by_area: dict[str, list[ItemDecision]] = {}
            for d in decisions:
                by_area.setdefault(d.category or "uncategorised", []).append(d)
            for area, items in sorted(by_area.items()):
                low = [d for d in items if AlertKind.STOCKOUT_48H in d.actions or d.shelf_empty
                       or d.on_hand_now <= d.safety_stock]
                cells.append(HeatCell(
                    store_id=store_id, area=area, skus=len(items), low=len(low), share=len(low) / len(items),
                    empty_shelves=sum(d.shelf_empty for d in items),
                    stockouts_48h=sum(AlertKind.STOCKOUT_48H in d.actions for d in items)))
        return Heatmap(as_of=now, stores=ids, areas=sorted({c.area for c in cells}), cells=cells)

    # ------------------------------------------------------------------------------------ questions

    def vocabulary(self, store_ids: list[str]) -> Vocabulary:
        con = self.lake.connect()
        try:
            rows = con.execute("select sku, any_value(product_name), any_value(category) from latest_stock "
                               "where list_contains($s, store_id) group by sku order by sku",
                               {"s": store_ids}).fetchall()
        finally:
            con.close()
        # every store's name (a store key asking about another store gets an empty answer that says so,
        # not its own store's rows); products of the stores the caller may read
        return Vocabulary(stores={s.id: s.name for s in self.fleet.stores},
                          products={sku: name or "" for sku, name, _ in rows},
                          categories={c for _, _, c in rows if c})

    def ask(self, question: str, allowed_stores: list[str] | None = None, now: datetime | None = None) -> Answer:
        """Plan the question (model or rules), run the plan on DuckDB, and show the plan with the rows."""
        now = now or self.now()
        allowed = allowed_stores if allowed_stores is not None else [s.id for s in self.fleet.stores]
        tz = self.fleet.store(allowed[0]).timezone if allowed else "UTC"
        today = now.astimezone(ZoneInfo(tz)).date()
        planned = self.planner.plan(question, self.vocabulary(allowed), today)
        plan = planned.plan
        scope = [s for s in (plan.stores or allowed) if s in set(allowed)]
        denied = [s for s in (plan.stores or []) if s not in set(allowed)]
        note = planned.note
        if denied:
            note = (note + "; " if note else "") + f"left out stores this key may not read: {', '.join(denied)}"
        extra: dict[str, pa.Table] = {}
        if plan.plan in _DECISION_PLANS:
            extra["decisions"] = _decisions_table(self.decisions(scope, now))
        else:
            extra["decisions"] = _decisions_table({})
        extra["gaps"] = _gaps_table([g for s in scope for g in self.gaps.get(s).values()])
        con = self.lake.connect(extra)
        try:
            result = run_plan(con, plan, allowed, today)
        finally:
            con.close()
        return Answer(question=question, planner=planned.planner, note=note,
                      plan=plan.model_dump(mode="json"), sql=result.sql, params=_jsonable(result.params),
                      columns=result.columns, rows=[_jsonable(r) for r in result.rows],
                      summary=summarise(plan, result, today), today=today)


def _aligned(fc: pd.Series | None, today: date, mean_daily: float | None, horizon: int) -> list[float]:
    """Daily forecast from `today` on; days the batch did not forecast (before its first day) use the recent mean."""
    if fc is None or fc.empty:
        return [mean_daily] * horizon if mean_daily else []
    days = [today + timedelta(days=i) for i in range(horizon)]
    last = max(fc.index)
    out = []
    for d in days:
        if d in fc.index:
            out.append(float(fc[d]))
        elif d > last:
            break
        else:
            out.append(float(mean_daily) if mean_daily is not None else float(fc.iloc[0]))
    if not out and mean_daily:  # forecasts older than today: the recent mean beats nothing
        return [mean_daily] * horizon
    return out


def _num(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _decisions_table(decisions: dict[str, list[ItemDecision]]) -> pa.Table:
    rows = [{"store_id": s, **d.model_dump(mode="python")} for s, ds in decisions.items() for d in ds]
    schema = pa.schema([
        ("store_id", pa.string()), ("sku", pa.string()), ("product_name", pa.string()), ("category", pa.string()),
        ("on_hand", pa.float64()), ("on_hand_now", pa.float64()), ("shelf_units", pa.float64()),
        ("backroom_units", pa.float64()), ("on_order", pa.float64()), ("forecast_7d", pa.float64()),
        ("safety_stock", pa.float64()), ("order_up_to", pa.float64()), ("order_units", pa.int64()),
        ("packs", pa.int64()), ("pack_size", pa.int64()), ("stockout_probability", pa.float64()),
        ("stockout_at", pa.timestamp("us")), ("runout_at", pa.timestamp("us")),
        ("runout_date", pa.date32()), ("cover_days", pa.float64()), ("gap_ratio", pa.float64()),
        ("shelf_empty", pa.bool_()), ("replenish_units", pa.int64()), ("actions", pa.list_(pa.string())),
    ])
    cols = {f.name: [_naive(r.get(f.name)) for r in rows] for f in schema}
    cols["actions"] = [[str(a) for a in r["actions"]] for r in rows]
    return pa.table(cols, schema=schema)


def _gaps_table(gaps: list[GapObservation]) -> pa.Table:
    schema = pa.schema([
        ("store_id", pa.string()), ("camera_id", pa.string()), ("segment_id", pa.string()), ("sku", pa.string()),
        ("facings", pa.int64()), ("empty_facings", pa.list_(pa.int64())), ("gap_ratio", pa.float64()),
        ("observed_at", pa.timestamp("us")),
    ])
    rows = [g.model_dump() for g in gaps]
    return pa.table({f.name: [_naive(r[f.name]) for r in rows] for f in schema}, schema=schema)


def _naive(v: Any) -> Any:
    """Aware datetimes as naive UTC: DuckDB's TIMESTAMPTZ results would need pytz."""
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, float) and v != v:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v
