"""Prometheus metrics of the Ray side, through Ray's metrics export (`ray.util.metrics`).

One place for every metric name, so dashboards and alert rules in infra/ have a single source to
check against: each metric is a `MetricSpec` registered in `CATALOGUE` (`cluster/observability.py`
builds the Prometheus rules and Grafana panels from it, and the tests check every name against it).
Names are `storefleet_*` with the unit in the name; labels are limited to store, camera, deployment
and type (never a visitor id: unbounded label values break Prometheus). Ray prefixes exported names
with `ray_` and adds its own labels (WorkerId, NodeAddress, SessionName, ...), so a metric recorded
by several processes is several series: queries aggregate with `sum by`/`max by` our labels.

Counters with known label values are exported at 0 from the start (Prometheus' advice): a series that
only appears at the first error makes `rate()` and "no data" panels lie about healthy systems.
Gauges are `HeldGauge`s: Ray 2.60 stops exporting a gauge series about 20 s after its last `set`, so
a gauge that rarely changes (a target, an idle queue) would vanish; a process-wide thread re-sets them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ray.util.metrics import Counter, Gauge, Histogram

from workloads.events import EventType

_LATENCY_BUCKETS_S = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56]
_BATCH_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 32]

#: The only label keys a StoreFleet metric may have (bounded values; never a visitor or event id).
ALLOWED_LABELS = frozenset({"store", "camera", "deployment", "type"})
#: What Ray's exporter puts in front of every custom metric name.
RAY_PREFIX = "ray_"

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric as Prometheus will see it (minus Ray's prefix): the single place it is defined."""

    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...]
    boundaries: tuple[float, ...] = ()
    #: Who records it; a metric whose producer is not built yet says so here.
    producer: str = ""

    @property
    def exported(self) -> str:
        """The name in Prometheus (`ray_` + name); histograms add `_bucket`, `_sum` and `_count`."""
        return RAY_PREFIX + self.name

    def create(self) -> Counter | HeldGauge | Histogram:
        """The Ray metric object; create once per process (Ray registers it with the node's agent)."""
        if self.kind == "counter":
            return Counter(self.name, description=self.description, tag_keys=self.labels)
        if self.kind == "gauge":
            return HeldGauge(Gauge(self.name, description=self.description, tag_keys=self.labels))
        return Histogram(self.name, description=self.description, boundaries=list(self.boundaries),
                         tag_keys=self.labels)


