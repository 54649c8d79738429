"""Alert evidence: the person crops copied when a loss-prevention alert fired (behavioural analysis)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from deployments.api.auth import Principal, require
from deployments.api.context import ApiContext, Ctx
from workloads.access import Permission, Role
from workloads.behaviour.evidence import EvidenceStore, open_store
from workloads.behaviour.watcher import evidence_frames
from workloads.lp.store import LpStore

router = APIRouter(prefix="/api/v1/lp", tags=["behavioural analysis"])

_stores: dict[int, EvidenceStore] = {}


def _evidence_store(ctx: ApiContext) -> EvidenceStore:
    """One store client per API context (opening an S3 client per request is slow)."""
    key = id(ctx)
    if key not in _stores:
        _stores[key] = open_store(ctx.fleet.behaviour.evidence)
    return _stores[key]


class EvidenceFrame(BaseModel):
    name: str = Field(description="File name; GET `.../evidence/{name}` returns the JPEG.")
    visit_id: str = Field(description="The HIGH_VALUE-zone visit it was taken in (its ZONE_ENTER event id).")
    zone_id: str
    camera_id: str
    ts_ms: int = Field(description="Capture time, ms since the epoch.")
    url: str


class Evidence(BaseModel):
    alert_id: str
    store_id: str
    frames: list[EvidenceFrame] = Field(description="Oldest first; empty when the alert has no person crops.")


def _alert_store(ctx: ApiContext, key: Principal, alert_id: str) -> str:
    """The store of the alert the caller may see (404 otherwise: no hint that it exists elsewhere)."""
    if key is not None and key.role is Role.STORE:
        scope = [key.store_id] if key.store_id else []
    else:
        scope = [s.id for s in ctx.fleet.stores]
    alert = LpStore(ctx.redis).find_alert(scope, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert.store_id


@router.get("/alerts/{alert_id}/evidence", response_model=Evidence, summary="Person crops behind an alert")
def alert_evidence(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], alert_id: str) -> Evidence:
    store_id = _alert_store(ctx, key, alert_id)
    frames = evidence_frames(ctx.redis, store_id, alert_id) or []
    return Evidence(alert_id=alert_id, store_id=store_id, frames=[
        EvidenceFrame(**{k: f[k] for k in ("name", "visit_id", "zone_id", "camera_id", "ts_ms")},
                      url=f"/api/v1/lp/alerts/{alert_id}/evidence/{f['name']}") for f in frames])


@router.get("/alerts/{alert_id}/evidence/{name}", summary="One evidence image (JPEG)",
            responses={200: {"content": {"image/jpeg": {}}}})
def alert_evidence_image(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], alert_id: str,
                         name: str) -> Response:
    store_id = _alert_store(ctx, key, alert_id)
    frame = next((f for f in evidence_frames(ctx.redis, store_id, alert_id) or [] if f["name"] == name), None)
    if frame is None:
        raise HTTPException(404, f"alert {alert_id} has no evidence frame {name!r}")
    try:
        data = _evidence_store(ctx).get(frame["key"])
    except KeyError:
        raise HTTPException(410, "evidence frame expired (retention)") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
