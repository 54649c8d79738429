"""Helpers for the analytics tests that need real Ray: store actors for a fleet, and the API in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ray
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cluster.fleet import Fleet
from deployments.api import analytics, core, ingest
from deployments.api.context import ApiContext, set_context
from workloads.access import KeyRing
from workloads.config import FleetConfig


@contextmanager
def store_actors(fleet: FleetConfig, redis_url: str, only: set[str] | None = None) -> Iterator[Fleet]:
    """Real StoreActors (named like the fleet's) for the fleet's stores, killed on exit."""
    cfg = fleet if only is None else fleet.model_copy(update={"stores": [s for s in fleet.stores if s.id in only]})
    handles = Fleet(cfg, redis_url)
    handles.start_stores()
    try:
        yield handles
    finally:
        for actor in handles.stores.values():
            ray.kill(actor, no_restart=True)


def api_client(fleet: FleetConfig, redis_url: str, keys: KeyRing | None = None) -> TestClient:
    """Every API router in-process over a real Redis; write routes reach the store actors through Ray."""
    ctx = ApiContext.create(fleet, redis_url)
    if keys is not None:
        ctx.keys = keys
    set_context(ctx)
    app = FastAPI()
    for r in (core.router, analytics.router, ingest.router):
        app.include_router(r)
    return TestClient(app)


def catch_up(handles: Fleet) -> None:
    """Apply every stored event to the aggregates now (the actors' threads would within a second)."""
    ray.get([a.analytics_catch_up.remote() for a in handles.stores.values()])
