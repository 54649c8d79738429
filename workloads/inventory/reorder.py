"""Reorder math for one SKU in one store: periodic review, order-up-to level, safety stock, packs.

Policy (R, S): every `review_period` days the store may order; it orders up to

    S = expected demand over the protection period P = lead time + review period
        + safety stock z * sigma * sqrt(P)

where z is the normal quantile of the target cycle service level and sigma the standard deviation
of one day's forecast error (errors assumed independent across days). The suggestion is
S - inventory position (on hand + on order), rounded *up* to whole packs and to the minimum order,
and nothing when the position already covers S. Demand over fractional days counts the fraction of
that day's forecast.

Example (hand-computed, also in the tests):
    >>> plan = reorder(on_hand=20, on_order=0, daily_forecast=[10.0] * 7, sigma=3.0, lead_time_days=2,
    ...                review_period_days=1, service_level=0.95, pack_size=6)
    >>> round(plan.safety_stock, 2), round(plan.order_up_to, 2), plan.order_units, plan.packs
    (8.55, 38.55, 24, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist


def z_value(service_level: float) -> float:
    """Normal quantile of the service level (0.95 -> 1.645)."""
    if not 0.5 <= service_level < 1:
        raise ValueError(f"service level must be in [0.5, 1), got {service_level}")
    return NormalDist().inv_cdf(service_level)


def demand_over(daily: Sequence[float], days: float, start_fraction: float = 0.0) -> float:
    """Expected demand over `days` days of a daily forecast, starting `start_fraction` into day 0.

    Days past the end of the forecast repeat its last value (the horizon is short of the lead time).
    """
    if days <= 0 or not len(daily):
        return 0.0
    total, t = 0.0, start_fraction
    end = start_fraction + days
    while t < end - 1e-12:
        d = math.floor(t)
        step = min(d + 1, end) - t
        total += step * float(daily[min(d, len(daily) - 1)])
        t += step
    return total


@dataclass(frozen=True)
class ReorderPlan:
    protection_days: float  #: lead time + review period
    expected_demand: float  #: over the protection period
    safety_stock: float
    order_up_to: float  #: S: the position the order restores
    inventory_position: float  #: on hand + on order
    order_units: int  #: suggested order, whole packs (0: nothing to order)
    packs: int

    @property
    def needed(self) -> bool:
        return self.order_units > 0


def reorder(
    on_hand: float,
    on_order: float,
    daily_forecast: Sequence[float],
    sigma: float,
    lead_time_days: float,
    review_period_days: float = 1.0,
    service_level: float = 0.95,
    pack_size: int = 1,
    min_order_units: int = 0,
    start_fraction: float = 0.0,
) -> ReorderPlan:
    """The order that brings the inventory position up to S (see the module doc)."""
    if pack_size < 1:
        raise ValueError(f"pack_size must be at least 1, got {pack_size}")
    p = max(lead_time_days, 0.0) + review_period_days
    expected = demand_over(daily_forecast, p, start_fraction)
    ss = z_value(service_level) * max(sigma, 0.0) * math.sqrt(p)
    s_level = expected + ss
    position = max(on_hand, 0.0) + max(on_order, 0.0)
    gap = s_level - position
    if gap <= 1e-9:
        return ReorderPlan(p, expected, ss, s_level, position, 0, 0)
    units = max(gap, float(min_order_units))
    packs = math.ceil(units / pack_size - 1e-9)
    return ReorderPlan(p, expected, ss, s_level, position, packs * pack_size, packs)


@dataclass(frozen=True)
class StockoutRisk:
    probability: float  #: chance of running out within the horizon (normal approximation)
    expected_at_h: float | None  #: hours from now until the expected stock reaches 0 (None: not in horizon)
    expected_demand: float  #: over the horizon


def stockout_risk(
    on_hand: float,
    daily_forecast: Sequence[float],
    sigma: float,
    horizon_h: float = 48.0,
    deliveries: Sequence[tuple[float, float]] = (),
    start_fraction: float = 0.0,
) -> StockoutRisk:
    """Will stock run out within `horizon_h` hours?

    Demand is spread evenly over each day; `deliveries` are (hours from now, units) and only help
    after they arrive. The probability is the largest, over the moments just before each delivery
    and the horizon's end, of P(demand so far > stock available so far), with demand normal with
    mean the forecast and variance sigma^2 per day.
    """
    arrivals = sorted((h, q) for h, q in deliveries if 0 <= h < horizon_h)
    checkpoints = [h for h, _ in arrivals] + [horizon_h]
    prob, available, idx = 0.0, float(max(on_hand, 0.0)), 0
    for t in checkpoints:
        while idx < len(arrivals) and arrivals[idx][0] < t:
            available += arrivals[idx][1]
            idx += 1
        mean = demand_over(daily_forecast, t / 24, start_fraction)
        sd = max(sigma, 0.0) * math.sqrt(t / 24)
        if available <= 0:
            p = 1.0
        elif sd <= 0:
            p = 1.0 if mean > available else 0.0
        else:
            p = 1.0 - NormalDist(mean, sd).cdf(available)
        prob = max(prob, p)
    return StockoutRisk(prob, hours_until_empty(on_hand, daily_forecast, horizon_h, arrivals, start_fraction),
                        demand_over(daily_forecast, horizon_h / 24, start_fraction))


def hours_until_empty(on_hand: float, daily: Sequence[float], horizon_h: float,
                      arrivals: Sequence[tuple[float, float]] = (), start_fraction: float = 0.0) -> float | None:
    """Hours until the expected stock first reaches 0 (None: not within `horizon_h`).

    Demand is spread evenly over each day; `arrivals` are (hours from now, units).
    """
    stock = max(on_hand, 0.0)
    if stock <= 0:
        return 0.0
    if not len(daily):
        return None
    # breakpoints: day boundaries and delivery times, in hours from now
    t, events = 0.0, sorted(arrivals)
    while t < horizon_h:
        day = math.floor(start_fraction + t / 24 + 1e-9)  # a boundary reached by float sums is that day
        next_day_h = max((day + 1 - start_fraction) * 24, t + 1e-6)  # always move on
        next_event = events[0][0] if events else math.inf
        seg_end = min(next_day_h, next_event, horizon_h)
        rate = float(daily[min(day, len(daily) - 1)]) / 24  # units per hour
        need = rate * (seg_end - t)
        if rate > 0 and need >= stock:
            return t + stock / rate
        stock -= need
        t = seg_end
        while events and events[0][0] <= t:
            stock += events.pop(0)[1]
    return None
