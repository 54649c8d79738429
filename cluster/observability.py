"""Prometheus scrape configs, recording and alert rules, and Grafana dashboards, from one source.

Why generated: a panel query, a recording rule and an alert all name the same metrics; writing
them once here, against the metric catalogue of `deployments.metrics`, means a renamed metric breaks
generation instead of silently emptying a panel. `storefleet obs generate` writes the files under
`infra/`, which are committed (Prometheus and Grafana read them as they are);
`tests/test_obs_config.py` checks they are current and that promtool accepts them, and
`tests/test_obs_prometheus.py` runs every panel query against a real Prometheus scraping a fleet.

Dashboard queries may use the variables `$store` and `$camera` (regex matchers, "All" = `.*`) and
Grafana's `$__rate_interval`; `expand()` substitutes them the way Grafana does.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from deployments import metrics as m

REPO_ROOT = Path(__file__).resolve().parent.parent
INFRA = REPO_ROOT / "infra"
PROM_DIR = INFRA / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RECORDING_FILE = RULES_DIR / "storefleet-recording.yml"
ALERTS_FILE = RULES_DIR / "storefleet-alerts.yml"
GRAFANA_DIR = INFRA / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
SERVE_CONFIG = REPO_ROOT / "ray_config.yaml"

#: Job name of the Ray metrics scrape; alert rules and dashboards match it.
JOB = "storefleet-ray"
#: Datasource uid of the provisioned Prometheus; dashboards pick theirs with the `datasource` variable.
DATASOURCE_UID = "storefleet-prometheus"


# ------------------------------------------------------------------------------------ metric names

def name(spec: m.MetricSpec, suffix: str = "") -> str:
    """The exported series name of a catalogued metric (`_bucket`, `_sum`, `_count` for histograms)."""
    return spec.exported + suffix


# Metrics recorded by other features (HTTP ingest, loss prevention), named here once by their exported
# name so this module does not depend on their classes; tests/test_obs_config.py checks each against
# deployments/metrics.py.
INGEST_EVENTS = m.RAY_PREFIX + "storefleet_ingest_events_total"
POS_TRANSACTIONS = m.RAY_PREFIX + "storefleet_pos_transactions_total"
LP_ALERTS = m.RAY_PREFIX + "storefleet_lp_alerts_total"
LP_SUPPRESSED = m.RAY_PREFIX + "storefleet_lp_alerts_suppressed_total"
LP_EVALUATIONS = m.RAY_PREFIX + "storefleet_lp_rule_evaluations_total"
LP_ESCALATIONS = m.RAY_PREFIX + "storefleet_lp_escalations_total"
EXTERNAL_METRICS = (INGEST_EVENTS, POS_TRANSACTIONS, LP_ALERTS, LP_SUPPRESSED, LP_EVALUATIONS, LP_ESCALATIONS)

CAM = 'store=~"$store", camera=~"$camera"'
STORE = 'store=~"$store"'
REJECTED = 'type="rejected"'
PASSED = 'type="passed"'
ENTRY = 'type="ENTRY"'
DOORS = STORE + ', type=~"ENTRY|EXIT"'
QUEUE_EVENTS = STORE + ', type=~"BILLING_QUEUE_.*"'
ZONE_ENTER = STORE + ', type="ZONE_ENTER"'


def _detector_target_ongoing(path: Path = SERVE_CONFIG) -> float:
    """The Detector's autoscaling `target_ongoing_requests` in ray_config.yaml: the saturation bar."""
    raw = yaml.safe_load(path.read_text())
    for app in raw.get("applications", []):
        for dep in app.get("deployments", []):
            if dep.get("name") == "Detector":
                return float(dep.get("autoscaling_config", {}).get("target_ongoing_requests", 2))
    raise ValueError(f"{path} has no Detector deployment")


# ----------------------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Record:
    """A recording rule: `level:metric:operations`, Prometheus' naming convention."""

    record: str
    expr: str

    def __str__(self) -> str:
        return self.record


@dataclass(frozen=True)
class Alert:
    alert: str
    expr: str
    for_: str
    severity: Literal["critical", "warning"]
    summary: str
    description: str


def _quantile(q: float, spec: m.MetricSpec, by: str, window: str = "5m") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({name(spec, '_bucket')}[{window}])))"


def _rate(metric: str, by: str, window: str, match: str = "") -> str:
    sel = f"{metric}{{{match}}}" if match else metric
    return f"sum by ({by}) (rate({sel}[{window}]))"


SC = "store, camera"
R_PROCESSED = Record("store_camera:storefleet_camera_frames_processed:rate1m",
                     _rate(name(m.CAMERA_PROCESSED), SC, "1m"))
