"""HTTP API: a Ray Serve ingress over one FastAPI app. Reads Redis, the only source of truth.

Routes live in `deployments/api/<domain>.py` as APIRouters and get their state through the `Ctx`
dependency; this module only mounts them and builds the context once per replica.
OpenAPI docs are served at `/docs`.
"""

from typing import Any

from fastapi import FastAPI
from ray import serve

from deployments.api import analytics, behaviour, core, ingest, inventory, lp
from deployments.api.context import ApiContext, set_context
from deployments.logging import TraceMiddleware, configure_logging

app = FastAPI(
    title="StoreFleet API",
    version="0.1.0",
    description="Visitor events, store analytics and feed health for a retail chain's cameras.",
)
app.add_middleware(TraceMiddleware)  # X-Trace-Id in and out, one structured log line per request
app.include_router(core.router)
app.include_router(lp.router)
app.include_router(behaviour.router)
app.include_router(analytics.router)
app.include_router(ingest.router)
app.include_router(inventory.router)


@serve.deployment(name="Api")
@serve.ingress(app)
class ApiDeployment:
    def __init__(self, fleet: dict[str, Any], redis_url: str) -> None:
        configure_logging()
        set_context(ApiContext.create(fleet, redis_url))


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder used by ray_config.yaml."""
    if not args.get("fleet") or not args.get("redis_url"):
        raise ValueError("the api application needs args.fleet (fleet config) and args.redis_url")
    return ApiDeployment.bind(args["fleet"], args["redis_url"])
