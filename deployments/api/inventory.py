"""Inventory routes: a store's stock, gaps, forecasts and suggestions; today's restock list; alerts;
uploads of snapshots / sales / deliveries / calendar; questions in plain language; the chain heatmap.

Same roles as the rest of the API: reads need `data`, uploads need `write`; a `store` key reads and
writes its own store only (questions are narrowed to it), and the chain heatmap needs a chain-wide key.
The logic lives in `workloads.inventory.service`; this module only maps HTTP to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, Field

from deployments.api.auth import Principal, require
from deployments.api.context import ApiContext, Ctx
from workloads.access import Permission, Role
from workloads.inventory.alerts import AlertKind, InventoryAlert
from workloads.inventory.intake import ImportReport, ReadError
from workloads.inventory.parser import UnknownQuestion
from workloads.inventory.service import Answer, Heatmap, InventoryService, RestockList, StoreInventory
from workloads.inventory.tables import Dataset

router = APIRouter(tags=["inventory"])

_services: dict[int, InventoryService] = {}

#: Upload bodies by content type; `?format=` overrides.
_FORMATS = {"text/csv": "csv", "application/csv": "csv", "application/json": "json",
            "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
            "application/octet-stream": "parquet"}
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def service(ctx: ApiContext) -> InventoryService:
    """One service per API context (the context is built once per replica)."""
    svc = _services.get(id(ctx))
    if svc is None or svc.fleet is not ctx.fleet:
        svc = _services[id(ctx)] = InventoryService(ctx.fleet, ctx.redis)
    return svc


class Question(BaseModel):
    question: str = Field(min_length=3, max_length=500, description="E.g. `what do I need to restock today?`")
    store_id: str | None = Field(None, description="Answer for this store only (default: every store the key may "
                                 "read).")


@router.get("/stores/{store_id}/inventory", response_model=StoreInventory,
            summary="A store's stock, shelf gaps, forecasts and suggestions", dependencies=[require(Permission.DATA)])
def store_inventory(ctx: Ctx, store_id: str,
                    alerts: Annotated[int, Query(ge=0, le=500, description="Recent alerts to include.")] = 50,
                    ) -> StoreInventory:
    ctx.store(store_id)
    return service(ctx).store_view(store_id, alerts=alerts)


@router.get("/stores/{store_id}/inventory/restock", response_model=RestockList,
            summary="What to restock today: refills from the backroom, supplier orders, empty shelves",
            dependencies=[require(Permission.DATA)])
def restock(ctx: Ctx, store_id: str) -> RestockList:
    ctx.store(store_id)
    return service(ctx).restock(store_id)


@router.get("/stores/{store_id}/inventory/alerts", response_model=list[InventoryAlert],
            summary="A store's inventory alerts, newest first", dependencies=[require(Permission.DATA)])
def alerts(ctx: Ctx, store_id: str,
           kind: Annotated[list[AlertKind] | None, Query(description="Only these kinds (repeatable).")] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[InventoryAlert]:
    ctx.store(store_id)
    return service(ctx).alerts.recent(store_id, limit, kind)


@router.post("/stores/{store_id}/inventory/{dataset}", response_model=ImportReport,
             summary="Upload inventory snapshots, sales, deliveries or calendar rows for a store",
             dependencies=[require(Permission.WRITE)],
             responses={422: {"description": "Nothing stored: the report in `detail` lists every problem."}})
async def upload(
    ctx: Ctx, store_id: str, dataset: Dataset, request: Request,
    format: Annotated[str | None, Query(description="csv, json or parquet (default: from Content-Type).")] = None,
    name: Annotated[str | None, Query(description="File name shown in the report.")] = None,
) -> ImportReport:
    ctx.store(store_id)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = format or _FORMATS.get(ctype)
    if fmt not in ("csv", "json", "parquet"):
        raise HTTPException(415, f"send text/csv, application/json or application/vnd.apache.parquet "
                                 f"(or ?format=), not {ctype or 'no content type'!r}")
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"upload larger than {MAX_UPLOAD_BYTES // 2**20} MiB: import it with the CLI")
    try:
        report = service(ctx).import_upload(body, fmt, dataset, name or f"upload.{fmt}", store_id)
    except ReadError as e:
        raise HTTPException(422, str(e)) from None
    if report.aborted:
        raise HTTPException(422, report.model_dump(mode="json"))
    return report


@router.post("/inventory/ask", response_model=Answer,
             summary="A question in plain language -> a typed query plan -> rows (the plan and SQL are shown)")
def ask(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)],
        q: Annotated[Question, Body(examples=[{"question": "Which stores will run out of whole milk this weekend?"}])],
        ) -> Answer:
    allowed = [s.id for s in ctx.fleet.stores]
    if key is not None and key.role is Role.STORE:
        allowed = [key.store_id] if key.store_id else []
    if q.store_id is not None:
        ctx.store(q.store_id)
        if q.store_id not in allowed:
            raise HTTPException(403, f"this key is limited to store {allowed[0] if allowed else '-'}")
        allowed = [q.store_id]
    try:
        return service(ctx).ask(q.question, allowed)
    except UnknownQuestion as e:
        raise HTTPException(422, str(e)) from None


@router.get("/chain/inventory/heatmap", response_model=Heatmap,
            summary="Low-stock areas across stores: share of SKUs at risk per store and category",
            dependencies=[require(Permission.DATA, chain=True)])
def heatmap(ctx: Ctx) -> Heatmap:
    return service(ctx).heatmap()
