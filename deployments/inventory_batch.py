"""The batch forecast on Ray Data: one work unit per store, spread over the cluster's CPUs.

The dataset is the list of stores (one block each); `map` runs `workloads.inventory.batch.forecast_store`
on each, which reads that store's sales from the lake, forecasts every SKU and replaces the store's
forecast files. Only a small summary per store comes back to the driver, so the job scales with
the cluster, not with the driver. The lake must be on storage every node sees.

`bench` times this against `run_local` (the same function, store after store, in this process) on
the same lake and checks both wrote the same forecasts.

Example:
    >>> runs = run_ray("/data/inventory", BatchSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import ray

from workloads.inventory.batch import BatchSettings, StoreRun, chain_as_of, forecast_store, new_run_id, run_local
from workloads.inventory.lake import InventoryLake


def _unit(row: dict[str, Any], lake_root: str, settings: BatchSettings, run_id: str, as_of: date) -> dict[str, Any]:
    return forecast_store(lake_root, row["store_id"], settings, run_id, as_of).as_dict()


def run_ray(lake_root: str | Path, settings: BatchSettings, stores: list[str] | None = None,
            as_of: date | None = None, run_id: str | None = None) -> list[StoreRun]:
    """Forecast every store (or `stores`) as Ray Data tasks; returns one summary per store."""
    lake = InventoryLake(lake_root)
    as_of = as_of or chain_as_of(lake)
    stores = stores or lake.stores("sales")
    if as_of is None or not stores:
        return []
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # Ray Data reserves part of the cluster for each operator of a pipeline; for this one-operator job
    # on a small cluster that left one task running at a time (measured: 24 store tasks strictly one
    # after the other on 2 CPUs, 1.9x faster without the reservation). The job has nothing downstream
    # to reserve for, so it runs without it.
    reserve = ctx.op_resource_reservation_enabled
    ctx.op_resource_reservation_enabled = False
    try:
        ds = ray.data.from_items([{"store_id": s} for s in stores], override_num_blocks=len(stores))
        rows = ds.map(_unit, fn_kwargs={"lake_root": str(lake_root), "settings": settings,
                                        "run_id": run_id or new_run_id(), "as_of": as_of}, num_cpus=1).take_all()
    finally:
        ctx.op_resource_reservation_enabled = reserve
    return [StoreRun(**{k: r[k] for k in ("store_id", "series", "rows_read", "seconds", "run_id")}) for r in rows]


def _forecast_fingerprint(lake: InventoryLake) -> list[tuple[str, str, str, float]]:
    t = lake.read("forecasts")
    t = t.sort_by([("store_id", "ascending"), ("sku", "ascending"), ("date", "ascending")])
    return list(zip(t.column("store_id").to_pylist(), t.column("sku").to_pylist(),
                    [str(d) for d in t.column("date").to_pylist()],
                    pc.round(t.column("yhat"), 9).to_pylist(), strict=True))


def bench(lake_root: str | Path, settings: BatchSettings, repeats: int = 1) -> dict[str, Any]:
    """Series per second of the Ray Data job vs the single-process loop, on copies of the same lake."""
    src = Path(lake_root)
    out: dict[str, Any] = {"cpus": ray.cluster_resources().get("CPU", 0)}
    with tempfile.TemporaryDirectory(prefix="sf-inv-bench-") as tmp:
        results = {}
        for name, runner in (("single_process", run_local), ("ray_data", run_ray)):
            best = None
            for _ in range(repeats):
                lake_dir = Path(tmp) / name
                shutil.rmtree(lake_dir, ignore_errors=True)
                shutil.copytree(src, lake_dir)
                as_of = chain_as_of(InventoryLake(lake_dir))
                t0 = time.perf_counter()
                runs = runner(lake_dir, settings, as_of=as_of)
                wall = time.perf_counter() - t0
                best = wall if best is None else min(best, wall)
            series = sum(r.series for r in runs)
            results[name] = _forecast_fingerprint(InventoryLake(lake_dir))
            out[name] = {"series": series, "stores": len(runs), "seconds": round(best, 3),
                         "series_per_s": round(series / best, 1)}
        out["speedup"] = round(out["ray_data"]["series_per_s"] / out["single_process"]["series_per_s"], 2)
        out["same_forecasts"] = results["single_process"] == results["ray_data"]
    return out
