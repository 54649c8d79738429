"""Inventory intelligence: shelf gaps, demand forecasts, reorders, 48-hour stockouts, plain-language questions.

Modules, one concept each (none imports Ray; the Ray Data batch lives in `deployments.inventory_batch`):
    * `settings`: the `inventory` fields of the fleet and store config (planogram, rules, service level).
    * `tables`, `cleaning`, `lake`, `intake`: dataset schemas, validation with explicit rules, the
      Parquet lake DuckDB reads, and file/API imports into it.
    * `forecast`, `backtest`, `datasets`, `synth`, `batch`: demand models, rolling-origin backtests with
      MASE/sMAPE, the real demand series that ship in registry packages, a synthetic chain, and the
      per-store forecast function the batch maps over.
    * `reorder`, `decisions`, `alerts`: reorder math, stockout and shelf-vs-backroom decisions, and the
      per-store inventory alert stream in Redis.
    * `shelf_synth`, `shelf_gaps`, `shelf_eval`, `shelf_runner`, `gap_state`: shelf-gap detection on
      shelf-camera frames, its synthetic test shelves and metrics, the shelf camera loop, gap state.
    * `plans`, `parser`, `prompt`, `planner`, `queries`: questions in plain language -> typed query plans
      -> DuckDB.
    * `service`: the facade the API and CLI use.

The package imports nothing at package level, so `workloads.config` can import
`workloads.inventory.settings` cheaply and without a cycle.
"""