R_READ = Record("store_camera:storefleet_camera_frames_read:rate1m", _rate(name(m.CAMERA_READ), SC, "1m"))
R_DROPPED = Record("store_camera:storefleet_camera_frames_dropped:rate1m", _rate(name(m.CAMERA_DROPPED), SC, "1m"))
R_DROP_RATIO = Record(
    "store_camera:storefleet_camera_frames_dropped:ratio_rate5m",
    f"{_rate(name(m.CAMERA_DROPPED), SC, '5m')} / ({_rate(name(m.CAMERA_PROCESSED), SC, '5m')} + "
    f"{_rate(name(m.CAMERA_DROPPED), SC, '5m')})")
R_RECONNECTS = Record("store_camera:storefleet_camera_reconnects:increase5m",
                      f"sum by ({SC}) (increase({name(m.CAMERA_RECONNECTS)}[5m]))")
R_STALENESS = Record("store_camera:storefleet_camera_staleness_seconds:max",
                     f"max by ({SC}) ({name(m.CAMERA_STALENESS)})")
R_EVENTS = Record("store_type:storefleet_camera_events:rate5m", _rate(name(m.CAMERA_EVENTS), "store, type", "5m"))
R_DET_FRAMES = Record("deployment:storefleet_detector_frames:rate1m",
                      _rate(name(m.DETECTOR_FRAMES), "deployment", "1m"))
R_DET_P50, R_DET_P95, R_DET_P99 = (
    Record(f"deployment:storefleet_detector_batch_latency_seconds:p{p}_5m",
           _quantile(p / 100, m.DETECTOR_LATENCY, "deployment"))
    for p in (50, 95, 99)
)
R_DET_BATCH = Record(
    "deployment:storefleet_detector_batch_size_frames:avg_5m",
    f"{_rate(name(m.DETECTOR_BATCH, '_sum'), 'deployment', '5m')} / "
    f"{_rate(name(m.DETECTOR_BATCH, '_count'), 'deployment', '5m')}")
R_DET_BUSY = Record(
    "deployment:storefleet_detector_busy:ratio_rate5m",
    # Seconds of inference per second, per replica series, averaged over replicas.
    f"avg by (deployment) (rate({name(m.DETECTOR_LATENCY, '_sum')}[5m]))")
R_DET_QUEUE = Record("deployment:storefleet_detector_queue_depth_requests:avg",
                     f"avg by (deployment) ({name(m.DETECTOR_QUEUE)})")
R_REDIS_P95 = Record("store:storefleet_redis_append_latency_seconds:p95_5m",
                     _quantile(0.95, m.REDIS_APPEND_LATENCY, "store"))
R_REDIS_ERRORS = Record("store:storefleet_redis_errors:increase5m",
                        f"sum by (store) (increase({name(m.REDIS_ERRORS)}[5m]))")
R_STORE_EVENTS = Record("store_type:storefleet_store_events:rate5m",
                        _rate(name(m.STORE_EVENTS), "store, type", "5m"))
R_INGEST = Record("store_type:storefleet_ingest_events:rate5m", _rate(INGEST_EVENTS, "store, type", "5m"))
R_INGEST_REJECTED = Record(
    "store:storefleet_ingest_events_rejected:ratio_rate10m",
    f"{_rate(INGEST_EVENTS, 'store', '10m', REJECTED)} / {_rate(INGEST_EVENTS, 'store', '10m')}")
R_POS = Record("store_type:storefleet_pos_transactions:increase1h",
               f"sum by (store, type) (increase({POS_TRANSACTIONS}[1h]))")
R_ENTRIES = Record("store:storefleet_visitors_entries:increase1h",
                   f"sum by (store) (increase({name(m.CAMERA_EVENTS)}{{{ENTRY}}}[1h]))")
R_ALERTS_TYPE = Record("store_type:storefleet_lp_alerts:increase1h",
                       f"sum by (store, type) (increase({LP_ALERTS}[1h]))")
R_ALERTS_SEVERITY = Record("store_severity:storefleet_lp_alerts:increase1h",
                           f"sum by (store, severity) (increase({LP_ALERTS}[1h]))")
R_LP_EVALUATIONS = Record("store:storefleet_lp_rule_evaluations:rate5m", _rate(LP_EVALUATIONS, "store", "5m"))
R_LP_ESCALATIONS = Record("store:storefleet_lp_escalations:increase1h",
                          f"sum by (store) (increase({LP_ESCALATIONS}[1h]))")
R_LP_SUPPRESSED = Record("store_type:storefleet_lp_alerts_suppressed:increase1h",
                         f"sum by (store, type) (increase({LP_SUPPRESSED}[1h]))")
R_VLM_P95 = Record("deployment:storefleet_behaviour_vlm_latency_seconds:p95_5m",
                   _quantile(0.95, m.VLM_LATENCY, "deployment"))
R_VLM_ANSWERS = Record("deployment_type:storefleet_behaviour_vlm_answers:rate5m",
                       _rate(name(m.VLM_OUTCOMES), "deployment, type", "5m"))