@dataclass(eq=False)
class HeldGauge:
    """A Ray gauge that keeps exporting the last value of each label set until `forget`.

    Measured on Ray 2.60: a gauge value set once is gone from /metrics 20-30 s later. Every held gauge
    of the process is re-set every `REFRESH_S` by one daemon thread, started with the first gauge.
    """

    REFRESH_S: ClassVar[float] = 5.0
    _all: ClassVar[list[HeldGauge]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _thread: ClassVar[threading.Thread | None] = None

    gauge: Gauge
    values: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with HeldGauge._lock:
            HeldGauge._all.append(self)
            if HeldGauge._thread is None:
                HeldGauge._thread = threading.Thread(target=HeldGauge._refresh_forever, name="metrics-refresh",
                                                     daemon=True)
                HeldGauge._thread.start()

    def set(self, value: float, tags: dict[str, str]) -> None:
        with HeldGauge._lock:
            self.values[tuple(sorted(tags.items()))] = float(value)
            self.gauge.set(value, tags)

    def forget(self, tags: dict[str, str]) -> None:
        """Stop re-exporting this label set (it disappears from /metrics after Ray's timeout)."""
        with HeldGauge._lock:
            self.values.pop(tuple(sorted(tags.items())), None)

    @classmethod
    def _refresh_forever(cls) -> None:
        while True:
            time.sleep(cls.REFRESH_S)
            with cls._lock:
                for held in cls._all:
                    for key, value in held.values.items():
                        held.gauge.set(value, dict(key))


CATALOGUE: dict[str, MetricSpec] = {}


def spec(
    name: str, kind: Kind, description: str, labels: tuple[str, ...], boundaries: list[float] | None = None,
    producer: str = "",
) -> MetricSpec:
    """Register a metric in `CATALOGUE`, refusing names and labels that break the conventions above."""
    if not name.startswith("storefleet_"):
        raise ValueError(f"metric {name!r} must start with storefleet_")
    if (kind == "counter") != name.endswith("_total"):
        raise ValueError(f"metric {name!r}: counters, and only counters, end in _total")
    if bad := set(labels) - ALLOWED_LABELS:
        raise ValueError(f"metric {name!r}: labels {sorted(bad)} not in {sorted(ALLOWED_LABELS)}")
    if kind == "histogram" and not boundaries:
        raise ValueError(f"histogram {name!r} needs bucket boundaries")
    if name in CATALOGUE:
        raise ValueError(f"metric {name!r} defined twice")
    s = MetricSpec(name, kind, description, labels, tuple(boundaries or ()), producer)
    CATALOGUE[name] = s
    return s


def zero(counter: Counter, tags: dict[str, str]) -> None:
    """Export `counter` at 0 for `tags` before its first event.

    `Counter.inc` refuses 0; `_record` is what it calls after that check (Ray is pinned in
    requirements.txt, and the Prometheus integration test sees these zero series).
    """
    counter._record(0, tags)


# ----------------------------------------------------------------------------------------- detector

DETECTOR_LATENCY = spec(
    "storefleet_detector_batch_latency_seconds", "histogram", "Wall time of one batched detector inference.",
    ("deployment",), _LATENCY_BUCKETS_S, "deployments/detector.py")
DETECTOR_BATCH = spec(
    "storefleet_detector_batch_size_frames", "histogram", "Frames per batched detector call.",
    ("deployment",), _BATCH_BUCKETS, "deployments/detector.py")
DETECTOR_FRAMES = spec(
    "storefleet_detector_frames_total", "counter", "Frames run through the detector.", ("deployment",),
    producer="deployments/detector.py")
DETECTOR_QUEUE = spec(
    "storefleet_detector_queue_depth_requests", "gauge",
    "Requests inside one detector replica: waiting for a batch or running (one series per replica).",
    ("deployment",), producer="deployments/detector.py")


class DetectorMetrics:
    def __init__(self, deployment: str = "Detector") -> None:
        self.latency = DETECTOR_LATENCY.create()
        self.batch = DETECTOR_BATCH.create()
        self.frames = DETECTOR_FRAMES.create()
        self.queue = DETECTOR_QUEUE.create()
        self.tags = {"deployment": deployment}
        self._inside = 0
        self._lock = threading.Lock()
        zero(self.frames, self.tags)
        self.queue.set(0, self.tags)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.latency.observe(seconds, self.tags)
        self.batch.observe(size, self.tags)
        self.frames.inc(size, self.tags)

    def enter(self) -> None:
        """A request arrived at this replica (queue depth + 1)."""
        with self._lock:
            self._inside += 1
            self.queue.set(self._inside, self.tags)

    def leave(self) -> None:
        """A request left this replica, answered or failed (queue depth - 1)."""
        with self._lock:
            self._inside -= 1
            self.queue.set(self._inside, self.tags)


# ------------------------------------------------------------------------------------------- camera

_CAM = ("store", "camera")
CAMERA_READ = spec("storefleet_camera_frames_read_total", "counter", "Frames read from the source.", _CAM,
                   producer="deployments/camera_actor.py")
CAMERA_PROCESSED = spec("storefleet_camera_frames_processed_total", "counter", "Frames detected and tracked.",
                        _CAM, producer="deployments/camera_actor.py")
CAMERA_DROPPED = spec(
    "storefleet_camera_frames_dropped_total", "counter",
    "Frames skipped because inference fell behind (latest-frame policy).", _CAM,
    producer="deployments/camera_actor.py")
CAMERA_FPS = spec("storefleet_camera_fps", "gauge",
                  "Processed frames per second over the last 10 s (falls to 0 when the feed stalls).", _CAM,
                  producer="deployments/camera_actor.py")
CAMERA_TARGET_FPS = spec(
    "storefleet_camera_target_fps", "gauge",
    "Configured frames per second of a live (realtime) camera; backfill cameras have no target.", _CAM,
    producer="deployments/camera_actor.py")
CAMERA_STALENESS = spec(
    "storefleet_camera_staleness_seconds", "gauge",
    "Seconds since the last processed frame; keeps rising while the feed delivers nothing.", _CAM,
    producer="deployments/camera_actor.py")
CAMERA_EXPECTED = spec(
    "storefleet_camera_feed_expected", "gauge",
    "1 while the camera should deliver frames, 0 once it finished its footage or was stopped on purpose.",
    _CAM, producer="deployments/camera_actor.py")
TRACKER_TRACKS = spec("storefleet_tracker_active_tracks", "gauge", "People tracked now.", _CAM,
                      producer="deployments/camera_actor.py")
CAMERA_RECONNECTS = spec("storefleet_camera_reconnects_total", "counter", "Source reconnect attempts.", _CAM,
                         producer="deployments/camera_actor.py")
CAMERA_EVENTS = spec("storefleet_camera_events_total", "counter", "Events emitted by the camera, by event type.",
                     (*_CAM, "type"), producer="deployments/camera_actor.py")


class CameraMetrics:
    def __init__(self, store_id: str, camera_id: str) -> None:
        self.tags = {"store": store_id, "camera": camera_id}
        self.read = CAMERA_READ.create()
        self.processed = CAMERA_PROCESSED.create()
        self.dropped = CAMERA_DROPPED.create()
        self.fps = CAMERA_FPS.create()
        self.target_fps = CAMERA_TARGET_FPS.create()
        self.staleness = CAMERA_STALENESS.create()
        self.expected = CAMERA_EXPECTED.create()
        self.tracks = TRACKER_TRACKS.create()
        self.reconnects = CAMERA_RECONNECTS.create()
        self.events = CAMERA_EVENTS.create()
        self.redis_errors = REDIS_ERRORS.create()  # the health ping's failures
        for c in (self.read, self.processed, self.dropped, self.reconnects):
            zero(c, self.tags)
        zero(self.redis_errors, {"store": store_id})
        for t in EventType:
            zero(self.events, {**self.tags, "type": t.value})

    def count_events(self, types: list[str]) -> None:
        counts: dict[str, int] = {}
        for t in types:
            counts[t] = counts.get(t, 0) + 1
        for t, n in counts.items():
            self.events.inc(n, {**self.tags, "type": t})


# -------------------------------------------------------------------------------------- store, Redis

STORE_EVENTS = spec(
    "storefleet_store_events_total", "counter",
    "Events offered to the store's event log, by outcome (type: accepted | duplicate | rejected). Every "
    "input path (cameras, HTTP ingest, MQTT) ends here, so this is the ingest outcome.",
    ("store", "type"), producer="deployments/store_actor.py (accepted, duplicate); ingest paths (rejected)")
REDIS_APPEND_LATENCY = spec(
    "storefleet_redis_append_latency_seconds", "histogram", "Latency of one batched event append to Redis.",
    ("store",), _LATENCY_BUCKETS_S, "deployments/store_actor.py")
REDIS_ERRORS = spec(
    "storefleet_redis_errors_total", "counter", "Failed Redis operations (appends, health pings).", ("store",),
    producer="deployments/store_actor.py, deployments/camera_actor.py")

#: Outcomes of `storefleet_store_events_total`.
INGEST_OUTCOMES = ("accepted", "duplicate", "rejected")


class StoreMetrics:
    def __init__(self, store_id: str) -> None:
        self.tags = {"store": store_id}
        self.events = STORE_EVENTS.create()
        self.append_latency = REDIS_APPEND_LATENCY.create()
        self.redis_errors = REDIS_ERRORS.create()
        for outcome in INGEST_OUTCOMES:
            zero(self.events, {**self.tags, "type": outcome})
        zero(self.redis_errors, self.tags)

    def appended(self, accepted: int, duplicates: int, seconds: float) -> None:
        if accepted:
            self.events.inc(accepted, {**self.tags, "type": "accepted"})
        if duplicates:
            self.events.inc(duplicates, {**self.tags, "type": "duplicate"})
        self.append_latency.observe(seconds, self.tags)

    def rejected(self, n: int) -> None:
        """Events refused before storage (invalid, wrong store); ingest paths call this."""
        if n:
            self.events.inc(n, {**self.tags, "type": "rejected"})


# ---------------------------------------------------------------------------------------------------
# Store analytics and behavioural analysis (the latter defined ahead of its producer, so dashboards
# and alert rules exist before the feature): keep these names stable.

CONVERSION = spec(
    "storefleet_store_conversion_ratio", "gauge",
    "Share of the store's visitors who bought (POS transactions / entries) over the analytics window, 0-1.",
    ("store",), producer="deployments/store_actor.py (analytics thread)")
QUEUE_DEPTH = spec(
    "storefleet_store_queue_depth_people", "gauge", "People waiting in the store's billing queues now.",
    ("store",), producer="deployments/store_actor.py (analytics thread)")


class StoreAnalyticsMetrics:
    """Store-level business signals, published by the analytics aggregation."""

    def __init__(self, store_id: str) -> None:
        self.tags = {"store": store_id}
        self.conversion = CONVERSION.create()
        self.queue_depth = QUEUE_DEPTH.create()

    def publish(self, conversion: float | None = None, queue_depth: int | None = None) -> None:
        if conversion is not None:
            self.conversion.set(conversion, self.tags)
        if queue_depth is not None:
            self.queue_depth.set(queue_depth, self.tags)


BEHAVIOUR_REQUESTS = spec(
    "storefleet_behaviour_requests_total", "counter",
    "Behavioural-analysis requests, by outcome (type: e.g. suspicious | normal | error).", ("store", "type"),
    producer="deployments/behaviour.py (watcher actor)")
PREFILTER = spec(
    "storefleet_behaviour_prefilter_total", "counter",
    "Clips through the pose pre-filter, by verdict (type: passed | filtered); pass rate = passed / all.",
    ("store", "type"), producer="deployments/behaviour.py (watcher actor)")
PREFILTER_LATENCY = spec(
    "storefleet_behaviour_prefilter_latency_seconds", "histogram", "Latency of one pose pre-filter decision.",
    ("store",), _LATENCY_BUCKETS_S, "deployments/behaviour.py (watcher actor)")

#: Verdicts of `storefleet_behaviour_prefilter_total`.
PREFILTER_VERDICTS = ("passed", "filtered")


class BehaviourMetrics:
    """Requests to the behavioural-analysis deployment and its pose pre-filter."""

    def __init__(self, store_id: str) -> None:
        self.tags = {"store": store_id}
        self.requests = BEHAVIOUR_REQUESTS.create()
        self.prefilter = PREFILTER.create()
        self.prefilter_latency = PREFILTER_LATENCY.create()
        for v in PREFILTER_VERDICTS:
            zero(self.prefilter, {**self.tags, "type": v})

    def request(self, outcome: str) -> None:
        self.requests.inc(1, {**self.tags, "type": outcome})

    def prefiltered(self, passed: bool, seconds: float) -> None:
        self.prefilter.inc(1, {**self.tags, "type": PREFILTER_VERDICTS[0 if passed else 1]})
        self.prefilter_latency.observe(seconds, self.tags)


# ------------------------------------------------------------------------- loss prevention (rule actors)
# Plain Ray metrics, not catalogue specs: `storefleet_lp_alerts_total` carries a `severity` label
# (three values: INFO, WARNING, CRITICAL) beside the alert type, which the LP dashboards and the
# alert-storm rule of cluster/observability.py group by (it lists the name in EXTERNAL_METRICS).


class LossPreventionMetrics:
    """Rule actor of one store: alerts by type and severity, suppressed alerts, rule evaluations, escalations."""

    def __init__(self, store_id: str) -> None:
        self.tags = {"store": store_id}
        self.alerts = Counter("storefleet_lp_alerts_total",
                              description="Loss-prevention alerts created, by alert type and severity.",
                              tag_keys=("store", "type", "severity"))
        self.suppressed = Counter("storefleet_lp_alerts_suppressed_total",
                                  description="Alerts dropped by the alert-config time-window dedup, by alert type.",
                                  tag_keys=("store", "type"))
        self.evaluations = Counter("storefleet_lp_rule_evaluations_total",
                                   description="Rules whose conditions were evaluated.", tag_keys=("store",))
        self.escalations = Counter("storefleet_lp_escalations_total",
                                   description="Escalation requests written (e.g. behavioural analysis).",
                                   tag_keys=("store",))
        zero(self.evaluations, self.tags)
        zero(self.escalations, self.tags)

    def step(self, alerts: list[tuple[str, str, int]], evaluations: int, escalations: int) -> None:
        """`alerts`: (type, severity, script reply: 1 created, 2 suppressed, 0 replay) per alert of a step."""
        for alert_type, severity, code in alerts:
            if code == 1:
                self.alerts.inc(1, {**self.tags, "type": alert_type, "severity": severity})
            elif code == 2:
                self.suppressed.inc(1, {**self.tags, "type": alert_type})
        if evaluations:
            self.evaluations.inc(evaluations, self.tags)
        if escalations:
            self.escalations.inc(escalations, self.tags)


# ----------------------------------------------------------------------------------- HTTP ingest, POS

INGEST_EVENTS = spec(
    "storefleet_ingest_events_total", "counter",
    "Events received over HTTP (POST /events/ingest), by outcome (type: accepted | duplicate | rejected). "
    "Rejected events that name no store of the fleet count under store=\"unknown\".",
    ("store", "type"), producer="deployments/api/ingest.py")
POS_TRANSACTIONS = spec(
    "storefleet_pos_transactions_total", "counter",
    "POS transactions received, by outcome (type: accepted | duplicate | rejected | matched; matched: "
    "transactions of the request matched to a visitor when it was answered).",
    ("store", "type"), producer="deployments/api/ingest.py")


class IngestMetrics:
    """Outcomes of the HTTP write paths, one instance per API replica process (`shared()`)."""

    _shared: IngestMetrics | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.events = INGEST_EVENTS.create()
        self.transactions = POS_TRANSACTIONS.create()
        self._stores: dict[str, StoreMetrics] = {}

    @classmethod
    def shared(cls) -> IngestMetrics | None:
        """The process's instance; None where Ray is not initialised (no metrics to export to)."""
        import ray

        if not ray.is_initialized():
            return None
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @staticmethod
    def export_zero(store_id: str) -> None:
        """Export the store's outcome series at 0 (the store actor calls this at start, before any request)."""
        events, transactions = INGEST_EVENTS.create(), POS_TRANSACTIONS.create()
        for outcome in INGEST_OUTCOMES:
            zero(events, {"store": store_id, "type": outcome})
        for outcome in (*INGEST_OUTCOMES, "matched"):
            zero(transactions, {"store": store_id, "type": outcome})

    def events_seen(self, outcomes: dict[tuple[str, str], int]) -> None:
        """`outcomes`: (store or "unknown", outcome) -> count. Rejections also count in the store's event total."""
        for (store, outcome), n in outcomes.items():
            if n:
                self.events.inc(n, {"store": store, "type": outcome})
            if outcome == "rejected" and store != "unknown" and n:
                if store not in self._stores:
                    self._stores[store] = StoreMetrics(store)
                self._stores[store].rejected(n)

    def transactions_seen(self, store: str, outcomes: dict[str, int]) -> None:
        for outcome, n in outcomes.items():
            if n:
                self.transactions.inc(n, {"store": store, "type": outcome})


# ------------------------------------------------------------------------- behavioural analysis (VLM)

VLM_LATENCY = spec(
    "storefleet_behaviour_vlm_latency_seconds", "histogram",
    "Wall time of one vision-language analysis in the BehaviourAnalysis replica (queueing in the engine included).",
    ("deployment",), [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64], "deployments/behaviour.py")
VLM_INFLIGHT = spec(
    "storefleet_behaviour_vlm_inflight_requests", "gauge",
    "Analyses inside one BehaviourAnalysis replica (batched in vLLM or waiting for a slot).", ("deployment",),
    producer="deployments/behaviour.py")
VLM_OUTCOMES = spec(
    "storefleet_behaviour_vlm_answers_total", "counter",
    "Answers of the BehaviourAnalysis replica, by outcome (type: suspicious | no_match | no_enough_data | "
    "timeout | overloaded | no_frames).", ("deployment", "type"), producer="deployments/behaviour.py")


class VlmMetrics:
    """The vision-language deployment: latency, requests in flight, answers by outcome."""

    def __init__(self, deployment: str) -> None:
        self.tags = {"deployment": deployment}
        self.latency = VLM_LATENCY.create()
        self.inflight_gauge = VLM_INFLIGHT.create()
        self.answers = VLM_OUTCOMES.create()
        self.inflight_gauge.set(0, self.tags)

    def inflight(self, n: int) -> None:
        self.inflight_gauge.set(n, self.tags)

    def done(self, outcome: str, seconds: float) -> None:
        self.answers.inc(1, {**self.tags, "type": outcome})
        if seconds > 0:
            self.latency.observe(seconds, self.tags)
