"""The batch forecast of one store: read its sales and calendar from the lake, forecast every SKU,
replace the store's forecast files. Both runners call `forecast_store`: the single-process loop
here (`run_local`, the benchmark's baseline) and the Ray Data job in `deployments.inventory_batch`.

Why one work unit per store: the lake is partitioned by store, so a unit reads exactly one file and
writes its own forecast file; no shuffle, no data through the driver, and units are independent,
so the job scales with the cluster's CPUs.

Missing sales rows mean zero sales that day (POS exports list only what sold). A series starts at
its SKU's first sale in the history window and ends at the chain's `as_of` day, so every store's
forecast starts on the same day.

Example:
    >>> run = forecast_store(lake_root, "S1", BatchSettings(), "run-1", as_of)  # doctest: +SKIP
    >>> run.series  # doctest: +SKIP
    240
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from workloads.inventory.forecast import CLOSED, HOLIDAY, PROMO, SeasonalExpSmoothing
from workloads.inventory.lake import DERIVED, InventoryLake

_KIND_COL = {"promo": PROMO, "holiday": HOLIDAY, "closed": CLOSED}


@dataclass(frozen=True)
class BatchSettings:
    horizon_days: int = 14
    history_days: int = 365
    period: int = 7


@dataclass
class StoreRun:
    store_id: str
    series: int
    rows_read: int
    seconds: float
    run_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_run_id() -> str:
    return f"fc-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def chain_as_of(lake: InventoryLake) -> date | None:
    """The last day with sales anywhere in the chain: the history every forecast ends on."""
    if not lake.files("sales"):
        return None
    con = lake.connect()
    try:
        return con.sql("select max(date) from sales").fetchall()[0][0]
    finally:
        con.close()


def store_flags(calendar: pd.DataFrame, store_id: str, skus: list[str], days: pd.DatetimeIndex) -> np.ndarray:
    """(skus, days, 3) promo / holiday / closed flags from the calendar rows for this store (or `*`)."""
    flags = np.zeros((len(skus), len(days), 3), dtype=bool)
    if calendar.empty:
        return flags
    cal = calendar[(calendar["store_id"] == store_id) | (calendar["store_id"] == "*")]
    pos = {d: i for i, d in enumerate(days.date)}
    sku_pos = {s: i for i, s in enumerate(skus)}
    for sku, d, kind in zip(cal["sku"], cal["date"], cal["kind"], strict=True):
        i = pos.get(d)
        col = _KIND_COL.get(kind)
        if i is None or col is None:
            continue
        if sku == "*":
            flags[:, i, col] = True
        elif sku in sku_pos:
            flags[sku_pos[sku], i, col] = True
    return flags


def forecast_frame(
    sales: pd.DataFrame,
    calendar: pd.DataFrame,
    store_id: str,
    as_of: date,
    settings: BatchSettings,
    run_id: str,
    model: SeasonalExpSmoothing | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Forecast every SKU of one store's sales frame; returns (forecasts, series) tables."""
    model = model or SeasonalExpSmoothing()
    start = as_of - timedelta(days=settings.history_days - 1)
    s = sales[(sales["date"] >= start) & (sales["date"] <= as_of)]
    hist_days = pd.date_range(start, as_of, freq="D")
    fut_days = pd.date_range(as_of + timedelta(days=1), periods=settings.horizon_days, freq="D")
    skus = sorted(s["sku"].unique().tolist())
    qty = s.pivot_table(index="sku", columns="date", values="quantity", aggfunc="sum").reindex(
        index=skus, columns=hist_days.date).fillna(0.0).to_numpy(float) if skus else np.zeros((0, len(hist_days)))
    promo_hist = s[s["promo"].astype(bool)].pivot_table(index="sku", columns="date", values="quantity",
                                                         aggfunc="size").reindex(index=skus, columns=hist_days.date)
    all_days = hist_days.append(fut_days)
    flags = store_flags(calendar, store_id, skus, all_days)
    if skus:
        flags[:, : len(hist_days), PROMO] |= promo_hist.notna().to_numpy()
    n_hist = len(hist_days)
    now = datetime.now(UTC).replace(tzinfo=None)
    f_rows: dict[str, list[Any]] = {"store_id": [], "sku": [], "date": [], "yhat": [], "model": [], "run_id": []}
    s_rows: dict[str, list[Any]] = {k: [] for k in DERIVED["forecast_series"].names}
    for i, sku in enumerate(skus):
        y = qty[i]
        first = int(np.argmax(y > 0)) if (y > 0).any() else n_hist - 1
        y = y[first:]
        fc = model.forecast(y, settings.horizon_days, settings.period, flags[i, first:n_hist], flags[i, n_hist:])
        f_rows["store_id"] += [store_id] * settings.horizon_days
        f_rows["sku"] += [sku] * settings.horizon_days
        f_rows["date"] += list(fut_days.date)
        f_rows["yhat"] += fc.yhat.tolist()
        f_rows["model"] += [fc.model] * settings.horizon_days
        f_rows["run_id"] += [run_id] * settings.horizon_days
        for k, v in (("store_id", store_id), ("sku", sku), ("model", fc.model), ("sigma", fc.sigma),
                     ("mean_daily", float(np.mean(y[-28:]))), ("history_days", len(y)), ("last_date", as_of),
                     ("run_id", run_id), ("generated_at", now)):
            s_rows[k].append(v)
    return (pa.table(f_rows, schema=DERIVED["forecasts"]), pa.table(s_rows, schema=DERIVED["forecast_series"]))


def forecast_store(lake_root: str | Path, store_id: str, settings: BatchSettings, run_id: str, as_of: date) -> StoreRun:
    """One work unit: read the store's sales + calendar, forecast, replace its forecast files."""
    t0 = time.perf_counter()
    lake = InventoryLake(lake_root)
    sales = lake.read("sales", store_id).to_pandas()
    cal = pd.concat([lake.read("calendar", store_id).to_pandas(), lake.read("calendar", "*").to_pandas()])
    forecasts, series = forecast_frame(sales, cal, store_id, as_of, settings, run_id)
    lake.replace("forecasts", store_id, forecasts)
    lake.replace("forecast_series", store_id, series)
    return StoreRun(store_id, series.num_rows, len(sales), time.perf_counter() - t0, run_id)


def run_local(lake_root: str | Path, settings: BatchSettings, stores: list[str] | None = None,
              as_of: date | None = None, run_id: str | None = None) -> list[StoreRun]:
    """The batch in this process, store after store (the baseline of the Ray Data job)."""
    lake = InventoryLake(lake_root)
    as_of = as_of or chain_as_of(lake)
    if as_of is None:
        return []
    run_id = run_id or new_run_id()
    return [forecast_store(lake_root, s, settings, run_id, as_of) for s in (stores or lake.stores("sales"))]
