"""Analytics settings: purchase matching and anomaly thresholds (the `analytics:` section of a fleet file).

Example:
    >>> AnalyticsConfig().purchase_window_s
    300.0
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AnalyticsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purchase_window_s: float = Field(
        300.0, gt=0, le=3600,
        description="A transaction is matched to a non-staff visitor seen in a billing zone (BILLING_QUEUE or "
        "CHECKOUT) at most this many seconds before it.",
    )
    baseline_days: int = Field(
        7, ge=1, le=90, description="Trailing days (same hours of the day) the conversion and queue baselines use."
    )
    conversion_drop_ratio: float = Field(
        0.3, gt=0, lt=1,
        description="Conversion so far today below (1 - this) x the trailing baseline is a conversion-drop anomaly.",
    )
    conversion_min_visitors: int = Field(
        20, ge=1, description="Fewest visitors today (and per baseline day on average) before conversion is judged."
    )
    queue_spike_min_depth: int = Field(
        5, ge=1, description="A queue is never a spike below this many people, whatever its baseline."
    )
    queue_spike_factor: float = Field(
        2.0, ge=1, description="A queue is a spike at this multiple of its trailing average hourly peak."
    )
    queue_sample_max_age_s: float = Field(
        1800.0, gt=0, description="A queue depth older than this is not 'current' (no spike is reported from it)."
    )
    dead_zone_s: float = Field(
        3600.0, gt=0, description="A browsing zone with no visit for this long while the store has visitors is dead."
    )
    dead_zone_min_entries: int = Field(
        5, ge=1, description="Store entries needed within the dead-zone period before an empty zone is an anomaly."
    )
    stale_feed_s: float = Field(
        60.0, gt=0, description="A running camera that processed no frame for this long is a stale feed."
    )
    silent_camera_s: float = Field(
        1800.0, gt=0,
        description="A camera without health reports (external pipelines) whose last event is this much older "
        "than the store's latest event is a stale feed.",
    )
    max_window_days: int = Field(400, ge=1, description="Longest from/to window an analytics query may span.")
