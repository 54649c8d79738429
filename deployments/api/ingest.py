"""Write routes: events from other pipelines (`POST /events/ingest`) and POS transactions.

Both validate item by item, so one bad event never costs the good ones of its batch, and hand
the valid items to the store actor of their store (`ray.get_actor`), the same path our cameras
use: idempotent storage, then aggregation by the store's analytics consumer.
A body that is not JSON, not the documented object, or over 500 items gets a 422 (413 for a body
over the byte limit) and stores nothing. A store actor that is not running gets a 503 and nothing
of the batch is stored; retrying is always safe, writes are idempotent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated, Any, Literal

import ray
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from deployments.api.auth import Principal, require
from deployments.api.context import ApiContext, Ctx
from deployments.metrics import IngestMetrics
from deployments.store_actor import NAMESPACE, store_actor_name
from workloads.access import Permission
from workloads.analytics.pos import Transaction
from workloads.events import VisitorEvent, validate_batch
from workloads.state.event_log import EncodedBatch

router = APIRouter(tags=["ingest"])

MAX_BATCH = 500


def inline_schema(model: type[BaseModel], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The model's input JSON schema with its `$defs` inlined: an OpenAPI `items` schema of its own."""
    schema = model.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    out: dict[str, Any] = resolve(schema)
    out["required"] = sorted({*out.get("required", []), *required})
    return out


def _limit(items: list[Any], what: str) -> list[Any]:
    if len(items) > MAX_BATCH:
        raise ValueError(f"{len(items)} {what} in one batch; the limit is {MAX_BATCH}: split it into smaller batches")
    return items


class FieldError(BaseModel):
    field: str = Field(description="Path of the offending field, e.g. `events[3].timestamp`.")
    message: str


class IngestRequest(BaseModel):
    events: list[Any] = Field(
        description=f"Up to {MAX_BATCH} events in the public `VisitorEvent` schema. Each is validated on its own: "
        "invalid ones are rejected with the reason, the others stored. `event_id` is required (idempotency).",
        json_schema_extra={"maxItems": MAX_BATCH, "items": inline_schema(VisitorEvent, ("event_id",))},
    )

    @field_validator("events")
    @classmethod
    def _at_most(cls, v: list[Any]) -> list[Any]:
        return _limit(v, "events")


class EventResult(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    event_id: str | None = Field(description="The event's id as sent (null when it had none).")
    status: Literal["accepted", "duplicate", "rejected"] = Field(
        description="accepted: stored now; duplicate: this event_id was already stored (or repeated in the batch); "
        "rejected: invalid, see errors."
    )
    errors: list[FieldError] = Field(default_factory=list)


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult] = Field(description="One per event, in request order.")


class PosRequest(BaseModel):
    transactions: list[Any] = Field(
        description=f"Up to {MAX_BATCH} transactions (`Transaction` schema), validated one by one.",
        json_schema_extra={"maxItems": MAX_BATCH, "items": inline_schema(Transaction)},
    )

    @field_validator("transactions")
    @classmethod
    def _at_most(cls, v: list[Any]) -> list[Any]:
        return _limit(v, "transactions")


class TransactionResult(BaseModel):
    index: int
    transaction_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    matched_visitor_id: str | None = Field(
        None, description="Visitor matched so far (may change when later billing events arrive)."
    )
    errors: list[FieldError] = Field(default_factory=list)


class PosResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    matched: int = Field(description="Transactions of this batch matched to a visitor.")
    results: list[TransactionResult]


