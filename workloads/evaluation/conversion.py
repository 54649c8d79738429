"""Conversion rate from visitor events and POS transactions, by the product's matching rule.

Rule (the README's north-star metric): a non-staff visitor seen in a billing zone (BILLING_QUEUE or
CHECKOUT) within `window_s` (5 min) before a transaction counts as purchased; each transaction
matches at most one visitor, the one whose billing presence ended closest to the transaction time
(ties: earlier start, then smaller visitor id); staff never match. Conversion = purchased visitors /
unique visitors (distinct non-staff visitor ids with an ENTRY; a REENTRY is the same visitor).

This is the same rule as the store-analytics POS matcher (`workloads.analytics.pos`), restated here
over plain event lists so the evaluation needs no Redis.

Example:
    >>> presences = {"v1": [(0.0, 50.0)], "v2": [(10.0, 95.0)]}
    >>> sorted(match_transactions([100.0], presences))
    ['v2']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from workloads.config import CameraConfig, ZoneType
from workloads.events import EventType, VisitorEvent

PURCHASE_WINDOW_S = 300.0
BILLING_TYPES = (ZoneType.BILLING_QUEUE, ZoneType.CHECKOUT)


def billing_presences(
    events: Iterable[VisitorEvent], cameras: Sequence[CameraConfig]
) -> dict[str, list[tuple[float, float]]]:
    """Non-staff visitors' billing-zone presences as (start, end) epoch seconds, from ZONE_EXIT events."""
    billing = {z.id for c in cameras for z in c.zones if z.type in BILLING_TYPES}
    staff = {e.visitor_id for e in events_list(events) if e.is_staff}
    out: dict[str, list[tuple[float, float]]] = {}
    for e in events_list(events):
        if e.event_type == EventType.ZONE_EXIT and e.zone_id in billing and e.visitor_id not in staff:
            end = e.timestamp.timestamp()
            out.setdefault(e.visitor_id, []).append((end - e.dwell_ms / 1000.0, end))
    return out


def events_list(events: Iterable[VisitorEvent]) -> list[VisitorEvent]:
    return events if isinstance(events, list) else list(events)


def match_transactions(
    transaction_times: Iterable[float],
    presences: Mapping[str, Sequence[tuple[float, float]]],
    window_s: float = PURCHASE_WINDOW_S,
) -> set[str]:
    """Visitors who purchased: each transaction (epoch seconds) matched to at most one presence."""
    bought: set[str] = set()
    for ts in transaction_times:
        best: tuple[float, float, str] | None = None
        for visitor, spans in presences.items():
            for start, end in spans:
                if start > ts or end < ts - window_s:
                    continue
                key = (abs(ts - end), start, visitor)
                if best is None or key < best:
                    best = key
        if best is not None:
            bought.add(best[2])
    return bought


def unique_visitors(events: Iterable[VisitorEvent]) -> set[str]:
    """Distinct non-staff visitor ids that have an ENTRY (re-entries carry the first visit's id)."""
    evs = events_list(events)
    staff = {e.visitor_id for e in evs if e.is_staff}
    return {e.visitor_id for e in evs if e.event_type == EventType.ENTRY and e.visitor_id not in staff}


def conversion_rate(
    events: Iterable[VisitorEvent],
    transaction_times: Iterable[float],
    cameras: Sequence[CameraConfig],
    window_s: float = PURCHASE_WINDOW_S,
) -> tuple[float, int, int]:
    """(conversion, purchased, unique visitors); purchased counts only visitors who entered."""
    evs = events_list(events)
    visitors = unique_visitors(evs)
    bought = match_transactions(transaction_times, billing_presences(evs, cameras), window_s) & visitors
    return (len(bought) / len(visitors) if visitors else 0.0), len(bought), len(visitors)
