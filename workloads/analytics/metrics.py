"""Store metrics over a window: unique visitors, conversion, dwell, queue depth, abandonment.

Definitions (all exclude staff):
    * unique_visitors: distinct visitors with an ENTRY or REENTRY in the window;
    * purchasers: those of them matched to a POS transaction of the window;
    * conversion_rate: purchasers / unique_visitors (0 with no visitors);
    * avg_dwell_ms: mean dwell of the finished visits (ZONE_EXIT) of browsing zones;
    * queue_depth_current: latest reported depth summed over billing zones (not windowed);
    * abandonment_rate: BILLING_QUEUE_ABANDON / BILLING_QUEUE_JOIN events in the window.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from workloads.analytics.buckets import Window
from workloads.analytics.queue import QueueNow
from workloads.analytics.window import WindowTotals


class WindowInfo(BaseModel):
    """The window an answer covers: the asked one widened to whole local hours of the store."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: datetime = Field(alias="from", description="Start (inclusive), UTC.")
    to: datetime = Field(description="End (exclusive), UTC.")
    timezone: str = Field(description="Time zone whose hours the window is aligned to.")
    resolution: str = Field("hour", description="Granularity of the stored aggregates.")

    @classmethod
    def of(cls, w: Window) -> WindowInfo:
        return cls.model_validate({"from": w.start_dt, "to": w.end_dt, "timezone": w.timezone})


class MetricsReport(BaseModel):
    """A store's figures over a window."""

    store_id: str
    window: WindowInfo
    unique_visitors: int = Field(description="Distinct non-staff visitors who entered (ENTRY or REENTRY).")
    purchasers: int = Field(description="Of those, visitors matched to a POS transaction in the window.")
    conversion_rate: float = Field(ge=0, le=1, description="purchasers / unique_visitors; 0 with no visitors.")
    avg_dwell_ms: int = Field(description="Mean dwell of finished visits of browsing zones (PRODUCT, HIGH_VALUE).")
    queue_depth_current: int = Field(description="Latest reported queue depth, summed over billing zones.")
    queue_depth_as_of: datetime | None = Field(None, description="Event time of that latest depth report.")
    queue_joins: int = Field(description="BILLING_QUEUE_JOIN events in the window.")
    queue_abandons: int = Field(description="BILLING_QUEUE_ABANDON events in the window.")
    abandonment_rate: float = Field(ge=0, le=1, description="queue_abandons / queue_joins; 0 with no joins.")
    entries: int = Field(description="ENTRY events (a visitor entering twice counts twice).")
    transactions: int = Field(description="POS transactions in the window.")
    matched_transactions: int = Field(description="Transactions matched to a visitor.")


def ratio(num: float, den: float) -> float:
    return min(1.0, num / den) if den > 0 else 0.0


def compute(t: WindowTotals, queue: QueueNow) -> MetricsReport:
    c = t.counts
    return MetricsReport(
        store_id=t.store_id,
        window=WindowInfo.of(t.window),
        unique_visitors=t.unique_visitors,
        purchasers=t.purchasers,
        conversion_rate=round(ratio(t.purchasers, t.unique_visitors), 4),
        avg_dwell_ms=round(c["dwell_ms"] / c["dwell_n"]) if c["dwell_n"] else 0,
        queue_depth_current=queue.depth,
        queue_depth_as_of=queue.as_of,
        queue_joins=c["queue_joins"],
        queue_abandons=c["queue_abandons"],
        abandonment_rate=round(ratio(c["queue_abandons"], c["queue_joins"]), 4),
        entries=c["entries"],
        transactions=t.transactions,
        matched_transactions=t.matched_transactions,
    )
