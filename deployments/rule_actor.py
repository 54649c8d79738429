"""One rule actor per store: loss-prevention rules over the store's event stream, alerts, escalations.

Thin by design: the loop, sessions, rules and Redis writes live in `workloads.lp` (`RuleRunner`,
`AlertDelivery`); this wires them to Ray (a restartable named actor, two threads) and to metrics.
The actor is decoupled from the store actor: it tails `sf:{S}:events` with its own cursor, so a slow
or crashed rule actor never slows event ingestion, and a restarted one resumes exactly where it
committed (`max_restarts=-1`; sessions and clock are rebuilt from Redis).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import ray
import redis

from deployments.metrics import LossPreventionMetrics
from workloads.config import FleetConfig
from workloads.lp.alert_config import load_alert_config
from workloads.lp.delivery import AlertDelivery
from workloads.lp.models import BaResult
from workloads.lp.processor import Effects
from workloads.lp.rules import load_rules
from workloads.lp.runner import RuleRunner, RulesSource
from workloads.lp.store import LpStore
from workloads.lp.variables import ENV_VAR
from workloads.lp.zones import store_zones

log = logging.getLogger("storefleet.rules")

NAMESPACE = "storefleet"


def rule_actor_name(store_id: str) -> str:
    return f"rules:{store_id}"


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.1, max_concurrency=4)
class RuleActor:
    """Args:
    store_id: The store.
    redis_url: Redis holding the store's state.
    fleet: The fleet config (dict): zones of the store, timing slack, alert MQTT broker.
    rules_text / rules_path / rules_mtime: The rules file as the driver read it (the path is watched
        for hot reload when this actor can read it).
    alert_config_text: The alert-config file's content.
    variables_override: RULES_VARIABLES of the driver's environment (JSON), applied to every version.
    """

    def __init__(self, store_id: str, redis_url: str, fleet: dict[str, Any], rules_text: str,
                 rules_path: str | None, rules_mtime: float, alert_config_text: str,
                 variables_override: str | None = None) -> None:
        cfg = FleetConfig.model_validate(fleet)
        store = cfg.store(store_id)
        # How far a ZONE_EXIT can trail a camera's feed time: exit grace plus event batching.
        slack = max((z.exit_grace_s for c in store.cameras for z in c.zones), default=1.0) + cfg.event_batch_interval_s
        self.store_id = store_id
        self.client = redis.Redis.from_url(redis_url)
        self.metrics = LossPreventionMetrics(store_id)
        alert_config = load_alert_config(alert_config_text)
        self.runner = RuleRunner(
            self.client, store_id, store_zones(cfg, store_id), RulesSource(rules_text, rules_path, rules_mtime),
            alert_config, variables_override, camera_slack_s=slack, on_step=self._step_metrics,
            status_extra=self._delivery_status,
        )
        self.delivery = AlertDelivery(self.client, store_id, alert_config, cfg.loss_prevention.mqtt)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, args=(self._stop,), name=f"{n}-{store_id}", daemon=True)
                         for n, f in (("rules", self.runner.run), ("alerts", self.delivery.run))]
        for t in self._threads:
            t.start()
        log.info("rule actor %s ready (%d sessions restored)", store_id, len(self.runner.rules.sessions))

    def _step_metrics(self, fx: Effects, codes: list[int]) -> None:
        self.metrics.step([(a.alert_type, a.severity, c) for a, c in zip(fx.alerts, codes, strict=True)],
                          fx.evaluations, len(fx.escalations))

    def ping(self) -> str:
        return self.store_id

    def _delivery_status(self) -> dict[str, Any]:
        delivery = getattr(self, "delivery", None)  # the runner's first status comes before it exists
        if delivery is None:
            return {}
        d = delivery.stats
        return {"delivery": {"delivered": d.delivered, "failed": d.failed, "skipped": d.skipped,
                             "last_error": d.last_error}}

    def status(self) -> dict[str, Any]:
        return self.runner.status()

    def ba_result(self, result: dict[str, Any]) -> str:
        """Queue a behavioural-analysis result for this store's rules; returns its result id."""
        return LpStore(self.client).add_ba_result(self.store_id, BaResult.model_validate(result))

    def stop(self) -> None:
        self._stop.set()
        self.delivery.close()


def start_rule_actors(config: FleetConfig, redis_url: str) -> dict[str, Any]:
    """One RuleActor per store. The rules and alert-config files are read and validated here, once, so a
    bad file stops the fleet with the file, rule and field at fault instead of failing in every actor."""
    lp = config.loss_prevention
    if not lp.enabled:
        return {}
    source = RulesSource.from_file(lp.rules_path())
    override = os.environ.get(ENV_VAR)
    load_rules(source.text, override, str(lp.rules_path()))  # raises RulesError naming rule and field
    alert_text = lp.alert_config_path().read_text()
    load_alert_config(alert_text, str(lp.alert_config_path()))
    fleet = config.model_dump(mode="json")
    actors = {
        s.id: RuleActor.options(name=rule_actor_name(s.id), namespace=NAMESPACE, get_if_exists=True).remote(
            s.id, redis_url, fleet, source.text, source.path, source.mtime, alert_text, override)
        for s in config.stores
    }
    ray.get([a.ping.remote() for a in actors.values()])
    return actors
