"""A synthetic retail chain with known demand: sales, calendar, stock snapshots and deliveries.

Real data with promotions per store x SKU does not ship anywhere we can reach, so this generator
makes series whose structure is known: a per-SKU base rate, a store size factor, a weekly profile
by category, a slow random-walk drift, promotions (per SKU, with a true uplift), chain holidays
(with uplift) and closed days (no sales), and gamma-Poisson (over-dispersed) noise. The calendar it
returns covers the history *and* the days after it (promotions are planned in advance), so a
backtest can give models the same information a store has.

Files it writes (`write_csvs`) are in the import formats of `tables`, so the demo and the
benchmarks go through the same import path as real files.

Example:
    >>> chain = make_chain(["S1", "S2"], skus=3, days=56, seed=1)
    >>> sorted(chain.sales.columns)
    ['date', 'promo', 'quantity', 'sku', 'store_id']
    >>> len(chain.sales) == 2 * 3 * 56
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.inventory.lake import InventoryLake

NAMES = {
    "dairy": ["Whole milk 1L", "Semi-skimmed milk 2L", "Greek yogurt 500g", "Cheddar 400g", "Butter 250g",
              "Double cream 300ml", "Oat milk 1L", "Mozzarella 125g", "Free-range eggs 12", "Skyr 450g"],
    "snacks": ["Salted crisps 150g", "Tortilla chips 200g", "Dark chocolate 100g", "Salted peanuts 200g",
               "Oat biscuits 300g", "Popcorn 100g", "Rice cakes 130g", "Cereal bars 6x25g", "Pretzels 175g",
               "Gummy bears 200g"],
    "household": ["Washing-up liquid 500ml", "Kitchen roll 2x", "Toilet tissue 9x", "Bin bags 20x",
                  "Laundry pods 24x", "Dishwasher tablets 30x", "Glass cleaner 750ml", "Sponges 4x",
                  "Hand soap 250ml", "Bleach 1L"],
    "beverages": ["Sparkling water 1.5L", "Orange juice 1L", "Cola 2L", "Ground coffee 227g", "Green tea 40x",
                  "Apple juice 1L", "Still water 6x500ml", "Ginger beer 4x330ml", "Lemonade 2L", "Iced tea 1.5L"],
}
CATEGORIES = {
    # weekly profile Mon..Sun
    "dairy": [0.9, 0.85, 0.9, 0.95, 1.1, 1.3, 1.0],
    "snacks": [0.8, 0.8, 0.85, 0.95, 1.2, 1.4, 1.0],
    "household": [1.0, 0.95, 0.95, 1.0, 1.05, 1.15, 0.9],
    "beverages": [0.85, 0.85, 0.9, 1.0, 1.2, 1.35, 0.85],
}
PACK_SIZES = (6, 12, 24)


@dataclass
class SynthChain:
    sales: pd.DataFrame  #: store_id, sku, date, quantity, promo (history only)
    calendar: pd.DataFrame  #: store_id, sku, date, kind, name (history and `future_days` ahead)
    products: pd.DataFrame  #: sku, product_name, category, unit_cost, pack_size, lead_time_days
    snapshots: pd.DataFrame  #: one stock count per store x SKU, the morning after the history ends
    deliveries: pd.DataFrame  #: open inbound deliveries
    truth: pd.DataFrame  #: store_id, sku, date, mean (the true expected demand, history and future)
    start: date
    days: int

    @property
    def end(self) -> date:
        """The last day of sales history."""
        return self.start + timedelta(days=self.days - 1)


def make_chain(
    stores: list[str],
    skus: int,
    days: int = 364,
    start: date = date(2025, 1, 6),
    seed: int = 0,
    future_days: int = 28,
    dispersion: float = 4.0,
) -> SynthChain:
    """A chain of `stores` x `skus` daily series of `days` days starting on `start`."""
    rng = np.random.default_rng(seed)
    total = days + future_days
    dates = pd.date_range(start, periods=total, freq="D")
    dow = dates.dayofweek.to_numpy()
    cats = list(CATEGORIES)
    products = pd.DataFrame({
        "sku": [f"SKU{i:04d}" for i in range(skus)],
        "category": [cats[i % len(cats)] for i in range(skus)],
    })
    products["product_name"] = [_name(c, i // len(cats)) for i, c in enumerate(products["category"])]
    products["unit_cost"] = np.round(rng.uniform(0.5, 12.0, skus), 2)
    products["pack_size"] = rng.choice(PACK_SIZES, skus)
    products["lead_time_days"] = rng.integers(1, 5, skus).astype(float)
    base = np.exp(rng.normal(np.log(6.0), 0.9, skus))  # units/day, long-tailed across SKUs
    store_factor = np.exp(rng.normal(0.0, 0.3, len(stores)))

    # chain calendar: holidays with uplift, closed days, about one of each every two months
    cal_rows: list[dict[str, object]] = []
    holiday = np.ones(total)
    closed = np.zeros(total, dtype=bool)
    for d0 in range(20, total, 61):
        h = d0 + int(rng.integers(0, 10))
        if h + 1 < total:
            holiday[h] = rng.uniform(1.3, 1.8)
            cal_rows.append({"store_id": "*", "sku": "*", "date": dates[h].date(), "kind": "holiday",
                             "name": f"holiday {len(cal_rows)}"})
            closed[h + 1] = True
            cal_rows.append({"store_id": "*", "sku": "*", "date": dates[h + 1].date(), "kind": "closed",
                             "name": "closed"})

    sales, truth = [], []
    for si, store in enumerate(stores):
        for k, row in products.iterrows():
            profile = np.array(CATEGORIES[row["category"]])[dow]
            drift = np.exp(np.cumsum(rng.normal(0, 0.01, total)))
            promo = np.zeros(total, dtype=bool)
            uplift = rng.uniform(1.4, 2.5)
            for _ in range(max(1, total // 70)):
                p0 = int(rng.integers(0, total - 7))
                promo[p0:p0 + int(rng.integers(3, 8))] = True
            mean = base[k] * store_factor[si] * profile * drift * holiday * np.where(promo, uplift, 1.0)
            mean = np.where(closed, 0.0, mean)
            lam = rng.gamma(dispersion, mean / dispersion)
            qty = rng.poisson(lam).astype(float)
            sales.append(pd.DataFrame({"store_id": store, "sku": row["sku"], "date": dates[:days].date,
                                       "quantity": qty[:days], "promo": promo[:days]}))
            truth.append(pd.DataFrame({"store_id": store, "sku": row["sku"], "date": dates.date, "mean": mean}))
            for d in np.flatnonzero(promo):
                cal_rows.append({"store_id": store, "sku": row["sku"], "date": dates[d].date(), "kind": "promo",
                                 "name": "promo"})
    sales_df = pd.concat(sales, ignore_index=True)
    truth_df = pd.concat(truth, ignore_index=True)
    calendar = pd.DataFrame(cal_rows, columns=["store_id", "sku", "date", "kind", "name"])
    chain = SynthChain(sales_df, calendar, products, pd.DataFrame(), pd.DataFrame(), truth_df, start, days)
    chain.snapshots, chain.deliveries = _stock(chain, rng)
    return chain


def _name(category: str, k: int) -> str:
    names = NAMES[category]
    base = names[k % len(names)]
    return base if k < len(names) else f"{base} ({chr(ord('B') + k // len(names) - 1)})"


def _stock(chain: SynthChain, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A morning count after the history: a few days of cover, some shelves empty with backroom stock."""
    last_week = chain.sales[chain.sales["date"] > chain.end - timedelta(days=7)]
    rate = last_week.groupby(["store_id", "sku"])["quantity"].mean()
    when = datetime.combine(chain.end + timedelta(days=1), time(7, 0), UTC).replace(tzinfo=None)
    snaps, deliveries = [], []
    prod = chain.products.set_index("sku")
    for (store, sku), r in rate.items():
        p = prod.loc[sku]
        cover = rng.choice([0.3, 1.0, 2.5, 5.0, 9.0], p=[0.15, 0.2, 0.25, 0.25, 0.15])
        on_hand = round(r * cover)
        shelf = round(on_hand * rng.uniform(0.2, 0.6))
        if rng.random() < 0.1:
            shelf = 0  # shelf emptied, stock still in the backroom
        snaps.append({"store_id": store, "sku": sku, "snapshot_at": when.isoformat(), "product_name": p["product_name"],
                      "category": p["category"], "on_hand": on_hand, "shelf_units": shelf,
                      "backroom_units": on_hand - shelf, "lead_time_days": p["lead_time_days"],
                      "unit_cost": p["unit_cost"], "pack_size": int(p["pack_size"])})
        if rng.random() < 0.3:
            eta = when + timedelta(days=int(rng.integers(1, 4)))
            qty = int(p["pack_size"]) * int(rng.integers(1, 4))
            deliveries.append({"store_id": store, "sku": sku, "delivery_id": f"PO-{store}-{sku}",
                               "expected_at": eta.isoformat(), "quantity": qty, "status": "expected"})
    return pd.DataFrame(snaps), pd.DataFrame(deliveries)