R_BEHAVIOUR = Record("store_type:storefleet_behaviour_requests:rate5m",
                     _rate(name(m.BEHAVIOUR_REQUESTS), "store, type", "5m"))
R_PREFILTER_PASS = Record(
    "store:storefleet_behaviour_prefilter_pass:ratio_rate5m",
    f"{_rate(name(m.PREFILTER), 'store', '5m', PASSED)} / {_rate(name(m.PREFILTER), 'store', '5m')}")
R_PREFILTER_P95 = Record("store:storefleet_behaviour_prefilter_latency_seconds:p95_5m",
                         _quantile(0.95, m.PREFILTER_LATENCY, "store"))

RECORDS: list[Record] = [
    R_PROCESSED, R_READ, R_DROPPED, R_DROP_RATIO, R_RECONNECTS, R_STALENESS, R_EVENTS,
    R_DET_FRAMES, R_DET_P50, R_DET_P95, R_DET_P99, R_DET_BATCH, R_DET_BUSY, R_DET_QUEUE,
    R_REDIS_P95, R_REDIS_ERRORS, R_STORE_EVENTS, R_INGEST, R_INGEST_REJECTED, R_POS, R_ENTRIES,
    R_ALERTS_TYPE, R_ALERTS_SEVERITY, R_LP_EVALUATIONS, R_LP_ESCALATIONS, R_LP_SUPPRESSED,
    R_BEHAVIOUR, R_PREFILTER_PASS, R_PREFILTER_P95, R_VLM_P95, R_VLM_ANSWERS,
]

#: Staleness (s) after which a feed that should run counts as stale; /health uses 10 s.
STALE_AFTER_S = 15
#: Share of the target fps under which a live camera alerts.
FPS_FLOOR = 0.8
#: Inference seconds per second of a replica above which it counts as busy.
BUSY_RATIO = 0.9
#: Loss-prevention alerts per store in 10 minutes that make an alert storm.
ALERT_STORM = 20
#: Share of ingested events rejected that alerts.
REJECT_RATIO = 0.05
#: Redis errors per store in 2 minutes (cameras ping every 2 s) that mean Redis is unreachable.
REDIS_ERRORS_2M = 3


def _expected(by: str = SC) -> str:
    return f"on ({by}) max by ({by}) ({name(m.CAMERA_EXPECTED)}) == 1"


def alerts(serve_config: Path = SERVE_CONFIG) -> list[Alert]:
    """The alert rules; the detector's saturation bar comes from ray_config.yaml."""
    target = _detector_target_ongoing(serve_config)
    return [
        Alert(
            "StoreFleetCameraFeedStale",
            f"max by ({SC}) ({name(m.CAMERA_STALENESS)}) > {STALE_AFTER_S}\nand {_expected()}",
            "30s", "critical",
            "Camera {{ $labels.camera }} of store {{ $labels.store }} delivers no frames",
            f"No frame processed for {{{{ $value | humanizeDuration }}}} (over {STALE_AFTER_S} s) while the feed "
            "should run: check the camera, its network path and `storefleet` /health (reconnects, error).",
        ),
        Alert(
            "StoreFleetCameraFpsBelowTarget",
            f"{_rate(name(m.CAMERA_PROCESSED), SC, '2m')}\n  < {FPS_FLOOR} * max by ({SC}) "
            f"({name(m.CAMERA_TARGET_FPS)})\nand {_expected()}",
            "5m", "warning",
            "Camera {{ $labels.camera }} of store {{ $labels.store }} runs under its target fps",
            f"Processing {{{{ $value | printf \"%.1f\" }}}} frames/s, under {int(FPS_FLOOR * 100)}% of the camera's "
            "target: the detector is behind (see drops and detector saturation) or the source is slow.",
        ),
        Alert(
            "StoreFleetDetectorSaturated",
            f"avg by (deployment) ({name(m.DETECTOR_QUEUE)}) > {target:g}\n"
            f"or avg by (deployment) (rate({name(m.DETECTOR_LATENCY, '_sum')}[5m])) > {BUSY_RATIO}",
            "5m", "warning",
            "Detector {{ $labels.deployment }} is saturated",
            f"Replicas hold more requests than the autoscaling target ({target:g}, ray_config.yaml) or spend over "
            f"{int(BUSY_RATIO * 100)}% of their time in inference: the autoscaler is at max_replicas or cannot "
            "place replicas. Live cameras drop frames meanwhile.",
        ),
        Alert(
            "StoreFleetRedisUnreachable",
            f"sum by (store) (increase({name(m.REDIS_ERRORS)}[2m])) > {REDIS_ERRORS_2M}",
            "1m", "critical",
            "Redis fails for store {{ $labels.store }}",
            "{{ $value | printf \"%.0f\" }} failed Redis operations in 2 minutes: events are not stored and "
            "camera checkpoints not written until Redis answers again.",
        ),
        Alert(
            "StoreFleetAlertStorm",
            f"sum by (store) (increase({LP_ALERTS}[10m])) > {ALERT_STORM}",
            "2m", "warning",
            "Alert storm in store {{ $labels.store }}",
            f"{{{{ $value | printf \"%.0f\" }}}} loss-prevention alerts in 10 minutes (over {ALERT_STORM}): a rule "
            "misfires or a camera view changed; staff cannot act on this many.",
        ),
        Alert(
            "StoreFleetIngestRejectsRising",
            f"{_rate(INGEST_EVENTS, 'store', '10m', REJECTED)}\n  / {_rate(INGEST_EVENTS, 'store', '10m')} "
            f"> {REJECT_RATIO}",
            "10m", "warning",
            "Ingest rejects events for store {{ $labels.store }}",
            f"{{{{ $value | humanizePercentage }}}} of events posted to /events/ingest are rejected (over "
            f"{int(REJECT_RATIO * 100)}%): an edge pipeline sends a bad schema or unknown store/camera ids.",
        ),
        Alert(
            "StoreFleetMetricsDown",
            f'up{{job=~"{JOB}.*"}} == 0',
            "2m", "critical",
            "Prometheus cannot scrape Ray metrics at {{ $labels.instance }}",
            "The Ray node's metrics export does not answer: the node is down or its metrics agent died; every "
            "other StoreFleet alert is blind for this node.",
        ),
    ]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, long lines unfolded: readable rule files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def _yaml(data: Any, header: str) -> str:
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return f"# {header}\n# Generated by `storefleet obs generate` from cluster/observability.py: edit there.\n{body}"


