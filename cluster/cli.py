"""`storefleet`: run a fleet, prepare models and footage, check configs, benchmark.

Every command documents itself: `storefleet --help`, `storefleet COMMAND --help`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cluster.bench_ingest import bench_ingest_command
from cluster.cli_eval import eval_app
from cluster.cli_inventory import app as inventory_app
from cluster.cli_lp import app as lp_app
from cluster.cli_obs import app as obs_app
from cluster.cli_pos import app as pos_app
from workloads.config import ConfigError, FleetConfig, load_fleet_config

DEMO_CONFIG = Path(__file__).with_name("demo_fleet.yaml")

app = typer.Typer(
    help="StoreFleet: CCTV intelligence for retail chains on Ray.\n\n"
    "Quick start: `storefleet run` brings up the demo fleet (2 stores, 3 cameras on real footage) "
    "with a private Redis and a local Ray cluster. `storefleet run --once` processes the footage once "
    "and prints a summary.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check and document fleet configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(eval_app, name="eval")
app.add_typer(inventory_app, name="inventory")
app.add_typer(obs_app, name="obs")
app.add_typer(lp_app, name="lp")
app.add_typer(pos_app, name="pos")
console = Console(stderr=True)
log = logging.getLogger("storefleet")

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Fleet config YAML (default: the embedded demo fleet).")
]


def _load(path: Path) -> FleetConfig:
    try:
        return load_fleet_config(path)
    except ConfigError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("ray", "ray.serve", "nncf", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def prepare_assets(cfg: FleetConfig, progress: bool = True) -> None:
    """Footage the config needs and the detector IR (exported and quantised once, then cached)."""
    from cluster.assets import resolve_source, vtest_path
    from models.registry import ir_path

    for _, cam in cfg.cameras():
        resolve_source(cam.source)
    det = cfg.detector
    if ir_path(det.model, det.precision).is_file():
        return
    from models.export import prepare

    console.print(f"Preparing {det.model} (OpenVINO FP32 + INT8, calibrated on vtest.avi); this runs once.")
    say = (lambda m: console.print(f"  {m}")) if progress else None
    prepare(det.model, _calibration_frames(vtest_path()), progress=say, input_size=det.input_size)


def _calibration_frames(path: Path, n: int = 200) -> list[Any]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or n
    step = max(1, total // n)
    frames = []
    for i in range(total):
        ok, img = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(img)
    cap.release()
    return frames[:n]


@app.command()
def prepare(config: ConfigOpt = DEMO_CONFIG) -> None:
    """Fetch the footage a fleet needs and export + quantise its detector (cached outside the repo)."""
    _setup_logging(False)
    cfg = _load(config)
    prepare_assets(cfg)
    from models.registry import ir_path

    for p in ("FP32", "INT8"):
        console.print(f"{cfg.detector.model} {p}: {ir_path(cfg.detector.model, p)}")


@app.command()
def run(
    config: ConfigOpt = DEMO_CONFIG,
    once: Annotated[
        bool, typer.Option("--once", help="Process each camera's footage once, as fast as possible, then exit.")
    ] = False,
    http_port: Annotated[int, typer.Option(help="Port of the HTTP API (Ray Serve).")] = 8000,
    metrics_port: Annotated[int, typer.Option(help="Port of Ray's Prometheus metrics export.")] = 8080,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting a local one.")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(envvar="REDIS_URL", help="Use this Redis; default: start a private embedded Redis server."),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option(help="Where the embedded Redis keeps its data.")
    ] = Path(".storefleet/redis"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Forget stored events and camera checkpoints of this fleet first.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs, and Ray workers' logs in this terminal.")
    ] = False,
) -> None:
    """Run the fleet: Redis, Ray, the Serve apps of ray_config.yaml, one actor per store and camera.

    Keeps running (Ctrl-C stops it cleanly) unless --once is given.
    """
    _setup_logging(verbose)
    cfg = _load(config)
    if once:
        for _, cam in cfg.cameras():
            cam.loop, cam.realtime = False, False
    prepare_assets(cfg)

    from cluster.fleet import init_ray, ray_log_dir, start_fleet
    from cluster.redis_server import EmbeddedRedis

    with ExitStack() as stack:
        if redis_url is None:
            server = stack.enter_context(EmbeddedRedis(data_dir))
            redis_url = server.url
            console.print(f"Redis: embedded server at {redis_url} (data in {data_dir})")
        else:
            console.print(f"Redis: {redis_url}")
        if fresh or once:
            _forget(cfg, redis_url)
        console.print("Starting Ray ...")
        init_ray(ray_address, metrics_port=metrics_port, log_to_driver=verbose)
        import ray
        from ray import serve

        stack.callback(ray.shutdown)
        stack.callback(serve.shutdown)
        console.print("Deploying Serve applications from ray_config.yaml ...")
        fleet = start_fleet(cfg, redis_url, http_port=http_port)
        stack.callback(fleet.stop)
        console.print(
            f"[bold green]Fleet up[/]: {len(cfg.stores)} stores, {len(fleet.cameras)} cameras\n"
            f"  API      http://127.0.0.1:{http_port}/health   (docs: http://127.0.0.1:{http_port}/docs)\n"
            f"  Metrics  http://127.0.0.1:{metrics_port}/metrics (Prometheus text)\n"
            f"  Logs     {ray_log_dir()} (or run with --verbose)"
        )
        if once:
            _run_once(fleet)
        else:
            _run_live(fleet)


def _forget(cfg: FleetConfig, redis_url: str) -> None:
    import redis

    from workloads.state.admin import forget_store

    r = redis.Redis.from_url(redis_url)
    for s in cfg.stores:
        forget_store(r, s.id)


def _status_table(statuses: dict[str, dict[str, Any]], totals: dict[str, int] | None = None) -> Table:
    t = Table(title="Cameras", expand=False)
    for col in ("camera", "store", "state", "frames", "fps", "dropped", "tracks", "events"):
        t.add_column(col, justify="right" if col not in ("camera", "store", "state") else "left")
    for cid, s in statuses.items():
        frames = str(s.get("frames_processed", 0))
        if totals and cid in totals:
            frames = f"{frames}/{totals[cid]}"
        t.add_row(cid, s.get("store_id", ""), s.get("state", "?"), frames, f"{s.get('fps', 0.0):.1f}",
                  str(s.get("frames_dropped", 0)), str(s.get("active_tracks", 0)), str(s.get("events_sent", 0)))
    return t


def _expected_frames(fleet: Any) -> dict[str, int]:
    """Frames each play-once camera will process: the clip's length sampled at target fps."""
    import cv2

    from cluster.assets import resolve_source

    out = {}
    for _, cam in fleet.config.cameras():
        cap = cv2.VideoCapture(resolve_source(cam.source))
        n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS) or 25.0
        cap.release()
        if n > 0:
            out[cam.id] = int(n / (fps / min(cam.target_fps, fps)) + 0.999)
    return out