def _errors(prefix: str, err: ValidationError | list[ErrorDetails]) -> list[FieldError]:
    out = []
    for e in err.errors(include_url=False) if isinstance(err, ValidationError) else err:
        path = prefix
        for part in e["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        out.append(FieldError(field=path, message=e["msg"]))
    return out


def _store_actor(store_id: str) -> Any:
    if not ray.is_initialized():
        raise HTTPException(503, "Ray is not running in this process: store actors cannot be reached")
    try:
        return ray.get_actor(store_actor_name(store_id), namespace=NAMESPACE)
    except ValueError:
        raise HTTPException(503, f"the store actor of {store_id} is not running; retry later (writes are "
                                 "idempotent)") from None


async def _call(calls: dict[str, Any]) -> dict[str, Any]:
    """Await one actor call per store; any failure is a 503 (the whole batch can be retried)."""
    stores = list(calls)
    try:
        replies = await asyncio.gather(*(calls[s] for s in stores))
    except ray.exceptions.RayError as e:
        raise HTTPException(503, f"a store actor failed; retry the batch (writes are idempotent): "
                                 f"{type(e).__name__}") from None
    return dict(zip(stores, replies, strict=True))


def _count_events(ctx: ApiContext, raw: list[Any], results: list[EventResult]) -> None:
    metrics = IngestMetrics.shared()
    if metrics is None:
        return
    known = {s.id for s in ctx.fleet.stores}
    outcomes: Counter[tuple[str, str]] = Counter()
    for item, r in zip(raw, results, strict=True):
        store = item.get("store_id") if isinstance(item, dict) else None
        outcomes[(store if store in known else "unknown", r.status)] += 1
    metrics.events_seen(outcomes)


def _check_events(ctx: ApiContext, key: Principal, raw: list[Any]) -> tuple[dict[int, VisitorEvent],
                                                                            dict[int, list[FieldError]]]:
    """The batch's valid events and the errors of the others, by index: one pydantic-core call for the
    whole batch (`validate_batch`), then the store checks once per store rather than once per event."""
    errors: dict[int, list[FieldError]] = {}
    candidates: list[int] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            errors[i] = [FieldError(field=f"events[{i}]", message="expected a JSON object (one event)")]
        elif "event_id" not in item:
            errors[i] = [FieldError(field=f"events[{i}].event_id",
                                    message="required: ingestion is idempotent by event_id")]
        else:
            candidates.append(i)
    valid, invalid = validate_batch([raw[i] for i in candidates])
    for k, errs in invalid.items():
        errors[candidates[k]] = _errors(f"events[{candidates[k]}]", errs)
    known = {s.id for s in ctx.fleet.stores}
    refusal: dict[str, str | None] = {}
    for store_id in {e.store_id for e in valid.values()}:
        decision = ctx.keys.authorize(key, Permission.WRITE, store_id)
        refusal[store_id] = (f"unknown store {store_id!r} (not in the fleet)" if store_id not in known
                             else None if decision.allowed else decision.reason)
    events: dict[int, VisitorEvent] = {}
    for k, event in valid.items():
        i = candidates[k]
        if (reason := refusal[event.store_id]) is None:
            events[i] = event
        else:
            errors[i] = [FieldError(field=f"events[{i}].store_id", message=reason)]
    return events, errors


@router.post(
    "/events/ingest", response_model=IngestResponse, summary="Store a batch of visitor events from other pipelines",
    responses={503: {"description": "A store actor is not running; nothing was stored, retry."}},
)
async def ingest(ctx: Ctx, body: IngestRequest, key: Annotated[Principal, require(Permission.WRITE)]) -> IngestResponse:
    events, errors = _check_events(ctx, key, body.events)
    results: list[EventResult] = []
    by_store: dict[str, list[tuple[int, str, VisitorEvent]]] = {}
    for i, raw in enumerate(body.events):
        if (e := events.get(i)) is not None:
            eid = str(e.event_id)
            results.append(EventResult(index=i, event_id=eid, status="accepted"))
            by_store.setdefault(e.store_id, []).append((i, eid, e))
        else:
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            results.append(EventResult(index=i, event_id=None if event_id is None else str(event_id),
                                       status="rejected", errors=errors[i]))
    actors = {s: _store_actor(s) for s in by_store}  # every actor first: a 503 stores nothing
    replies = await _call({s: actors[s].append.remote(EncodedBatch.of(s, (e for _, _, e in items)))
                           for s, items in by_store.items()})
    for s, items in by_store.items():
        fresh = Counter(replies[s]["accepted"])
        for i, eid, _ in items:
            if fresh[eid]:
                fresh[eid] -= 1
                results[i].status = "accepted"
            else:
                results[i].status = "duplicate"
    counts = Counter(r.status for r in results)
    _count_events(ctx, body.events, results)
    return IngestResponse(accepted=counts["accepted"], duplicates=counts["duplicate"], rejected=counts["rejected"],
                          results=results)


@router.post(
    "/stores/{store_id}/pos/transactions", response_model=PosResponse,
    summary="Store POS transactions and match them to visitors seen in billing",
    dependencies=[require(Permission.WRITE)],
    responses={503: {"description": "The store actor is not running; nothing was stored, retry."}},
)
async def pos_transactions(ctx: Ctx, store_id: str, body: PosRequest) -> PosResponse:
    ctx.store(store_id)
    results: list[TransactionResult] = []
    valid: list[tuple[int, Transaction]] = []
    for i, raw in enumerate(body.transactions):
        tid = raw.get("transaction_id") if isinstance(raw, dict) else None
        result = TransactionResult(index=i, transaction_id=None if tid is None else str(tid), status="rejected")
        results.append(result)
        if not isinstance(raw, dict):
            result.errors = [FieldError(field=f"transactions[{i}]", message="expected a JSON object (one transaction)")]
            continue
        try:
            valid.append((i, Transaction.model_validate(raw)))
        except ValidationError as e:
            result.errors = _errors(f"transactions[{i}]", e)
    if valid:
        actor = _store_actor(store_id)
        reply = (await _call({store_id: actor.record_transactions.remote([t for _, t in valid])}))[store_id]
        for (i, _), r in zip(valid, reply, strict=True):
            results[i].status = r["status"]
            results[i].matched_visitor_id = r["visitor_id"]
    counts = Counter(r.status for r in results)
    matched = sum(1 for r in results if r.matched_visitor_id)
    if (metrics := IngestMetrics.shared()) is not None:
        metrics.transactions_seen(store_id, {**counts, "matched": matched})
    return PosResponse(accepted=counts["accepted"], duplicates=counts["duplicate"], rejected=counts["rejected"],
                       matched=matched, results=results)
