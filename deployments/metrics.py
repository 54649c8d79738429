"""Prometheus metrics of the Ray side, through Ray's metrics export (`ray.util.metrics`).

One place for every metric name, so dashboards and alert rules in infra/ have a single source to
check against. Names are `storefleet_*` with the unit in the name; labels are limited to store,
camera, deployment and type (never a visitor id: unbounded label values break Prometheus).
Ray prefixes exported names with `ray_`.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56]
_BATCH_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 32]


class DetectorMetrics:
    def __init__(self) -> None:
        self.latency = Histogram(
            "storefleet_detector_batch_latency_seconds",
            description="Wall time of one batched detector inference.",
            boundaries=_LATENCY_BUCKETS_S,
            tag_keys=("deployment",),
        )
        self.batch = Histogram(
            "storefleet_detector_batch_size_frames",
            description="Frames per batched detector call.",
            boundaries=_BATCH_BUCKETS,
            tag_keys=("deployment",),
        )
        self.frames = Counter(
            "storefleet_detector_frames_total", description="Frames run through the detector.", tag_keys=("deployment",)
        )
        self.tags = {"deployment": "Detector"}

    def observe_batch(self, size: int, seconds: float) -> None:
        self.latency.observe(seconds, self.tags)
        self.batch.observe(size, self.tags)
        self.frames.inc(size, self.tags)


class CameraMetrics:
    def __init__(self, store_id: str, camera_id: str) -> None:
        self.tags = {"store": store_id, "camera": camera_id}
        keys = ("store", "camera")
        self.read = Counter("storefleet_camera_frames_read_total", description="Frames read from the source.",
                            tag_keys=keys)
        self.processed = Counter("storefleet_camera_frames_processed_total",
                                 description="Frames detected and tracked.", tag_keys=keys)
        self.dropped = Counter("storefleet_camera_frames_dropped_total",
                               description="Frames skipped because inference fell behind (latest-frame policy).",
                               tag_keys=keys)
        self.fps = Gauge("storefleet_camera_fps", description="Processed frames per second.", tag_keys=keys)
        self.staleness = Gauge("storefleet_camera_staleness_seconds",
                               description="Seconds since the last processed frame.", tag_keys=keys)
        self.tracks = Gauge("storefleet_tracker_active_tracks", description="People tracked now.", tag_keys=keys)
        self.reconnects = Counter("storefleet_camera_reconnects_total", description="Source reconnect attempts.",
                                  tag_keys=keys)
        self.events = Counter("storefleet_camera_events_total", description="Events emitted by the camera.",
                              tag_keys=(*keys, "type"))

    def count_events(self, types: list[str]) -> None:
        counts: dict[str, int] = {}
        for t in types:
            counts[t] = counts.get(t, 0) + 1
        for t, n in counts.items():
            self.events.inc(n, {**self.tags, "type": t})


class StoreMetrics:
    def __init__(self, store_id: str) -> None:
        self.tags = {"store": store_id}
        self.events = Counter("storefleet_store_events_total", description="Events stored, by outcome.",
                              tag_keys=("store", "type"))
        self.append_latency = Histogram("storefleet_redis_append_latency_seconds",
                                        description="Latency of one batched event append to Redis.",
                                        boundaries=_LATENCY_BUCKETS_S, tag_keys=("store",))
        self.redis_errors = Counter("storefleet_redis_errors_total", description="Failed Redis operations.",
                                    tag_keys=("store",))

    def appended(self, accepted: int, duplicates: int, seconds: float) -> None:
        if accepted:
            self.events.inc(accepted, {**self.tags, "type": "accepted"})
        if duplicates:
            self.events.inc(duplicates, {**self.tags, "type": "duplicate"})
        self.append_latency.observe(seconds, self.tags)
