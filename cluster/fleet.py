"""Bring a fleet up on a Ray cluster: Serve applications from ray_config.yaml, then one store actor
per store and one camera actor per camera.

Works the same on a laptop (`ray.init()` starts a local cluster) and on a chain cluster
(`RAY_ADDRESS` or `--ray-address` joins it): nothing here assumes one machine.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import serve
from ray.serve.schema import ServeDeploySchema

from cluster.scenescape import start_scenescape
from deployments.behaviour import APP_NAME as BEHAVIOUR_APP
from deployments.behaviour import start_behaviour_watchers
from deployments.camera_actor import CameraActor, camera_actor_name
from deployments.planner_llm import APP_NAME as PLANNER_LLM_APP
from deployments.planner_llm import ROUTE_PREFIX as PLANNER_LLM_ROUTE
from deployments.rule_actor import start_rule_actors
from deployments.store_actor import NAMESPACE, StoreActor, store_actor_name
from workloads.config import FleetConfig
from workloads.inventory.settings import PlannerModelConfig

log = logging.getLogger("storefleet.fleet")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVE_CONFIG = REPO_ROOT / "ray_config.yaml"


class DeployError(RuntimeError):
    """A Serve application did not come up; the message carries Serve's own reason."""


def init_ray(
    address: str | None = None,
    metrics_port: int | None = None,
    num_cpus: int | None = None,
    log_to_driver: bool = True,
) -> None:
    """Join `address` (or `RAY_ADDRESS`), else start a local cluster with metrics export.

    `log_to_driver=False` keeps worker logs in Ray's session folder (`ray_log_dir()`) instead of
    interleaving them with the CLI's live view.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=log_to_driver)
        return
    # A private local cluster: token auth protects shared clusters, not a loopback-only one.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=num_cpus or max(4, os.cpu_count() or 2),
        namespace=NAMESPACE,
        include_dashboard=False,
        _metrics_export_port=metrics_port,
        log_to_driver=log_to_driver,
        runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("STOREFLEET_")}},
    )


def ray_log_dir() -> str:
    """Folder with every worker's log of the local Ray session (Ray's documented default location)."""
    return os.path.join(os.environ.get("RAY_TMPDIR", "/tmp/ray"), "session_latest", "logs")


def load_serve_config(
    path: Path, fleet: FleetConfig, redis_url: str, http_port: int | None = None
) -> ServeDeploySchema:
    """Read ray_config.yaml and fill every application's args with the fleet and Redis in use."""
    raw = yaml.safe_load(path.read_text())
    if not fleet.behaviour.vlm.model:  # no model configured: the behavioural-analysis app has nothing to serve
        raw["applications"] = [x for x in raw.get("applications", []) if x.get("name") != BEHAVIOUR_APP]
    if fleet.inventory.planner_model is None:  # no planner model to serve (the rule parser or an outside vLLM plans)
        raw["applications"] = [x for x in raw.get("applications", []) if x.get("name") != PLANNER_LLM_APP]
    for app in raw.get("applications", []):
        app.setdefault("args", {})
        app["args"]["fleet"] = fleet.model_dump(mode="json")
        app["args"]["redis_url"] = redis_url
    if http_port is not None:
        raw.setdefault("http_options", {})["port"] = http_port
    return ServeDeploySchema.model_validate(raw)


def deploy_serve(schema: ServeDeploySchema, timeout_s: float = 180.0) -> None:
    """Deploy like `serve deploy` does, then wait until every application runs (or say why not)."""
    from ray.serve._private import api as serve_private  # what `serve run config.yaml` uses

    client = serve_private.serve_start(
        http_options=schema.http_options.model_dump(),
        proxy_location=schema.proxy_location,
    )
    client.deploy_apps(schema)
    names = {a.name for a in schema.applications}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        apps = serve.status().applications
        states = {n: apps[n].status for n in names if n in apps}
        failed = {n: apps[n].message for n, s in states.items() if s in ("DEPLOY_FAILED", "UNHEALTHY")}
        if failed:
            raise DeployError("; ".join(f"application {n!r} failed: {m}" for n, m in failed.items()))
        if len(states) == len(names) and all(s == "RUNNING" for s in states.values()):
            return
        time.sleep(0.5)
    raise DeployError(f"Serve applications not running after {timeout_s:.0f}s: {states}")