def _run_once(fleet: Any) -> None:
    import ray

    totals = _expected_frames(fleet)
    t0 = time.monotonic()
    refs = {cid: a.wait.remote() for cid, a in fleet.cameras.items()}
    pending = list(refs.values())
    with Live(_status_table(fleet.statuses(), totals), console=console, refresh_per_second=2) as live:
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            live.update(_status_table(fleet.statuses(), totals))
    final = {cid: ray.get(r) for cid, r in refs.items()}
    elapsed = time.monotonic() - t0
    summary = _summary(fleet, final, elapsed)
    console.print(_status_table(final, totals))
    print(json.dumps(summary, indent=2))


def _summary(fleet: Any, final: dict[str, dict[str, Any]], elapsed: float) -> dict[str, Any]:
    import ray

    frames = sum(s["frames_processed"] for s in final.values())
    stores = {sid: ray.get(a.counters.remote()) for sid, a in fleet.stores.items()}
    return {
        "elapsed_s": round(elapsed, 2),
        "frames_processed": frames,
        "pipeline_fps": round(frames / elapsed, 2) if elapsed else 0.0,
        "cameras": {cid: {k: s[k] for k in ("state", "frames_processed", "frames_dropped", "counts")}
                    for cid, s in final.items()},
        "stores": stores,
    }


def _run_live(fleet: Any) -> None:
    stopping = {"flag": False}

    def _sigint(*_: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGINT, _sigint)
    signal.signal(signal.SIGTERM, _sigint)
    console.print("Running; press Ctrl-C to stop.")
    with Live(_status_table(fleet.statuses()), console=console, refresh_per_second=1) as live:
        while not stopping["flag"]:
            time.sleep(1.0)
            live.update(_status_table(fleet.statuses()))
    console.print("Stopping: cameras flush their events and checkpoint ...")


@config_app.command("validate")
def config_validate(path: Annotated[Path, typer.Argument(help="Fleet config YAML to check.")]) -> None:
    """Check a fleet config; prints every problem with its field path."""
    cfg = _load(path)
    n_cams = len(cfg.cameras())
    n_zones = sum(len(c.zones) for _, c in cfg.cameras())
    console.print(f"[green]ok[/]: {path}: {len(cfg.stores)} stores, {n_cams} cameras, {n_zones} zones")


@config_app.command("schema")
def config_schema() -> None:
    """Print the fleet config JSON schema (field titles and descriptions are the reference docs)."""
    print(json.dumps(FleetConfig.model_json_schema(), indent=2))


@config_app.command("docs")
def config_docs() -> None:
    """Print the Markdown reference of every config field (docs/configuration.md)."""
    from cluster.config_docs import render

    print(render())


@config_app.command("demo")
def config_demo() -> None:
    """Print the embedded demo fleet config, a starting point for your own."""
    print(DEMO_CONFIG.read_text())


@app.command()
def bench(
    frames: Annotated[int, typer.Option(help="vtest.avi frames per measurement.")] = 300,
    input_size: Annotated[int, typer.Option(help="Detector input size.")] = 640,
    out: Annotated[Path | None, typer.Option(help="Also write the results as JSON here.")] = None,
) -> None:
    """Benchmark in one run on the same frames: ultralytics PyTorch, OpenVINO FP32/INT8, the full pipeline."""
    _setup_logging(False)
    from cluster.bench import run_benchmarks

    results = run_benchmarks(n_frames=frames, input_size=input_size, console=console)
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


app.command("bench-ingest")(bench_ingest_command)


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
