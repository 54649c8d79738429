"""What one event means for analytics: funnel stage, zone kind, billing presence.

The funnel is entry -> zone visit -> billing queue -> purchase:
    * entry: an ENTRY or REENTRY;
    * zone visit: entering (or dwelling in) a browsing zone: PRODUCT or HIGH_VALUE, or a zone the
      fleet config does not know (zones named by external pipelines count as browsing);
    * billing queue: BILLING_QUEUE_JOIN, or any visit of a BILLING_QUEUE or CHECKOUT zone;
    * purchase: matched to a POS transaction (see `pos`).
ENTRY, EXIT and RESTRICTED zones are no funnel stage. Staff events count for nothing but feed health.

Example:
    >>> kind_of(None, EventType.BILLING_QUEUE_JOIN)
    <ZoneKind.BILLING: 'billing'>
"""

from __future__ import annotations

from enum import StrEnum

from workloads.config import StoreConfig, ZoneType
from workloads.events import EventType, VisitorEvent

#: Longest billing presence one event may describe (a queue dwell above this is clipped).
MAX_PRESENCE_MS = 2 * 3600 * 1000


class ZoneKind(StrEnum):
    BROWSE = "browse"
    BILLING = "billing"
    OTHER = "other"


class Stage(StrEnum):
    """Funnel stages kept as per-hour visitor sets (purchases are kept per transaction)."""

    ENTRY = "entry"
    ZONE = "zone"
    BILLING = "billing"


_KIND_OF_TYPE = {
    ZoneType.PRODUCT: ZoneKind.BROWSE,
    ZoneType.HIGH_VALUE: ZoneKind.BROWSE,
    ZoneType.BILLING_QUEUE: ZoneKind.BILLING,
    ZoneType.CHECKOUT: ZoneKind.BILLING,
    ZoneType.ENTRY: ZoneKind.OTHER,
    ZoneType.EXIT: ZoneKind.OTHER,
    ZoneType.RESTRICTED: ZoneKind.OTHER,
}

_BILLING_EVENTS = frozenset({EventType.BILLING_QUEUE_JOIN, EventType.BILLING_QUEUE_ABANDON})
_VISIT_EVENTS = frozenset({EventType.ZONE_ENTER, EventType.ZONE_DWELL})


def zone_types(store: StoreConfig) -> dict[str, ZoneType]:
    """Zone id -> type over all cameras of the store."""
    return {z.id: z.type for c in store.cameras for z in c.zones}


def kind_of(zone_type: ZoneType | None, event_type: EventType) -> ZoneKind:
    if event_type in _BILLING_EVENTS:
        return ZoneKind.BILLING
    if zone_type is None:
        return ZoneKind.BROWSE
    return _KIND_OF_TYPE[zone_type]


def stage_of(e: VisitorEvent, kind: ZoneKind | None) -> Stage | None:
    """The funnel stage a non-staff event shows its visitor reached, if any."""
    if e.event_type in (EventType.ENTRY, EventType.REENTRY):
        return Stage.ENTRY
    if e.event_type == EventType.BILLING_QUEUE_JOIN:
        return Stage.BILLING
    if e.event_type in _VISIT_EVENTS:
        if kind is ZoneKind.BROWSE:
            return Stage.ZONE
        if kind is ZoneKind.BILLING:
            return Stage.BILLING
    return None


def billing_presence(e: VisitorEvent, kind: ZoneKind | None) -> tuple[int, int] | None:
    """[start_ms, end_ms] during which a billing-zone event shows its visitor in billing, else None.

    ZONE_ENTER and BILLING_QUEUE_JOIN are a point; ZONE_EXIT, ZONE_DWELL and BILLING_QUEUE_ABANDON
    cover their dwell before the event (clipped to `MAX_PRESENCE_MS`).
    """
    if kind is not ZoneKind.BILLING or e.zone_id is None:
        return None
    end = e.ts_ms
    return end - min(e.dwell_ms, MAX_PRESENCE_MS), end