def recording_rules_yaml() -> str:
    groups = [{"name": "storefleet.recording", "rules": [{"record": r.record, "expr": r.expr} for r in RECORDS]}]
    return _yaml({"groups": groups}, "StoreFleet recording rules (fleet, camera, detector, store, analytics).")


def alert_rules_yaml(serve_config: Path = SERVE_CONFIG) -> str:
    rules = [
        {"alert": a.alert, "expr": a.expr, "for": a.for_, "labels": {"severity": a.severity},
         "annotations": {"summary": a.summary, "description": a.description}}
        for a in alerts(serve_config)
    ]
    return _yaml({"groups": [{"name": "storefleet.alerts", "rules": rules}]}, "StoreFleet alert rules.")


# ------------------------------------------------------------------------------ Prometheus configs

def prometheus_config(
    targets: list[str],
    rule_files: list[str],
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    alertmanagers: list[str] | None = None,
) -> dict[str, Any]:
    """Scrape config for Ray nodes at fixed `host:port` targets (a local cluster, or `ray up` VMs)."""
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": rule_files,
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
    }
    if alertmanagers:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
    return cfg


#: Headless Service that lists every Ray pod's metrics port in DNS (see `k8s_metrics_service`).
K8S_SERVICE = "storefleet-ray-metrics"
K8S_NAMESPACE = "storefleet"
RAY_METRICS_PORT = 8080  # KubeRay's default metrics port on every Ray pod


def k8s_metrics_service(namespace: str = K8S_NAMESPACE) -> dict[str, Any]:
    """A headless Service over every Ray pod (KubeRay labels them `ray.io/is-ray-node: "yes"`).

    Its DNS name resolves to one A record per ready pod, which Prometheus' `dns_sd_configs` scrapes:
    no Kubernetes API access (RBAC) for Prometheus, and the config is checkable with Debian's
    promtool, which is built without `kubernetes_sd_configs`.
    """
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": K8S_SERVICE, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "storefleet"}},
        "spec": {
            "clusterIP": "None",
            # Add `ray.io/cluster: <name>` to scrape one Ray cluster of several in the namespace.
            "selector": {"ray.io/is-ray-node": "yes"},
            "ports": [{"name": "metrics", "port": RAY_METRICS_PORT, "targetPort": RAY_METRICS_PORT}],
        },
    }


