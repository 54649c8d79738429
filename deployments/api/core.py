"""Core routes: service and feed health, the fleet's stores, and a store's events."""

import time
from datetime import UTC, datetime
from typing import Annotated

import redis
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from deployments.api.analytics import StoreHealth, store_health
from deployments.api.auth import Principal, require
from deployments.api.context import Ctx
from workloads.access import Permission, Role
from workloads.events import EventType, VisitorEvent
from workloads.state.checkpoints import CameraHealth as StoredHealth

STALE_AFTER_S = 10.0

router = APIRouter()


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
    auth: str = Field("keys", description="`keys` (API keys required) or `open` (no keys configured: local demo).")
    cameras: list[CameraHealth]
    stores: dict[str, StoreHealth] = Field(
        default_factory=dict, description="Per store: latest event, its lag and the analytics backlog.")
    warnings: list[str] = Field(default_factory=list, description="Stale or failed feeds, analytics falling behind.")


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




@router.get("/health", response_model=Health, summary="Service and per-camera feed health",
            dependencies=[require(Permission.HEALTH)])
def health(ctx: Ctx) -> Health:
    try:
        ctx.redis.ping()
    except redis.RedisError:
        return Health(status="down", redis=False, cameras=[])
    now = time.time()
    cams: list[CameraHealth] = []
    for store, cam in ctx.fleet.cameras():
        h = ctx.checkpoints.get_health(store.id, cam.id) or StoredHealth()
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
    stores, warnings = store_health(ctx)
    warnings = [f"camera {c.camera_id} of {c.store_id}: {'failed' if c.state == 'failed' else 'stale'}"
                for c in cams if c.stale or c.state == "failed"] + warnings
    return Health(status="degraded" if bad else "ok", redis=True, auth="open" if ctx.keys.open else "keys",
                  cameras=cams, stores=stores, warnings=warnings)


@router.get("/stores", response_model=list[StoreSummary], summary="Stores of the fleet with event totals")
def stores(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)]) -> list[StoreSummary]:
    out = []
    for s in ctx.fleet.stores:
        if key is not None and key.role is Role.STORE and key.store_id != s.id:
            continue  # a store key sees its own store only
        counters = ctx.events.counters(s.id)
        last = ctx.events.last_event(s.id)
        out.append(StoreSummary(
            id=s.id, name=s.name or s.id, timezone=s.timezone, cameras=[c.id for c in s.cameras],
            events_total=ctx.events.count(s.id),
            events_by_type={t.value: int(counters["by_type"].get(t.value, 0)) for t in EventType},
            last_event_at=last.timestamp if last else None,
        ))
    return out


@router.get("/stores/{store_id}/events", response_model=EventPage, summary="A store's events, newest first",
            dependencies=[require(Permission.DATA)])
def store_events(
    ctx: Ctx,
    store_id: str,
    type: Annotated[list[EventType] | None, Query(description="Only these event types (repeatable).")] = None,
    from_: Annotated[datetime | None, Query(alias="from", description="Start of window (inclusive).")] = None,
    to: Annotated[datetime | None, Query(description="End of window (exclusive).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> EventPage:
    ctx.store(store_id)
    for name, ts in (("from", from_), ("to", to)):
        if ts is not None and ts.tzinfo is None:
            raise HTTPException(422, f"`{name}` needs a time zone, e.g. 2026-03-03T14:00:00Z")
    if from_ and to and to <= from_:
        raise HTTPException(422, "`to` must be after `from`")
    try:
        events, nxt = ctx.events.query(
            store_id, set(type) if type else None, from_.astimezone(UTC) if from_ else None,
            to.astimezone(UTC) if to else None, limit=limit, cursor=cursor,
        )
    except ValueError as e:  # a cursor that was not made by us
        raise HTTPException(422, str(e)) from None
    return EventPage(events=events, next_cursor=nxt)
