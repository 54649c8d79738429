"""HTTP API: a Ray Serve ingress over FastAPI. Reads Redis, the only source of truth.

No `from __future__ import annotations` here: FastAPI must see real types on the Serve class methods.

OpenAPI docs are served at `/docs`; the response models below are what they show.
"""


import time
from datetime import UTC, datetime
from typing import Annotated, Any

import redis
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from ray import serve

from workloads.config import FleetConfig
from workloads.events import EventType, VisitorEvent
from workloads.state.checkpoints import CameraHealth as StoredHealth
from workloads.state.checkpoints import CheckpointStore
from workloads.state.event_log import EventLog

STALE_AFTER_S = 10.0

app = FastAPI(
    title="StoreFleet API",
    version="0.1.0",
    description="Visitor events, store analytics and feed health for a retail chain's cameras.",
)


class CameraHealth(BaseModel):
    store_id: str
    camera_id: str
    state: str = Field(description="starting | running | reconnecting | finished | failed | stopped | unknown")
    last_frame_ts: str | None = Field(None, description="Feed time of the last processed frame (ISO-8601 UTC).")
    fps: float = Field(0.0, description="Processed frames per second (last 30 frames).")
    frames_processed: int = 0
    frames_dropped: int = Field(0, description="Frames skipped because inference fell behind.")
    reconnects: int = 0
    staleness_s: float | None = Field(None, description="Seconds since the last processed frame.")
    stale: bool = Field(description=f"No frame processed for {STALE_AFTER_S:.0f} s while the feed should run.")
    error: str | None = None


class Health(BaseModel):
    status: str = Field(description="`ok`, `degraded` (a feed is stale or failed) or `down` (Redis unreachable).")
    redis: bool
    cameras: list[CameraHealth]


class StoreSummary(BaseModel):
    id: str
    name: str
    timezone: str
    cameras: list[str]
    events_total: int
    events_by_type: dict[str, int]
    last_event_at: datetime | None


class EventPage(BaseModel):
    events: list[VisitorEvent]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null at the end.")


class Api:
    def __init__(self, fleet: dict[str, Any], redis_url: str) -> None:
        self.fleet = FleetConfig.model_validate(fleet)
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.events = EventLog(self.redis)
        self.checkpoints = CheckpointStore(self.redis)

    def _store(self, store_id: str) -> Any:
        try:
            return self.fleet.store(store_id)
        except KeyError:
            raise HTTPException(404, f"unknown store {store_id!r}") from None

    def health(self) -> Health:
        try:
            self.redis.ping()
        except redis.RedisError:
            return Health(status="down", redis=False, cameras=[])
        now = time.time()
        cams: list[CameraHealth] = []
        for store, cam in self.fleet.cameras():
            h = self.checkpoints.get_health(store.id, cam.id) or StoredHealth()
            wall = h.extra.get("last_frame_wall")
            staleness = None if wall is None else max(0.0, now - float(wall))
            should_run = h.state in {"running", "reconnecting", "starting", "unknown"}
            stale = should_run and (staleness is None or staleness > STALE_AFTER_S)
            cams.append(CameraHealth(
                store_id=store.id, camera_id=cam.id, state=h.state,
                last_frame_ts=h.last_frame_ts.isoformat() if h.last_frame_ts else None,
                fps=h.fps, frames_processed=h.frames_processed, frames_dropped=h.frames_dropped,
                reconnects=h.reconnects, staleness_s=staleness, stale=stale, error=h.error,
            ))
        bad = any(c.stale or c.state == "failed" for c in cams)
        return Health(status="degraded" if bad else "ok", redis=True, cameras=cams)

    def stores(self) -> list[StoreSummary]:
        out = []
        for s in self.fleet.stores:
            counters = self.events.counters(s.id)
            last = self.events.last_event(s.id)
            out.append(StoreSummary(
                id=s.id, name=s.name or s.id, timezone=s.timezone, cameras=[c.id for c in s.cameras],
                events_total=self.events.count(s.id),
                events_by_type={t.value: int(counters["by_type"].get(t.value, 0)) for t in EventType},
                last_event_at=last.timestamp if last else None,
            ))
        return out

    def store_events(
        self, store_id: str, types: list[EventType] | None, start: datetime | None, end: datetime | None,
        limit: int, cursor: str | None,
    ) -> EventPage:
        self._store(store_id)
        for name, ts in (("from", start), ("to", end)):
            if ts is not None and ts.tzinfo is None:
                raise HTTPException(422, f"`{name}` needs a time zone, e.g. 2026-03-03T14:00:00Z")
        if start and end and end <= start:
            raise HTTPException(422, "`to` must be after `from`")
        try:
            events, nxt = self.events.query(
                store_id, set(types) if types else None, start.astimezone(UTC) if start else None,
                end.astimezone(UTC) if end else None, limit=limit, cursor=cursor,
            )
        except ValueError as e:  # a cursor that was not made by us
            raise HTTPException(422, str(e)) from None
        return EventPage(events=events, next_cursor=nxt)


@serve.deployment(name="Api")
@serve.ingress(app)
class ApiDeployment:
    def __init__(self, fleet: dict[str, Any], redis_url: str) -> None:
        self.api = Api(fleet, redis_url)

    @app.get("/health", response_model=Health, summary="Service and per-camera feed health")
    def health(self) -> Health:
        return self.api.health()

    @app.get("/stores", response_model=list[StoreSummary], summary="Stores of the fleet with event totals")
    def stores(self) -> list[StoreSummary]:
        return self.api.stores()

    @app.get("/stores/{store_id}/events", response_model=EventPage, summary="A store's events, newest first")
    def store_events(
        self,
        store_id: str,
        type: Annotated[list[EventType] | None, Query(description="Only these event types (repeatable).")] = None,
        from_: Annotated[datetime | None, Query(alias="from", description="Start of window (inclusive).")] = None,
        to: Annotated[datetime | None, Query(description="End of window (exclusive).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    ) -> EventPage:
        return self.api.store_events(store_id, type, from_, to, limit, cursor)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder used by ray_config.yaml."""
    if not args.get("fleet") or not args.get("redis_url"):
        raise ValueError("the api application needs args.fleet (fleet config) and args.redis_url")
    return ApiDeployment.bind(args["fleet"], args["redis_url"])