def prometheus_k8s_config(rule_files: list[str], namespace: str = K8S_NAMESPACE) -> dict[str, Any]:
    """Scrape config for a KubeRay cluster: every Ray pod found through the headless metrics Service."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": rule_files,
        "scrape_configs": [{
            "job_name": f"{JOB}-kuberay",
            "dns_sd_configs": [{"names": [f"{K8S_SERVICE}.{namespace}.svc.cluster.local"], "type": "A",
                                "port": RAY_METRICS_PORT, "refresh_interval": "30s"}],
        }],
    }


def local_config_yaml(metrics_port: int = 8080, host: str = "127.0.0.1", rules_dir: Path | None = None,
                      scrape_interval: str = "15s", evaluation_interval: str = "15s") -> str:
    """prometheus.yml for a local `storefleet run --metrics-port PORT`; rule paths absolute unless the
    config lives next to `rules/` (the committed copy)."""
    rules = [str(p) for p in rule_paths(rules_dir)] if rules_dir is not None else [
        f"rules/{RECORDING_FILE.name}", f"rules/{ALERTS_FILE.name}"]
    cfg = prometheus_config([f"{host}:{metrics_port}"], rules, scrape_interval, evaluation_interval)
    return _yaml(cfg, f"Prometheus for a local StoreFleet cluster (`storefleet run --metrics-port {metrics_port}`).")


def k8s_config_yaml() -> str:
    cfg = prometheus_k8s_config([f"rules/{RECORDING_FILE.name}", f"rules/{ALERTS_FILE.name}"])
    return _yaml(cfg, f"Prometheus for StoreFleet on a KubeRay cluster in namespace {K8S_NAMESPACE}: apply "
                      "kuberay-metrics-service.yaml, and put this file and rules/ side by side (e.g. one ConfigMap "
                      "mounted at /etc/prometheus).")


def rule_paths(rules_dir: Path | None = None) -> list[Path]:
    d = rules_dir or RULES_DIR
    return [d / RECORDING_FILE.name, d / ALERTS_FILE.name]


# ---------------------------------------------------------------------------------------- dashboards

PanelKind = Literal["timeseries", "stat", "gauge", "bargauge"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: PanelKind = "timeseries"
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # label_values(...)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ("storefleet",)
    file: str = field(default="")

    def panels(self) -> Iterator[Panel]:
        for row in self.rows:
            yield from row.panels


def q(expr: str | Record, legend: str = "") -> Query:
    return Query(str(expr), legend)


def sel(metric: str | Record | m.MetricSpec, match: str, suffix: str = "") -> str:
    """`metric{match}` for a raw metric, a recording rule or a catalogued spec."""
    base = name(metric, suffix) if isinstance(metric, m.MetricSpec) else str(metric) + suffix
    return f"{base}{{{match}}}"


STORE_VAR = Variable("store", "Store", f"label_values({name(m.CAMERA_PROCESSED)}, store)")
CAMERA_VAR = Variable("camera", "Camera", f'label_values({name(m.CAMERA_PROCESSED)}{{{STORE}}}, camera)')
RI = "$__rate_interval"


def fleet_overview() -> Dashboard:
    """For SREs: throughput, latency, drops, saturation and errors per store and camera."""
    return Dashboard(
        uid="storefleet-fleet", title="StoreFleet / Fleet overview", file="storefleet-fleet-overview.json",
        description="SRE view of the camera fleet: throughput, latency, drops, saturation and errors per store "
                    "and camera. Generated by cluster/observability.py.",
        variables=(STORE_VAR, CAMERA_VAR),
        rows=(
            Row("Health now", (
                Panel("Stale feeds", f"Cameras that should deliver frames but processed none for over "
                      f"{STALE_AFTER_S} s (alert: StoreFleetCameraFeedStale).",
                      (q(f"count(({sel(R_STALENESS, CAM)} > {STALE_AFTER_S}) and {_expected()}) or vector(0)"),),
                      kind="stat", width=6, height=4),
                Panel("Frames processed / s", "All selected cameras together.",
                      (q(f"sum({sel(R_PROCESSED, CAM)})"),), unit="fps", kind="stat", width=6, height=4),
                Panel("Detector p95 batch latency", "95th percentile of one batched inference, last 5 minutes.",
                      (q(f"max({R_DET_P95})"),), unit="s", kind="stat", width=6, height=4),
                Panel("Redis errors (5 min)", "Failed Redis operations in the selected stores.",
                      (q(f"sum({sel(R_REDIS_ERRORS, STORE)})"),), kind="stat", width=6, height=4),
            )),
            Row("Throughput", (
                Panel("Frames processed / s per camera", "Frames detected and tracked per second.",
                      (q(sel(R_PROCESSED, CAM), "{{store}} / {{camera}}"),), unit="fps"),
                Panel("Camera fps vs target", "Recent fps gauge of each camera and its configured target "
                      "(live cameras only).",
                      (q(f"max by ({SC}) ({sel(m.CAMERA_FPS, CAM)})", "{{camera}} fps"),
                       q(f"max by ({SC}) ({sel(m.CAMERA_TARGET_FPS, CAM)})", "{{camera}} target")), unit="fps"),
                Panel("Frames read / s per store", "Frames read from sources (before sampling to target fps).",
                      (q(f"sum by (store) ({sel(R_READ, CAM)})", "{{store}}"),), unit="fps"),
                Panel("Detector frames / s", "Frames through the detector deployment.",
                      (q(str(R_DET_FRAMES), "{{deployment}}"),), unit="fps"),
                Panel("Events / s by type", "Visitor events emitted by the selected stores' cameras.",
                      (q(f"sum by (type) ({sel(R_EVENTS, STORE)})", "{{type}}"),), unit="ops"),
            )),
            Row("Latency", (
                Panel("Detector batch latency", "Quantiles of one batched inference (5-minute window).",
                      (q(str(R_DET_P50), "p50"), q(str(R_DET_P95), "p95"), q(str(R_DET_P99), "p99")), unit="s"),
                Panel("Detector batch size", "Average frames per detector call (cross-camera batches and "
                      "backfill chunks).", (q(str(R_DET_BATCH), "{{deployment}}"),), unit="short"),
                Panel("Redis append latency p95", "95th percentile of one batched event append, per store.",
                      (q(sel(R_REDIS_P95, STORE), "{{store}}"),), unit="s"),
            )),
            Row("Drops and staleness", (
                Panel("Dropped frames / s", "Frames skipped because inference fell behind (latest-frame policy).",
                      (q(sel(R_DROPPED, CAM), "{{store}} / {{camera}}"),), unit="fps"),
                Panel("Drop ratio", "Dropped / (processed + dropped), 5-minute window.",
                      (q(sel(R_DROP_RATIO, CAM), "{{store}} / {{camera}}"),), unit="percentunit", min=0, max=1),
                Panel("Staleness", "Seconds since each camera's last processed frame.",
                      (q(sel(R_STALENESS, CAM), "{{store}} / {{camera}}"),), unit="s"),
                Panel("Source reconnects (5 min)", "Reconnect attempts of each camera's source.",
                      (q(sel(R_RECONNECTS, CAM), "{{store}} / {{camera}}"),), unit="short"),
            )),
            Row("Saturation", (
                Panel("Detector queue depth", "Requests inside the detector replicas (waiting for a batch or "
                      "running); the saturation alert compares the average with the autoscaling target.",
                      (q(f"max by (deployment) ({name(m.DETECTOR_QUEUE)})", "{{deployment}} max"),
                       q(str(R_DET_QUEUE), "{{deployment}} avg")), unit="short"),
                Panel("Detector busy ratio", "Seconds of inference per second, averaged over replicas.",
                      (q(str(R_DET_BUSY), "{{deployment}}"),), unit="percentunit", min=0),
                Panel("Tracked people per camera", "Active tracks of each camera's tracker.",
                      (q(f"max by ({SC}) ({sel(m.TRACKER_TRACKS, CAM)})", "{{store}} / {{camera}}"),),
                      unit="short"),
            )),
            Row("Errors and ingest", (
                Panel("Redis errors (5 min)", "Failed appends and failed health pings, per store.",
                      (q(sel(R_REDIS_ERRORS, STORE), "{{store}}"),), unit="short"),
                Panel("Stored events by outcome", "Events offered to each store's log: accepted, duplicate "
                      "(replays after a restart) and rejected.",
                      (q(sel(R_STORE_EVENTS, STORE), "{{store}} {{type}}"),), unit="ops"),
                Panel("HTTP ingest by outcome", "Events posted to /events/ingest: accepted, duplicate, rejected.",
                      (q(sel(R_INGEST, STORE), "{{store}} {{type}}"),), unit="ops"),
                Panel("HTTP ingest reject ratio", "Rejected / all posted events, 10-minute window.",
                      (q(sel(R_INGEST_REJECTED, STORE), "{{store}}"),), unit="percentunit", min=0, max=1),
            )),
            Row("Loss prevention and behavioural analysis", (
                Panel("Rule evaluations / s", "Loss-prevention rules evaluated by each store's rule actor.",
                      (q(sel(R_LP_EVALUATIONS, STORE), "{{store}}"),), unit="ops", width=8),
                Panel("Escalations and suppressed alerts, last hour", "Escalations to behavioural analysis, and "
                      "alerts the alert-config dedup window dropped.",
                      (q(sel(R_LP_ESCALATIONS, STORE), "{{store}} escalations"),
                       # The suppressed counter appears at the first suppression: 0 where a rule actor runs.
                       q(f"sum by (store) ({sel(R_LP_SUPPRESSED, STORE)}) or 0 * {sel(R_LP_ESCALATIONS, STORE)}",
                         "{{store}} suppressed")), width=8),
                Panel("Behavioural-analysis requests by outcome", "Escalations each store's watcher answered.",
                      (q(sel(R_BEHAVIOUR, STORE), "{{store}} {{type}}"),), unit="reqps", width=8),
                Panel("Pre-filter pass rate", "Share of clips the pose pre-filter sends on to the VLM.",
                      (q(sel(R_PREFILTER_PASS, STORE), "{{store}}"),), unit="percentunit", min=0, max=1, width=8),
                Panel("Pre-filter latency p95", "95th percentile of one pose pre-filter decision.",
                      (q(sel(R_PREFILTER_P95, STORE), "{{store}}"),), unit="s", width=8),
                Panel("VLM latency p95", "95th percentile of one vision-language analysis (queueing included).",
                      (q(str(R_VLM_P95), "{{deployment}}"),), unit="s", width=8),
                Panel("VLM requests in flight", "Analyses inside the BehaviourAnalysis replicas.",
                      (q(f"sum by (deployment) ({name(m.VLM_INFLIGHT)})", "{{deployment}}"),), width=12),
                Panel("VLM answers by outcome", "suspicious, no_match, no_enough_data, timeout, overloaded, "
                      "no_frames per second.", (q(str(R_VLM_ANSWERS), "{{deployment}} {{type}}"),),
                      unit="reqps", width=12),
            )),
        ),
    )


def store_operations() -> Dashboard:
    """For HQ: visitors, conversion, queues and loss-prevention alerts per store."""
    return Dashboard(
        uid="storefleet-store-ops", title="StoreFleet / Store operations", file="storefleet-store-operations.json",
        description="HQ view of each store: visitors, conversion, billing queues and loss-prevention alerts. "
                    "Generated by cluster/observability.py.",
        variables=(STORE_VAR,),
        rows=(
            Row("Visitors", (
                Panel("Entries, last hour", "Visitors who came in through a door tripwire in the last hour.",
                      (q(sel(R_ENTRIES, STORE), "{{store}}"),), kind="stat", width=8, height=5),
                Panel("People tracked now", "People the store's cameras track right now (all cameras summed; "
                      "a person seen by two cameras counts twice).",
                      (q(f"sum by (store) ({sel(m.TRACKER_TRACKS, STORE)})", "{{store}}"),), kind="stat",
                      width=8, height=5),
                Panel("Conversion now", "Share of today's visitors who bought (POS transactions / entries).",
                      (q(f"max by (store) ({sel(m.CONVERSION, STORE)})", "{{store}}"),), unit="percentunit",
                      kind="gauge", width=8, height=5, min=0, max=1),
                Panel("Entries and exits per hour", "Door crossings per hour (5-minute rate).",
                      (q(f"3600 * sum by (store, type) ({sel(R_EVENTS, DOORS)})",
                         "{{store}} {{type}}"),), unit="short"),
                Panel("Conversion over time", "Conversion ratio per store.",
                      (q(f"max by (store) ({sel(m.CONVERSION, STORE)})", "{{store}}"),), unit="percentunit",
                      min=0, max=1, width=6),
                Panel("POS transactions, last hour", "Transactions posted by the tills: accepted, matched to a "
                      "visitor, duplicate (retries), rejected.",
                      (q(sel(R_POS, STORE), "{{store}} {{type}}"),), kind="bargauge", width=6),
            )),
            Row("Queues", (
                Panel("Billing queue depth", "People waiting in the store's billing queues.",
                      (q(f"max by (store) ({sel(m.QUEUE_DEPTH, STORE)})", "{{store}}"),), unit="short"),
                Panel("Queue joins and abandons per hour", "BILLING_QUEUE_JOIN and BILLING_QUEUE_ABANDON events.",
                      (q(f"3600 * sum by (store, type) ({sel(R_EVENTS, QUEUE_EVENTS)})",
                         "{{store}} {{type}}"),), unit="short"),
                Panel("Zone visits per hour", "ZONE_ENTER events per hour: how busy the shop floor is.",
                      (q(f"3600 * sum by (store) ({sel(R_EVENTS, ZONE_ENTER)})",
                         "{{store}}"),), unit="short"),
            )),
            Row("Loss prevention", (
                Panel("Alerts by type, last hour", "Loss-prevention alerts raised per type.",
                      (q(sel(R_ALERTS_TYPE, STORE), "{{store}} {{type}}"),), kind="bargauge"),
                Panel("Alerts by severity, last hour", "Loss-prevention alerts raised per severity.",
                      (q(sel(R_ALERTS_SEVERITY, STORE), "{{store}} {{severity}}"),), kind="bargauge"),
            )),
        ),
    )


DASHBOARDS = (fleet_overview, store_operations)


def expand(expr: str, store: str = ".*", camera: str = ".*", rate_interval: str = "1m") -> str:
    """A panel query as Grafana sends it: variables replaced (`.*` is Grafana's "All" for regexes)."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$store", store).replace("$camera", camera))


def panel_queries(d: Dashboard) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of a dashboard."""
    return [(p.title, qq.expr) for p in d.panels() for qq in p.queries]


def render_dashboard(d: Dashboard) -> dict[str, Any]:
    """Grafana dashboard JSON (schema of Grafana 11), built with Grafana's foundation SDK."""
    from grafana_foundation_sdk.builders import bargauge, gauge, prometheus, stat, timeseries
    from grafana_foundation_sdk.builders import dashboard as gd
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    ds = DataSourceRef(type_val="prometheus", uid="${datasource}")
    builders = {"timeseries": timeseries.Panel, "stat": stat.Panel, "gauge": gauge.Panel, "bargauge": bargauge.Panel}
    b = (gd.Dashboard(d.title).uid(d.uid).description(d.description).tags(list(d.tags)).refresh("30s")
         .time("now-1h", "now").timezone("browser").editable()
         .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus")))
    for v in d.variables:
        b = b.with_variable(gd.QueryVariable(v.name).label(v.label).query(v.query).datasource(ds).multi(True)
                            .include_all(True).all_value(".*").refresh(_on_time_range()))
    panel_id = 1
    for row in d.rows:
        b = b.with_row(gd.Row(row.title).id(panel_id))
        panel_id += 1
        for p in row.panels:
            pb = (builders[p.kind]().id(panel_id).title(p.title).description(p.description).datasource(ds)
                  .unit(p.unit).span(p.width).height(p.height))
            if p.min is not None:
                pb = pb.min(p.min)
            if p.max is not None:
                pb = pb.max(p.max)
            for i, qq in enumerate(p.queries):
                pb = pb.with_target(prometheus.Dataquery().expr(qq.expr).legend_format(qq.legend or "__auto")
                                    .ref_id(chr(ord("A") + i)).datasource(ds))
            b = b.with_panel(pb)
            panel_id += 1
    return json.loads(json.dumps(b.build(), cls=JSONEncoder))


def _on_time_range() -> Any:
    from grafana_foundation_sdk.models.dashboard import VariableRefresh

    return VariableRefresh.ON_TIME_RANGE_CHANGED


def dashboard_json(d: Dashboard) -> str:
    return json.dumps(render_dashboard(d), indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------------- Grafana provisioning

def datasource_provisioning(prometheus_url: str = "http://127.0.0.1:9090") -> str:
    data = {"apiVersion": 1, "datasources": [{
        "name": "StoreFleet Prometheus", "uid": DATASOURCE_UID, "type": "prometheus", "access": "proxy",
        "url": prometheus_url, "isDefault": True, "jsonData": {"timeInterval": "15s"},
    }]}
    return _yaml(data, "Grafana datasource: the Prometheus that scrapes the fleet (set its URL).")


def dashboard_provisioning() -> str:
    data = {"apiVersion": 1, "providers": [{
        "name": "storefleet", "folder": "StoreFleet", "type": "file", "disableDeletion": False,
        "allowUiUpdates": False, "updateIntervalSeconds": 30,
        "options": {"path": "/var/lib/grafana/dashboards/storefleet", "foldersFromFilesStructure": False},
    }]}
    return _yaml(data, "Grafana dashboards: mount infra/grafana/dashboards at /var/lib/grafana/dashboards/storefleet.")


# ------------------------------------------------------------------------------------------ files

def generated_files() -> dict[Path, str]:
    """Every file under infra/ this module owns, with its content."""
    files = {
        RECORDING_FILE: recording_rules_yaml(),
        ALERTS_FILE: alert_rules_yaml(),
        PROM_DIR / "prometheus.yml": local_config_yaml(),
        PROM_DIR / "prometheus-kuberay.yml": k8s_config_yaml(),
        PROM_DIR / "kuberay-metrics-service.yaml": _yaml(k8s_metrics_service(), "Headless Service listing every "
                                                         "Ray pod's metrics port for Prometheus' DNS discovery."),
        GRAFANA_DIR / "provisioning" / "datasources" / "storefleet.yml": datasource_provisioning(),
        GRAFANA_DIR / "provisioning" / "dashboards" / "storefleet.yml": dashboard_provisioning(),
    }
    for make in DASHBOARDS:
        d = make()
        files[DASHBOARDS_DIR / d.file] = dashboard_json(d)
    return files


def write_generated(check: bool = False) -> list[Path]:
    """Write the generated files (or with `check`, only report them); returns the ones that differed."""
    stale = []
    for path, text in generated_files().items():
        if not path.is_file() or path.read_text() != text:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return stale


# ------------------------------------------------------------------------------ running Prometheus

def prometheus_binary() -> str:
    exe = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(exe).is_file():
        raise FileNotFoundError("prometheus not found: `apt-get install prometheus` (Debian's package)")
    return exe


def promtool_binary() -> str:
    exe = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(exe).is_file():
        raise FileNotFoundError("promtool not found: `apt-get install prometheus` (it ships promtool)")
    return exe


def free_port(low: int, high: int, host: str = "127.0.0.1") -> int:
    """The first port in [low, high] nobody listens on."""
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


@dataclass
class PrometheusServer:
    """A Prometheus process on loopback with its own config and data dir (for `storefleet obs
    prometheus` and the integration test)."""

    config: Path
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0, log_file: Path | None = None) -> PrometheusServer:
        import httpx

        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={self.config}", f"--storage.tsdb.path={self.data_dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=out, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode} (log: {log_file})")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"prometheus not ready on {self.url} after {timeout_s:.0f}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def metric_names_in(expr: str) -> set[str]:
    """Series names an expression reads (`ray_storefleet_*`, recording rules, `up`)."""
    found = set(re.findall(r"\b(ray_storefleet_[a-z0-9_]+|[a-z_]+:storefleet_[a-z0-9_]+:[a-z0-9_]+)\b", expr))
    return found
