"""Loss-prevention routes under /api/v1/lp: alerts (list, count, acknowledge, resolve), sessions, zones,
rule actor status, the rules (read, validate and hot-reload) and behavioural-analysis results in.

Same roles as the rest of the API: reads need `data` (status: `health`), changes need `write`. A
`store` key sees and changes its own store only: list endpoints are narrowed to it, and naming
another store is 403. Everything is read from and written to Redis; the rule actors pick up changes
(new rules, queued results) on their next tick.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, Field

from deployments.api.auth import Principal, require
from deployments.api.context import ApiContext, Ctx
from workloads.access import Permission, Role
from workloads.lp.models import Alert, BaResult, Session
from workloads.lp.rules import RulesError, load_rules
from workloads.lp.runner import text_version
from workloads.lp.store import AlertFilter, LpStore
from workloads.lp.variables import ENV_VAR
from workloads.lp.zones import store_zones

router = APIRouter(prefix="/api/v1/lp", tags=["loss prevention"])

#: A rule actor whose heartbeat is older than this is reported as stale.
STALE_AFTER_S = 30.0


class AlertPage(BaseModel):
    alerts: list[Alert]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


class AlertCounts(BaseModel):
    total: int
    by_type: dict[str, int]
    by_severity: dict[str, int]
    by_status: dict[str, int]


class AlertAction(BaseModel):
    by: str | None = Field(None, max_length=200, description="Who (operator name); default: the API key's id.")
    note: str | None = Field(None, max_length=2000, description="Why, or what was done.")


class ZoneView(BaseModel):
    store_id: str
    zone_id: str
    zone_type: str
    people_inside: int = Field(description="Visitors with an open visit of the zone (from their sessions).")


class StoreStatus(BaseModel):
    store_id: str
    running: bool = Field(description="A heartbeat newer than the stale limit.")
    status: dict[str, Any] = Field(description="The rule actor's last heartbeat (rules version and error, lag, ...).")


class RulesView(BaseModel):
    store_id: str
    version: str | None
    source: str | None = Field(None, description="`file:<path>` or `api`.")
    updated_at: str | None = None
    updated_by: str | None = None
    error: str | None = Field(None, description="Why the latest change was not applied (old rules kept), if so.")
    yaml: str | None
    versions: dict[str, str | None] = Field(description="Rules version per store in scope (they can differ).")
    summary: dict[str, Any] | None = None


class RulesUpdate(BaseModel):
    stores: list[str]
    version: str
    rules: int = Field(description="Enabled rules in the new version.")


class BaAccepted(BaseModel):
    result_id: str


def _store(ctx: ApiContext) -> LpStore:
    return LpStore(ctx.redis)


def _scope(ctx: ApiContext, key: Principal, store: str | None) -> list[str]:
    """Stores the caller may see, narrowed to `store` (404 unknown, 403 not theirs)."""
    if store is not None:
        ctx.store(store)
        if key is not None and key.role is Role.STORE and key.store_id != store:
            raise HTTPException(403, f"this key is limited to store {key.store_id}")
        return [store]
    if key is not None and key.role is Role.STORE:
        return [key.store_id] if key.store_id else []
    return [s.id for s in ctx.fleet.stores]


def _utc(ts: datetime | None, name: str) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise HTTPException(422, f"`{name}` needs a time zone, e.g. 2026-03-03T14:00:00Z")
    return ts.astimezone(UTC)


def _filter(type_: list[str] | None, severity: list[str] | None, status: list[str] | None,
            visitor: str | None, from_: datetime | None, to: datetime | None) -> AlertFilter:
    start, end = _utc(from_, "from"), _utc(to, "to")
    if start and end and end <= start:
        raise HTTPException(422, "`to` must be after `from`")
    return AlertFilter(types=set(type_ or ()), severities={s.upper() for s in severity or ()},
                       statuses={s.lower() for s in status or ()}, start=start, end=end, visitor_id=visitor)


StoreQ = Annotated[str | None, Query(description="Only this store.")]
TypeQ = Annotated[list[str] | None, Query(alias="type", description="Alert types (repeatable).")]
SeverityQ = Annotated[list[str] | None, Query(description="INFO, WARNING, CRITICAL (repeatable).")]
StatusQ = Annotated[list[str] | None, Query(description="open, acknowledged, resolved (repeatable).")]
VisitorQ = Annotated[str | None, Query(description="Only this visitor.")]
FromQ = Annotated[datetime | None, Query(alias="from", description="Alert time from (inclusive, ISO-8601).")]
ToQ = Annotated[datetime | None, Query(description="Alert time to (exclusive).")]


@router.get("/alerts", response_model=AlertPage, summary="Alerts, newest first")
def list_alerts(
    ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], store: StoreQ = None, type: TypeQ = None,
    severity: SeverityQ = None, status: StatusQ = None, visitor: VisitorQ = None, from_: FromQ = None,
    to: ToQ = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> AlertPage:
    flt = _filter(type, severity, status, visitor, from_, to)
    try:
        alerts, nxt = _store(ctx).list_alerts(_scope(ctx, key, store), flt, limit, cursor)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    return AlertPage(alerts=alerts, next_cursor=nxt)


@router.get("/alerts/count", response_model=AlertCounts, summary="Alert totals by type, severity and status")
def count_alerts(
    ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], store: StoreQ = None, type: TypeQ = None,
    severity: SeverityQ = None, status: StatusQ = None, visitor: VisitorQ = None, from_: FromQ = None,
    to: ToQ = None,
) -> AlertCounts:
    flt = _filter(type, severity, status, visitor, from_, to)
    return AlertCounts(**_store(ctx).count_alerts(_scope(ctx, key, store), flt))


def _find(ctx: ApiContext, key: Principal, alert_id: str) -> Alert:
    alert = _store(ctx).find_alert(_scope(ctx, key, None), alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert


@router.get("/alerts/{alert_id}", response_model=Alert, summary="One alert")
def get_alert(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], alert_id: str) -> Alert:
    return _find(ctx, key, alert_id)


def _transition(ctx: ApiContext, key: Principal, alert_id: str, action: str, body: AlertAction | None) -> Alert:
    alert = _find(ctx, key, alert_id)
    body = body or AlertAction()
    who = body.by or (key.id if key is not None else "anonymous")
    after, changed = _store(ctx).transition(alert.store_id, alert_id, action, who, body.note)
    if after is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    if action == "ack" and not changed and after.status == "resolved":
        raise HTTPException(409, f"alert {alert_id} is already resolved")
    return after


@router.post("/alerts/{alert_id}/ack", response_model=Alert,
             summary="Acknowledge an alert (idempotent: a repeat keeps the first who and when)")
def ack_alert(ctx: Ctx, key: Annotated[Principal, require(Permission.WRITE)], alert_id: str,
              body: Annotated[AlertAction | None, Body()] = None) -> Alert:
    return _transition(ctx, key, alert_id, "ack", body)


@router.post("/alerts/{alert_id}/resolve", response_model=Alert, summary="Resolve an alert (idempotent)")
def resolve_alert(ctx: Ctx, key: Annotated[Principal, require(Permission.WRITE)], alert_id: str,
                  body: Annotated[AlertAction | None, Body()] = None) -> Alert:
    return _transition(ctx, key, alert_id, "resolve", body)


@router.get("/sessions", response_model=list[Session], summary="Active visitor sessions, latest first")
def list_sessions(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], store: StoreQ = None,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[Session]:
    out: list[Session] = []
    for s in _scope(ctx, key, store):
        out += _store(ctx).sessions(s)
    out.sort(key=lambda x: x.last_seen, reverse=True)
    return out[:limit]


@router.get("/sessions/{visitor_id}", response_model=Session, summary="One visitor's session")
def get_session(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], visitor_id: str,
                store: StoreQ = None) -> Session:
    found = [x for s in _scope(ctx, key, store) if (x := _store(ctx).session(s, visitor_id)) is not None]
    if not found:
        raise HTTPException(404, f"no active session for visitor {visitor_id!r}")
    if len(found) > 1:
        raise HTTPException(409, f"visitor {visitor_id!r} has sessions in stores "
                                 f"{[x.store_id for x in found]}; pass `store`")
    return found[0]


@router.get("/zones", response_model=list[ZoneView], summary="Zones the rules know, with people inside now")
def list_zones(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], store: StoreQ = None) -> list[ZoneView]:
    out = []
    for s in _scope(ctx, key, store):
        inside: dict[str, int] = {}
        for sess in _store(ctx).sessions(s):
            for z in sess.open_visits:
                inside[z] = inside.get(z, 0) + 1
        out += [ZoneView(store_id=s, zone_id=z, zone_type=t, people_inside=inside.get(z, 0))
                for z, t in sorted(store_zones(ctx.fleet, s).items())]
    return out


@router.get("/status", response_model=list[StoreStatus], summary="Rule actors: heartbeat, rules, lag")
def lp_status(ctx: Ctx, key: Annotated[Principal, require(Permission.HEALTH)],
              store: StoreQ = None) -> list[StoreStatus]:
    out = []
    now = datetime.now(UTC)
    for s in _scope(ctx, key, store):
        st = _store(ctx).get_status(s)
        beat = st.get("heartbeat_at")
        running = bool(beat) and (now - datetime.fromisoformat(beat)).total_seconds() < STALE_AFTER_S
        out.append(StoreStatus(store_id=s, running=running, status=st))
    return out


@router.get("/rules", response_model=RulesView, summary="The rules in force (YAML) and their version per store")
def get_rules(ctx: Ctx, key: Annotated[Principal, require(Permission.DATA)], store: StoreQ = None) -> RulesView:
    scope = _scope(ctx, key, store)
    if not scope:
        raise HTTPException(404, "no store in scope")
    lp = _store(ctx)
    versions = {s: (lp.get_rules(s) or {}).get("version") for s in scope}
    sid = scope[0]
    stored = lp.get_rules(sid) or {}
    summary = None
    if stored.get("yaml"):
        try:
            summary = load_rules(stored["yaml"], os.environ.get(ENV_VAR)).summary()
        except RulesError:
            summary = None
    return RulesView(store_id=sid, version=stored.get("version"), source=stored.get("source"),
                     updated_at=stored.get("updated_at"), updated_by=stored.get("updated_by"),
                     error=lp.get_status(sid).get("rules_error"), yaml=stored.get("yaml"), versions=versions,
                     summary=summary)


@router.put("/rules", response_model=RulesUpdate, summary="Validate and hot-reload the rules (YAML body)",
            openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}},
                                           "required": True}})
async def put_rules(request: Request, ctx: Ctx, key: Annotated[Principal, require(Permission.WRITE)],
                    store: StoreQ = None) -> RulesUpdate:
    """The body is a rules file (YAML, or JSON `{"yaml": "..."}`). Invalid rules are refused with every
    problem named (rule id and field); valid ones replace the rules of every store in scope (chain-wide
    needs an hq key; a store key may change its own store with `store=`)."""
    decision = ctx.keys.authorize(key, Permission.WRITE, store, chain=store is None)
    if not decision.allowed:
        raise HTTPException(decision.status, decision.reason)
    raw = (await request.body()).decode("utf-8", errors="replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        import json

        try:
            raw = json.loads(raw)["yaml"]
        except (ValueError, KeyError, TypeError):
            raise HTTPException(422, 'a JSON body must be {"yaml": "<rules file>"}') from None
    if not raw.strip():
        raise HTTPException(422, "empty body: send the rules file")
    try:
        rs = load_rules(raw, os.environ.get(ENV_VAR), "request body")
    except RulesError as e:
        raise HTTPException(422, {"message": str(e).splitlines()[0], "problems": e.problems}) from None
    scope = _scope(ctx, key, store)
    who = key.id if key is not None else "anonymous"
    _store(ctx).put_rules(scope, raw, text_version(raw), "api", who)
    return RulesUpdate(stores=scope, version=text_version(raw), rules=sum(r.enabled for r in rs.rules))


@router.post("/stores/{store_id}/ba-results", response_model=BaAccepted, status_code=202,
             summary="Feed a behavioural-analysis result into the store's rules",
             dependencies=[require(Permission.WRITE)])
def post_ba_result(ctx: Ctx, store_id: str, result: BaResult) -> BaAccepted:
    """Intel's `ba/results` fields are accepted as they are (person_id, region_id, status, confidence,
    vlm_response, frames_analyzed, last_frame_ts). Queued durably; applied once even if posted twice."""
    ctx.store(store_id)
    return BaAccepted(result_id=_store(ctx).add_ba_result(store_id, result))
