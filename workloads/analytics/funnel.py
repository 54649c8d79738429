"""The store funnel over a window: entry -> zone visit -> billing queue -> purchase.

Top-level counts are a strict funnel: a visitor counts at a stage only if they also reached every
earlier stage in the window, so counts never grow along the funnel and drop-off is well defined.
`reached` is the looser count of visitors seen at the stage at all: with cameras that cannot
follow one person across views (each camera has its own visitor ids), `reached` is the figure that
still reads sensibly.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from workloads.analytics.metrics import WindowInfo
from workloads.analytics.window import STAGES, WindowTotals

_NAMES = {"entry": "entry", "zone": "zone_visit", "billing": "billing_queue", "purchased": "purchased"}


class FunnelStage(BaseModel):
    stage: str = Field(description="entry | zone_visit | billing_queue | purchased")
    visitors: int = Field(description="Visitors who reached this stage and every earlier one.")
    reached: int = Field(description="Visitors seen at this stage at all (earlier stages not required).")
    conversion_from_previous: float = Field(ge=0, le=1, description="visitors / previous stage's visitors.")
    drop_off: float = Field(ge=0, le=1, description="Share of the previous stage's visitors lost here.")


class FunnelReport(BaseModel):
    store_id: str
    window: WindowInfo
    entry: int = Field(description="Visitors who entered.")
    zone_visit: int = Field(description="... and visited a browsing zone.")
    billing_queue: int = Field(description="... and reached billing (queue or checkout).")
    purchased: int = Field(description="... and were matched to a transaction.")
    stages: list[FunnelStage]


def compute(t: WindowTotals) -> FunnelReport:
    stages = []
    prev: int | None = None
    for key in STAGES:
        n = t.funnel[key]
        conv = 1.0 if prev is None else (n / prev if prev else 0.0)
        stages.append(FunnelStage(
            stage=_NAMES[key], visitors=n, reached=t.reached[key],
            conversion_from_previous=round(conv, 4), drop_off=round(1.0 - conv, 4) if prev else 0.0,
        ))
        prev = n
    return FunnelReport(
        store_id=t.store_id, window=WindowInfo.of(t.window),
        entry=t.funnel["entry"], zone_visit=t.funnel["zone"], billing_queue=t.funnel["billing"],
        purchased=t.funnel["purchased"], stages=stages,
    )
