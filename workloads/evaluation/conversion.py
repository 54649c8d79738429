"""Conversion rate from visitor events and POS transactions, with the store-analytics rule itself.

The product's rule lives in `workloads.analytics` (stages: which events are billing presences; pos:
which visitor a transaction matches), and the evaluation calls exactly that code, so the measured
conversion error is the error a store manager would see:

    * a billing presence is any BILLING_QUEUE / CHECKOUT zone event (ZONE_ENTER and JOIN as a point,
      ZONE_EXIT / ZONE_DWELL / ABANDON covering their dwell before the event);
    * a transaction matches at most one non-staff visitor present in billing within 5 min before it:
      someone in a CHECKOUT zone at that moment first, else the one whose presence ended closest to
      the transaction (ties: earlier start, smaller id);
    * conversion = purchasers / unique visitors, both over distinct non-staff visitor ids with an
      ENTRY or REENTRY; a visitor is staff when any of their events is flagged.

Example:
    >>> presences = {"v1": [(0.0, 50.0)], "v2": [(10.0, 95.0)]}
    >>> sorted(match_transactions([100.0], presences))
    ['v2']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from workloads.analytics.pos import best_visitor
from workloads.analytics.stages import billing_presence, kind_of
from workloads.config import CameraConfig, ZoneType
from workloads.events import EventType, VisitorEvent

PURCHASE_WINDOW_S = 300.0


def staff_visitors(events: Iterable[VisitorEvent]) -> set[str]:
    return {e.visitor_id for e in events if e.is_staff}


Span = tuple[float, float] | tuple[float, float, bool]  #: start, end (epoch s), whether at the till (CHECKOUT)


def billing_presences(events: Sequence[VisitorEvent], cameras: Sequence[CameraConfig]) -> dict[str, list[Span]]:
    """Non-staff visitors' billing presences as (start, end, at_till) epoch seconds, by the analytics rule."""
    types = {z.id: z.type for c in cameras for z in c.zones}
    staff = staff_visitors(events)
    out: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        span = billing_presence(e, kind_of(types.get(e.zone_id or ""), e.event_type)) if e.zone_id else None
        if span is not None and e.visitor_id not in staff:
            till = types.get(e.zone_id or "") is ZoneType.CHECKOUT
            out.setdefault(e.visitor_id, []).append((span[0] / 1000.0, span[1] / 1000.0, till))
    return out


def match_transactions(
    transaction_times: Iterable[float],
    presences: Mapping[str, Sequence[Span]],
    window_s: float = PURCHASE_WINDOW_S,
) -> set[str]:
    """Visitors who purchased: each transaction (epoch seconds) matched by `analytics.pos.best_visitor`."""
    flat = [(v, round(a * 1000), round(b * 1000), *till) for v, spans in presences.items() for a, b, *till in spans]
    bought = {best_visitor(round(ts * 1000), flat, set(), round(window_s * 1000)) for ts in transaction_times}
    return {v for v in bought if v is not None}


def unique_visitors(events: Sequence[VisitorEvent]) -> set[str]:
    """Distinct non-staff visitor ids with an ENTRY or REENTRY (a re-entry keeps its visitor's id)."""
    staff = staff_visitors(events)
    entering = (EventType.ENTRY, EventType.REENTRY)
    return {e.visitor_id for e in events if e.event_type in entering and e.visitor_id not in staff}


def conversion_rate(
    events: Iterable[VisitorEvent],
    transaction_times: Iterable[float],
    cameras: Sequence[CameraConfig],
    window_s: float = PURCHASE_WINDOW_S,
) -> tuple[float, int, int]:
    """(conversion, purchasers, unique visitors); purchasers count only visitors who entered."""
    evs = list(events)
    visitors = unique_visitors(evs)
    bought = match_transactions(transaction_times, billing_presences(evs, cameras), window_s) & visitors
    return (len(bought) / len(visitors) if visitors else 0.0), len(bought), len(visitors)
