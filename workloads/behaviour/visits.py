"""The Redis index of HIGH_VALUE-zone visits and their stored crops (the bytes are in the evidence store).

Why Redis: it is the only source of truth, and the pre-filter needs every frame's keypoints of a visit
at each check: one HGETALL instead of listing and reading objects. Every write is idempotent (a frame
is a hash field named by its timestamp), so a camera replaying frames after a crash rewrites the same
entries.

Example:
    >>> idx = VisitIndex(client, "S1")  # doctest: +SKIP
    >>> rec = VisitRecord(visit_id="e1", camera_id="C1", visitor_id="V1", zone_id="Z", opened_ms=0)
    >>> idx.open_visit(rec)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import redis
from pydantic import BaseModel, Field

from workloads.behaviour.evidence import visit_prefix
from workloads.behaviour.prefilter import PoseFrame
from workloads.state import keys


class VisitRecord(BaseModel):
    visit_id: str = Field(description="Event id of the ZONE_ENTER that opened the visit.")
    store_id: str = ""
    camera_id: str
    visitor_id: str
    zone_id: str
    opened_ms: int
    closed_ms: int | None = None
    pinned: bool = Field(False, description="Kept until evidence retention: an alert copied it or it was suspicious.")

    def prefix(self) -> str:
        return visit_prefix(self.store_id, self.visitor_id, self.zone_id, self.visit_id)


class FrameRecord(BaseModel):
    ts_ms: int
    key: str = Field(description="Object key of the JPEG crop in the evidence store.")
    box: tuple[float, float, float, float] = Field(description="Person box in frame pixels.")
    crop: tuple[int, int, int, int] = Field(description="Crop rectangle in frame pixels.")
    keypoints: list[list[float]] | None = Field(None, description="(17, 3) x, y, confidence in frame pixels.")

    def pose(self) -> PoseFrame | None:
        if self.keypoints is None:
            return None
        return PoseFrame(self.ts_ms / 1000.0, np.asarray(self.keypoints, dtype=np.float32))


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class VisitIndex:
    def __init__(self, client: redis.Redis, store_id: str) -> None:
        self.client, self.store_id = client, store_id
        self.visits_key = keys.ba_visits(store_id)

    # ------------------------------------------------------------------ the camera's writes

    def open_visit(self, rec: VisitRecord) -> None:
        """Record a visit unless it is already there (a replay must not reopen a closed visit)."""
        rec = rec.model_copy(update={"store_id": self.store_id})
        self.client.hsetnx(self.visits_key, rec.visit_id, rec.model_dump_json())

    def add_frame(self, visit_id: str, frame: FrameRecord) -> None:
        self.client.hset(keys.ba_visit_frames(self.store_id, visit_id), str(frame.ts_ms), frame.model_dump_json())

    def close_visit(self, visit_id: str, closed_ms: int) -> None:
        rec = self.visit(visit_id)
        if rec is not None and rec.closed_ms is None:
            self.put(rec.model_copy(update={"closed_ms": int(closed_ms)}))

    # ------------------------------------------------------------------ reads

    def put(self, rec: VisitRecord) -> None:
        self.client.hset(self.visits_key, rec.visit_id, rec.model_dump_json())

    def visit(self, visit_id: str) -> VisitRecord | None:
        raw = self.client.hget(self.visits_key, visit_id)
        return VisitRecord.model_validate_json(raw) if raw else None

    def visits(self) -> list[VisitRecord]:
        return [VisitRecord.model_validate_json(v) for v in self.client.hvals(self.visits_key)]

    def open_visits(self, camera_id: str) -> list[VisitRecord]:
        return [v for v in self.visits() if v.camera_id == camera_id and v.closed_ms is None]

    def frames(self, visit_id: str) -> list[FrameRecord]:
        raw = self.client.hgetall(keys.ba_visit_frames(self.store_id, visit_id))
        return sorted((FrameRecord.model_validate_json(v) for v in raw.values()), key=lambda f: f.ts_ms)

    def frame_count(self, visit_id: str) -> int:
        return int(self.client.hlen(keys.ba_visit_frames(self.store_id, visit_id)))

    def forget(self, visit_id: str) -> None:
        """Drop a visit and its frame index (after its objects were deleted)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.visits_key, visit_id)
        pipe.delete(keys.ba_visit_frames(self.store_id, visit_id))
        pipe.hdel(keys.ba_watches(self.store_id), visit_id)
        pipe.execute()