def write_csvs(chain: SynthChain, folder: str | Path) -> dict[str, Path]:
    """The chain as import files: sales.csv, calendar.csv, snapshots.csv, deliveries.csv."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in (("sales", chain.sales), ("calendar", chain.calendar), ("snapshots", chain.snapshots),
                     ("deliveries", chain.deliveries)):
        paths[name] = out / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    return paths


def series_flags(chain: SynthChain, store: str, sku: str, n: int) -> np.ndarray:
    """(n, 3) promo / holiday / closed flags of one series from the chain's calendar, day 0 = start."""
    cal = chain.calendar
    rows = cal[((cal["store_id"] == store) | (cal["store_id"] == "*")) & ((cal["sku"] == sku) | (cal["sku"] == "*"))]
    flags = np.zeros((n, 3), dtype=bool)
    for d, kind in zip(rows["date"], rows["kind"], strict=True):
        i = (d - chain.start).days
        if 0 <= i < n:
            flags[i, ("promo", "holiday", "closed").index(kind)] = True
    return flags


def to_lake(chain: SynthChain, lake: InventoryLake) -> dict[str, int]:
    """Store the chain straight into a lake (benchmarks and demos; files go through `intake` instead)."""
    from workloads.inventory.cleaning import to_arrow
    from workloads.inventory.tables import SPECS, Dataset

    frames = {Dataset.SALES: chain.sales, Dataset.CALENDAR: chain.calendar,
              Dataset.SNAPSHOTS: chain.snapshots.assign(unit="units", min_order_units=0),
              Dataset.DELIVERIES: chain.deliveries.assign(unit="units", pack_size=1)}
    out = {}
    for ds, df in frames.items():
        stats = lake.upsert(SPECS[ds], to_arrow(df, SPECS[ds]))
        out[ds.value] = stats.new + stats.updated + stats.unchanged
    return out
