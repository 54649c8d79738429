"""Shelf cameras: wires a `ShelfRunner` (frames -> gap detector) to Redis and the inventory alerts.

A camera actor whose camera has role `shelf` builds this instead of the person pipeline; no detector
deployment or store actor is involved. Observations go through `InventoryService.on_shelf_gaps`:
the latest gap state per segment in Redis, and "replenish from backroom" / "shelf empty, no stock"
alerts for the SKUs the camera sees empty.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from cluster.assets import resolve_source
from workloads.camera_runner import CameraStatus
from workloads.config import CameraConfig, FleetConfig, StoreConfig
from workloads.inventory.service import InventoryService
from workloads.inventory.settings import BoxModelGapDetectorConfig, GapDetectorConfig
from workloads.inventory.shelf_gaps import BoxCoverageGapDetector, ClassicalGapDetector, GapDetector
from workloads.inventory.shelf_runner import ShelfRunner
from workloads.sources import FramePump, open_source


def make_detector(cfg: GapDetectorConfig) -> GapDetector:
    """The gap detector a store's config asks for."""
    if isinstance(cfg, BoxModelGapDetectorConfig):
        from models.shelf_boxes import YoloBoxes

        return BoxCoverageGapDetector(YoloBoxes(cfg.model_path, cfg.conf_threshold), cfg.min_gap_fraction)
    return ClassicalGapDetector(cfg)


def shelf_runner(fleet: FleetConfig, store: StoreConfig, camera: CameraConfig, redis_url: str,
                 publish_status: Callable[[CameraStatus], None]) -> ShelfRunner:
    uri = resolve_source(camera.source)
    service = InventoryService(fleet, redis.Redis.from_url(redis_url))

    def make_pump(fps: float) -> FramePump:
        return FramePump(open_source(uri), fps, camera.realtime, camera.loop, 0, camera.max_frames, depth=2)

    return ShelfRunner(store, camera, make_pump, make_detector(store.inventory.gap_detector),
                       publish=lambda obs: service.on_shelf_gaps(obs), publish_status=publish_status)
