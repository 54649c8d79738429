"""Detector Serve deployment: person boxes + 17 keypoints, batched across every camera of the fleet.

A thin wrapper: `models.runtime.PoseDetector` does the work; this file batches frames that arrive
from many camera actors (`@serve.batch`) and keeps one compiled model per input size, so cameras
with different `input_size` share a replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import numpy as np
from ray import serve

from deployments.logging import configure_logging
from deployments.metrics import DetectorMetrics
from models.detections import Detections
from models.registry import ir_path
from models.runtime import PoseDetector
from workloads.config import DetectorConfig

log = logging.getLogger("storefleet.detector")


@serve.deployment(name="Detector")
class Detector:
    def __init__(self, detector: dict[str, Any]) -> None:
        configure_logging()
        self.cfg = DetectorConfig.model_validate(detector)
        self.xml = ir_path(self.cfg.model, self.cfg.precision)
        if not self.xml.is_file():
            raise FileNotFoundError(
                f"{self.xml} is missing: run `storefleet prepare` to export {self.cfg.model} {self.cfg.precision}"
            )
        self._models: dict[int, PoseDetector] = {}
        self._model_for(self.cfg.input_size)
        self._detect_batch.set_max_batch_size(self.cfg.max_batch_size)
        self._detect_batch.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
        self.metrics = DetectorMetrics()
        log.info("detector ready: %s %s at %d on %s", self.cfg.model, self.cfg.precision, self.cfg.input_size,
                 self.cfg.device)

    def _model_for(self, size: int) -> PoseDetector:
        if size not in self._models:
            self._models[size] = PoseDetector(
                self.xml,
                device=self.cfg.device,
                input_size=size,
                conf_threshold=self.cfg.conf_threshold,
                iou_threshold=self.cfg.iou_threshold,
            )
        return self._models[size]

    async def detect(self, frame: np.ndarray, input_size: int | None = None) -> Detections:
        """Detect people in one frame; frames from every camera are batched together."""
        self.metrics.enter()  # counted before the batch queue, so queue depth includes the wait
        try:
            return await self._detect_batch(frame, input_size)
        finally:
            self.metrics.leave()

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def _detect_batch(self, frames: list[np.ndarray], input_sizes: list[int | None]) -> list[Detections]:
        """One batch of frames from any cameras; frames are grouped by input size."""
        t0 = time.perf_counter()
        groups: dict[int, list[int]] = defaultdict(list)
        for i, size in enumerate(input_sizes):
            groups[size or self.cfg.input_size].append(i)
        out: list[Detections | None] = [None] * len(frames)
        for size, idx in groups.items():
            model = self._model_for(size)
            # Inference releases the GIL; a thread keeps the replica's event loop free to queue requests.
            dets = await asyncio.to_thread(model.detect, [frames[i] for i in idx])
            for i, d in zip(idx, dets, strict=True):
                out[i] = d
        self.metrics.observe_batch(len(frames), time.perf_counter() - t0)
        return [d if d is not None else Detections.empty() for d in out]

    async def detect_many(self, frames: list[np.ndarray], input_size: int | None = None) -> list[Detections]:
        """Detect people in a chunk of one camera's frames (backfill); runs as its own batch."""
        self.metrics.enter()
        try:
            t0 = time.perf_counter()
            model = self._model_for(input_size or self.cfg.input_size)
            out = await asyncio.to_thread(model.detect, frames)
            self.metrics.observe_batch(len(frames), time.perf_counter() - t0)
            return out
        finally:
            self.metrics.leave()

    async def __call__(self, frame: np.ndarray, input_size: int | None = None) -> Detections:
        return await self.detect(frame, input_size)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder used by ray_config.yaml (`args.fleet` is the fleet config)."""
    fleet = args.get("fleet") or {}
    return Detector.bind(fleet.get("detector", {}))
