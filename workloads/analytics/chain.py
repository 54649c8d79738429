"""Chain roll-ups for HQ: the store figures summed over stores, and stores ranked by one of them.

Totals are recomputed from the stores' window counts, not averaged from their rates: the chain's
conversion is all purchasers over all visitors, its dwell the mean over all timed visits.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from workloads.analytics.metrics import MetricsReport, ratio
from workloads.analytics.window import WindowTotals

RankBy = Literal["conversion_rate", "unique_visitors", "purchasers", "avg_dwell_ms", "abandonment_rate",
                 "queue_depth_current", "transactions"]


class ChainMetrics(BaseModel):
    """The same figures as a store's, over every store of the fleet (each in its own local hours)."""

    stores_count: int
    unique_visitors: int
    purchasers: int
    conversion_rate: float = Field(ge=0, le=1)
    avg_dwell_ms: int
    queue_depth_current: int
    queue_joins: int
    queue_abandons: int
    abandonment_rate: float = Field(ge=0, le=1)
    transactions: int
    matched_transactions: int
    stores: list[MetricsReport] = Field(description="Each store's own figures over its window.")


class RankedStore(BaseModel):
    rank: int = Field(ge=1)
    store_id: str
    name: str
    value: float = Field(description="The figure ranked by.")
    metrics: MetricsReport


class StoreRanking(BaseModel):
    by: str
    order: Literal["desc", "asc"]
    stores: list[RankedStore]


def combine(totals: list[WindowTotals], reports: list[MetricsReport]) -> ChainMetrics:
    dwell_ms = sum(t.counts["dwell_ms"] for t in totals)
    dwell_n = sum(t.counts["dwell_n"] for t in totals)
    visitors = sum(r.unique_visitors for r in reports)
    buyers = sum(r.purchasers for r in reports)
    joins = sum(r.queue_joins for r in reports)
    abandons = sum(r.queue_abandons for r in reports)
    return ChainMetrics(
        stores_count=len(reports), unique_visitors=visitors, purchasers=buyers,
        conversion_rate=round(ratio(buyers, visitors), 4),
        avg_dwell_ms=round(dwell_ms / dwell_n) if dwell_n else 0,
        queue_depth_current=sum(r.queue_depth_current for r in reports),
        queue_joins=joins, queue_abandons=abandons, abandonment_rate=round(ratio(abandons, joins), 4),
        transactions=sum(r.transactions for r in reports),
        matched_transactions=sum(r.matched_transactions for r in reports),
        stores=reports,
    )


def rank(reports: list[MetricsReport], names: dict[str, str], by: RankBy,
         order: Literal["desc", "asc"] = "desc") -> StoreRanking:
    """Stores by `by`; ties keep store-id order, and tied stores share a rank (1, 1, 3)."""
    ordered = sorted(reports, key=lambda r: r.store_id)
    ordered.sort(key=lambda r: float(getattr(r, by)), reverse=order == "desc")
    out: list[RankedStore] = []
    for i, r in enumerate(ordered):
        value = float(getattr(r, by))
        position = out[-1].rank if out and out[-1].value == value else i + 1
        out.append(RankedStore(rank=position, store_id=r.store_id, name=names.get(r.store_id, r.store_id),
                               value=value, metrics=r))
    return StoreRanking(by=by, order=order, stores=out)
