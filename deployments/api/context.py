"""What every route needs: the fleet config and Redis-backed stores, built once per API replica.

Routes get it with `ctx: Ctx` (a FastAPI dependency), so route modules stay plain functions that
can be tested with FastAPI's TestClient against a real Redis, without Serve.
"""

from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, HTTPException

from workloads.access import KeyRing
from workloads.config import FleetConfig, StoreConfig
from workloads.state.checkpoints import CheckpointStore
from workloads.state.event_log import EventLog


@dataclass
class ApiContext:
    fleet: FleetConfig
    redis: redis.Redis
    events: EventLog
    checkpoints: CheckpointStore
    keys: KeyRing

    @classmethod
    def create(cls, fleet: dict[str, Any] | FleetConfig, redis_url: str) -> "ApiContext":
        cfg = fleet if isinstance(fleet, FleetConfig) else FleetConfig.model_validate(fleet)
        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        return cls(cfg, client, EventLog(client), CheckpointStore(client), KeyRing.from_config(cfg.api))

    def store(self, store_id: str) -> StoreConfig:
        """The store's config, or 404 naming the unknown id."""
        try:
            return self.fleet.store(store_id)
        except KeyError:
            raise HTTPException(404, f"unknown store {store_id!r}") from None


_current: ApiContext | None = None


def set_context(ctx: ApiContext) -> None:
    """Install the context of this process's API replica (Serve runs a copy of the FastAPI app, so
    state is kept here, in the module, rather than on `app.state`)."""
    global _current
    _current = ctx


def get_ctx() -> ApiContext:
    if _current is None:
        raise HTTPException(503, "API replica is starting: context not ready")
    return _current


Ctx = Annotated[ApiContext, Depends(get_ctx)]