def deploy_planner_model(model: PlannerModelConfig | None = None, http_port: int = 8000,
                         timeout_s: float = 480.0, path: Path = DEFAULT_SERVE_CONFIG) -> str:
    """Deploy only the `planner_llm` application of ray_config.yaml (Ray must be up); return its OpenAI base URL.

    For the question-planner evaluation and tests: the same app, options and route as `storefleet run`.
    """
    fleet = FleetConfig.model_validate({  # a one-store placeholder fleet: the app reads only inventory.planner_model
        "inventory": {"planner_model": (model or PlannerModelConfig()).model_dump()},
        "stores": [{"id": "PLANNER", "cameras": [{"id": "PLANNER_C", "source": "synthetic:empty"}]}],
    })
    schema = load_serve_config(path, fleet, "redis://unused", http_port=http_port)
    schema.applications = [a for a in schema.applications if a.name == PLANNER_LLM_APP]
    deploy_serve(schema, timeout_s=timeout_s)
    return f"http://127.0.0.1:{http_port}{PLANNER_LLM_ROUTE}/v1"


@dataclass
class Fleet:
    """Handles of a running fleet."""

    config: FleetConfig
    redis_url: str
    stores: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, Any] = field(default_factory=dict)

    def start_stores(self) -> None:
        for s in self.config.stores:
            self.stores[s.id] = StoreActor.options(
                name=store_actor_name(s.id), namespace=NAMESPACE, get_if_exists=True
            ).remote(s.id, self.redis_url, s.model_dump(mode="json"), self.config.analytics.model_dump(mode="json"))
        ray.get([a.ping.remote() for a in self.stores.values()])

    def start_rules(self) -> None:
        """Loss prevention: one rule actor per store (own cursor on its events), the SceneScape adapter if set,
        one behavioural-analysis watcher per store (answers the rules' escalations)."""
        self.rules = {**start_rule_actors(self.config, self.redis_url), **start_scenescape(self.config),
                      **start_behaviour_watchers(self.config, self.redis_url)}

    def start_cameras(self) -> None:
        fleet = self.config.model_dump(mode="json")
        for store, cam in self.config.cameras():
            self.cameras[cam.id] = CameraActor.options(
                name=camera_actor_name(cam.id), namespace=NAMESPACE, get_if_exists=True
            ).remote(fleet, store.id, cam.id, self.redis_url)

    def statuses(self) -> dict[str, dict[str, Any]]:
        refs = {cid: a.status.remote() for cid, a in self.cameras.items()}
        out = {}
        for cid, ref in refs.items():
            try:
                out[cid] = ray.get(ref, timeout=10)
            except (ray.exceptions.RayError, TimeoutError) as e:
                out[cid] = {"camera_id": cid, "state": "restarting", "error": type(e).__name__}
        return out

    def wait(self, timeout_s: float | None = None) -> dict[str, dict[str, Any]]:
        return dict(zip(self.cameras, ray.get([a.wait.remote(timeout_s) for a in self.cameras.values()]),
                        strict=True))

    def stop(self) -> None:
        """Stop cameras (each flushes its events and checkpoints), then drop all actors."""
        if self.cameras:
            ray.get([a.stop.remote() for a in self.cameras.values()], timeout=60)
        for a in [*self.cameras.values(), *self.stores.values(), *self.rules.values()]:
            ray.kill(a, no_restart=True)
        self.cameras.clear()
        self.stores.clear()
        self.rules.clear()


def start_fleet(
    config: FleetConfig,
    redis_url: str,
    serve_config: Path = DEFAULT_SERVE_CONFIG,
    http_port: int | None = None,
) -> Fleet:
    """Deploy the Serve apps and start the fleet's actors on an initialised Ray."""
    deploy_serve(load_serve_config(serve_config, config, redis_url, http_port))
    fleet = Fleet(config, redis_url)
    fleet.start_stores()
    fleet.start_rules()
    fleet.start_cameras()
    return fleet
