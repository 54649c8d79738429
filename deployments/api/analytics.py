"""Store analytics routes: metrics, funnel, heatmap, anomalies, chain roll-ups, and store health.

Thin: every figure is computed by `workloads.analytics` from the hour-bucket aggregates the store
actors keep in Redis. Windows: `from`/`to` (ISO-8601 with a zone), default today in the store's
time zone, widened to whole local hours (the answer's `window` says which hours it covers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import redis
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from deployments.api.auth import require
from deployments.api.context import ApiContext, Ctx
from workloads.access import Permission
from workloads.analytics import anomalies, chain, funnel, heatmap, metrics
from workloads.analytics.aggregator import Aggregator
from workloads.analytics.buckets import Window, WindowError, resolve
from workloads.analytics.queue import read_queue_now
from workloads.analytics.window import WindowReader, WindowTotals
from workloads.config import StoreConfig

router = APIRouter(tags=["analytics"])

From = Annotated[datetime | None, Query(alias="from", description="Window start (ISO-8601 with a zone); "
                                        "default: local midnight of the store.")]
To = Annotated[datetime | None, Query(description="Window end, exclusive (ISO-8601 with a zone); default: the "
                                      "next local midnight (or now, when only `from` is given).")]

#: Analytics lag (events stored, not yet aggregated) above which /health warns.
LAG_WARNING_EVENTS = 1000
#: /health counts the backlog only this far (each counted entry is read from the stream).
LAG_COUNT_CAP = 2000


@contextmanager
def redis_guard() -> Iterator[None]:
    """Redis down is a 503 the client can retry, not a 500."""
    try:
        yield
    except redis.RedisError as e:
        raise HTTPException(503, f"Redis unavailable: {type(e).__name__}") from None


def _window(ctx: ApiContext, store: StoreConfig, start: datetime | None, end: datetime | None) -> Window:
    try:
        return resolve(start, end, ZoneInfo(store.timezone), datetime.now(UTC), ctx.fleet.analytics.max_window_days)
    except WindowError as e:
        raise HTTPException(422, str(e)) from None


def _reader(ctx: ApiContext) -> WindowReader:
    return WindowReader(ctx.redis)


def _store_report(ctx: ApiContext, store: StoreConfig, start: datetime | None, end: datetime | None,
                  reader: WindowReader) -> tuple[WindowTotals, metrics.MetricsReport]:
    totals = reader.totals(store.id, _window(ctx, store, start, end))
    return totals, metrics.compute(totals, read_queue_now(ctx.redis, store.id))


@router.get("/stores/{store_id}/metrics", response_model=metrics.MetricsReport,
            summary="Visitors, conversion, dwell, queue depth and abandonment over a window",
            dependencies=[require(Permission.METRICS)])
def store_metrics(ctx: Ctx, store_id: str, from_: From = None, to: To = None) -> metrics.MetricsReport:
    store = ctx.store(store_id)
    with redis_guard():
        return _store_report(ctx, store, from_, to, _reader(ctx))[1]


@router.get("/stores/{store_id}/funnel", response_model=funnel.FunnelReport,
            summary="Entry -> zone visit -> billing queue -> purchase, with drop-off",
            dependencies=[require(Permission.DATA)])
def store_funnel(ctx: Ctx, store_id: str, from_: From = None, to: To = None) -> funnel.FunnelReport:
    store = ctx.store(store_id)
    with redis_guard():
        return funnel.compute(_reader(ctx).totals(store_id, _window(ctx, store, from_, to)))


@router.get("/stores/{store_id}/heatmap", response_model=dict[str, heatmap.ZoneHeat],
            summary="Per zone: visit frequency, average dwell and a 0-100 score (keys are zone ids)",
            description="The window covered is in the `X-Window-From` / `X-Window-To` headers (the body's keys "
                        "are zone ids only).",
            dependencies=[require(Permission.DATA)])
def store_heatmap(
    ctx: Ctx, store_id: str, response: Response, from_: From = None, to: To = None,
    bucket: Annotated[Literal["hour", "day"] | None, Query(description="Also return each zone's series in "
                                                          "hour or local-day buckets.")] = None,
) -> dict[str, heatmap.ZoneHeat]:
    store = ctx.store(store_id)
    with redis_guard():
        totals = _reader(ctx).totals(store_id, _window(ctx, store, from_, to))
    response.headers["X-Window-From"] = totals.window.start_dt.isoformat()
    response.headers["X-Window-To"] = totals.window.end_dt.isoformat()
    return heatmap.compute(totals, store, bucket)


@router.get("/stores/{store_id}/anomalies", response_model=anomalies.AnomalyReport,
            summary="Queue spikes, conversion drops, dead zones and stale feeds, with suggested actions",
            dependencies=[require(Permission.DATA)])
def store_anomalies(
    ctx: Ctx, store_id: str,
    at: Annotated[datetime | None, Query(description="Evaluate at this moment (ISO-8601 with a zone); "
                                                     "default: now.")] = None,
) -> anomalies.AnomalyReport:
    store = ctx.store(store_id)
    if at is not None and at.tzinfo is None:
        raise HTTPException(422, "`at` needs a time zone, e.g. 2026-03-03T14:00:00Z")
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    if not datetime(2000, 1, 1, tzinfo=UTC) <= moment <= datetime(2200, 1, 1, tzinfo=UTC):
        raise HTTPException(422, "`at` must lie between the years 2000 and 2200")
    with redis_guard():
        signals = anomalies.read_signals(ctx.redis, store, ctx.fleet.analytics, moment,
                                         ctx.checkpoints.all_health(store_id), _reader(ctx))
    return anomalies.detect(signals, ctx.fleet.analytics, store)


def _chain(ctx: ApiContext, start: datetime | None, end: datetime | None
           ) -> tuple[list[WindowTotals], list[metrics.MetricsReport]]:
    reader = _reader(ctx)
    pairs = [_store_report(ctx, s, start, end, reader) for s in ctx.fleet.stores]
    return [t for t, _ in pairs], [r for _, r in pairs]


@router.get("/chain/metrics", response_model=chain.ChainMetrics,
            summary="The store metrics summed over every store (each store's default window is its own today)",
            dependencies=[require(Permission.METRICS, chain=True)])
def chain_metrics(ctx: Ctx, from_: From = None, to: To = None) -> chain.ChainMetrics:
    with redis_guard():
        return chain.combine(*_chain(ctx, from_, to))


@router.get("/chain/stores/ranking", response_model=chain.StoreRanking, summary="Stores ranked by one figure",
            dependencies=[require(Permission.METRICS, chain=True)])
def chain_ranking(
    ctx: Ctx, from_: From = None, to: To = None,
    by: Annotated[chain.RankBy, Query(description="The figure to rank by.")] = "conversion_rate",
    order: Annotated[Literal["desc", "asc"], Query(description="desc: highest first.")] = "desc",
) -> chain.StoreRanking:
    with redis_guard():
        _, reports = _chain(ctx, from_, to)
    return chain.rank(reports, {s.id: s.name or s.id for s in ctx.fleet.stores}, by, order)


class StoreHealth(BaseModel):
    last_event_timestamp: datetime | None = Field(description="Event time of the store's latest event (UTC).")
    lag_minutes: float | None = Field(description="Minutes between now and that event.")
    events_total: int = Field(description="Unique events stored.")
    analytics_lag_events: int = Field(description=f"Events stored but not aggregated yet (counted up to "
                                                  f"{LAG_COUNT_CAP}).")


def store_health(ctx: ApiContext) -> tuple[dict[str, StoreHealth], list[str]]:
    """Per store: latest event, its lag and the analytics backlog; plus warnings (for /health)."""
    out: dict[str, StoreHealth] = {}
    warnings: list[str] = []
    now = time.time()
    for s in ctx.fleet.stores:
        try:
            last = ctx.events.last_event(s.id)
            lag = Aggregator(ctx.redis, s, ctx.fleet.analytics).lag(cap=LAG_COUNT_CAP)
        except redis.RedisError as e:
            warnings.append(f"store {s.id}: Redis error while reading its state ({type(e).__name__})")
            continue
        out[s.id] = StoreHealth(
            last_event_timestamp=last.timestamp if last else None,
            lag_minutes=round((now - last.timestamp.timestamp()) / 60, 1) if last else None,
            events_total=ctx.events.count(s.id), analytics_lag_events=lag,
        )
        if lag >= LAG_WARNING_EVENTS:
            behind = f"{lag}+" if lag >= LAG_COUNT_CAP else str(lag)
            warnings.append(f"store {s.id}: analytics are {behind} events behind (is its store actor running?)")
    return out, warnings
