"""`storefleet lp`: check rules files, run the SceneScape adapter, benchmark the rules."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from workloads.lp.alert_config import AlertConfigError, load_alert_config_file
from workloads.lp.rules import RulesError, load_rules_file
from workloads.lp.settings import DEFAULT_ALERT_CONFIG_FILE, DEFAULT_RULES_FILE
from workloads.lp.variables import ENV_VAR

app = typer.Typer(help="Loss prevention: rules (Intel store-wide LP format), SceneScape input, benchmarks.",
                  no_args_is_help=True)
console = Console(stderr=True)


@app.command("check")
def check(
    rules: Annotated[Path, typer.Argument(help="Rules YAML to check.")] = DEFAULT_RULES_FILE,
    alert_config: Annotated[Path | None, typer.Option(help="Also check this alert-config YAML.")] = None,
    variables: Annotated[str | None, typer.Option(help=f"JSON variables override (default: ${ENV_VAR}).")] = None,
) -> None:
    """Validate a rules file (every problem with its rule id and field) and list what it would run."""
    try:
        rs = load_rules_file(rules, variables if variables is not None else os.environ.get(ENV_VAR))
        if alert_config is not None:
            load_alert_config_file(alert_config)
    except (RulesError, AlertConfigError) as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    t = Table(title=f"{rules} (version {rs.version})")
    for col in ("id", "enabled", "trigger", "zone_type", "conditions", "actions"):
        t.add_column(col)
    for r in rs.rules:
        acts = ", ".join(p.get("alert_type") or f"escalate:{p.get('service')}" for _, p in r.actions)
        t.add_row(r.id, "yes" if r.enabled else "no", r.trigger, r.zone_type or "any", str(r.n_conditions), acts)
    console.print(t)
    console.print(f"variables: {json.dumps(rs.variables)}   session flags: {', '.join(sorted(rs.flags))}")


@app.command("scenescape")
def scenescape(
    config: Annotated[Path, typer.Option("--config", "-c", help="Fleet config with loss_prevention.scenescape.")],
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster of the running fleet (default: RAY_ADDRESS).")]
    = None,
) -> None:
    """Feed SceneScape region events (MQTT) into the running fleet's store actors, until Ctrl-C."""
    from cluster.fleet import init_ray
    from cluster.scenescape import ScenescapeAdapter
    from workloads.config import ConfigError, load_fleet_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_fleet_config(config)
    except ConfigError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    ss = cfg.loss_prevention.scenescape
    if ss is None:
        console.print(f"[red]{config}: loss_prevention.scenescape is not set[/red]")
        raise typer.Exit(2)
    init_ray(ray_address or os.environ.get("RAY_ADDRESS") or "auto")
    adapter = ScenescapeAdapter(ss)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    adapter.start()
    console.print(f"SceneScape: {ss.host}:{ss.port} topic {ss.topic} -> {len(ss.scenes)} scene(s); Ctrl-C stops")
    while not stop.wait(5.0):
        s = adapter.stats
        console.print(f"messages {s.messages}  events {s.events}  ignored {s.ignored}  malformed {s.malformed}  "
                      f"store failures {s.sink_failures}")
    adapter.stop()


def bench_actor(redis_url: str, visitors: int) -> dict[str, float]:
    """Events/s through one RuleActor on a local Ray cluster: append a script, time until its cursor catches up."""
    import ray
    import redis

    from cluster.fleet import init_ray
    from deployments.rule_actor import RuleActor
    from workloads.config import FleetConfig
    from workloads.lp.bench import ZONES, make_script
    from workloads.state import keys
    from workloads.state.admin import forget_store
    from workloads.state.event_log import EventLog

    init_ray(num_cpus=2, log_to_driver=False)
    store_id = f"BENCHLP_actor_{os.getpid()}"
    fleet = FleetConfig.model_validate({"stores": [{"id": store_id, "cameras": [
        {"id": "C0", "source": "synthetic:empty", "zones": [
            {"id": z, "type": t, "polygon": [[0, 0], [10, 0], [10, 10]]} for z, t in ZONES.items()]}]}]})
    client = redis.Redis.from_url(redis_url)
    events = make_script(store_id, visitors)
    actor = RuleActor.remote(store_id, redis_url, fleet.model_dump(mode="json"), DEFAULT_RULES_FILE.read_text(),
                             None, 0.0, "{}")
    try:
        ray.get(actor.ping.remote())
        log = EventLog(client)
        t0 = time.perf_counter()
        for i in range(0, len(events), 500):
            log.append(events[i:i + 500])
        appended = time.perf_counter() - t0
        last = client.xrevrange(keys.events_stream(store_id), count=1)[0][0]
        cursor = keys.consumer_cursor(store_id, "lp-rules")
        while client.get(cursor) != last:
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        return {"actor_events_per_s": round(len(events) / elapsed), "append_only_events_per_s":
                round(len(events) / appended)}
    finally:
        ray.kill(actor, no_restart=True)
        forget_store(client, store_id)
        ray.shutdown()


@app.command("bench")
def bench(
    visitors: Annotated[int, typer.Option(help="Visitors in the synthetic event stream (about 15 events each).")]
    = 400,
    actor: Annotated[bool, typer.Option(help="Also measure through a RuleActor on a local Ray cluster.")] = True,
    out: Annotated[Path | None, typer.Option(help="Also write the results as JSON here.")] = None,
) -> None:
    """Rule evaluations/s in process and events/s through one rule loop / rule actor with Redis (vs baselines)."""
    import tempfile

    from cluster.redis_server import resolve_redis
    from workloads.lp.bench import run_inprocess, run_redis

    results: dict[str, object] = {"in_process": run_inprocess(visitors)}
    with tempfile.TemporaryDirectory() as d:
        url, server = resolve_redis(Path(d))
        try:
            results["redis_loop"] = run_redis(url, visitors)
            if actor:
                results["rule_actor"] = bench_actor(url, visitors)
        finally:
            if server is not None:
                server.stop()
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


__all__ = ["DEFAULT_ALERT_CONFIG_FILE", "app"]
