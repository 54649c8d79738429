"""Every Redis key StoreFleet uses, and the only place that builds key strings.

Per-store keys carry the store id as a Redis Cluster hash tag (`sf:{STORE_ID}:...`): all of a
store's keys hash to one slot, so a store's multi-key Lua scripts and transactions keep working
when a chain moves to Redis Cluster sharded by store. Only the fleet-wide registry of stores
(`sf:stores`) has no store tag; nothing writes it in the same script as per-store keys.

Example:
    >>> events_stream("S1")
    'sf:{S1}:events'
    >>> camera_health("S1", "C7")
    'sf:{S1}:camera:C7:health'
"""

from __future__ import annotations

PREFIX = "sf"


def _tag(store_id: str) -> str:
    # A brace inside the id would move or split the hash tag (Redis hashes the text between the
    # first "{" and the next "}"), silently putting a store's keys in different slots.
    if not store_id or "{" in store_id or "}" in store_id:
        raise ValueError(f"store id {store_id!r} cannot be used in a Redis key (empty or contains braces)")
    return f"{PREFIX}:{{{store_id}}}"


def stores() -> str:
    """Set of store ids that have events (fleet-wide, the one key without a store tag)."""
    return f"{PREFIX}:stores"


def events_stream(store_id: str) -> str:
    """Stream of the store's events in append order (fields `event_id`, `json`), for tailing readers."""
    return f"{_tag(store_id)}:events"


def event_by_id(store_id: str) -> str:
    """Hash event_id -> event JSON: the idempotency guard (HSETNX) and the event store for queries."""
    return f"{_tag(store_id)}:events:by_id"


def events_by_time(store_id: str) -> str:
    """Sorted set of event ids scored by event time (ms since epoch)."""
    return f"{_tag(store_id)}:events:by_ts"


def events_by_type_time(store_id: str, event_type: str) -> str:
    """Sorted set of the ids of one event type, scored by event time (ms since epoch)."""
    return f"{_tag(store_id)}:events:by_ts:{event_type}"


def event_counters(store_id: str) -> str:
    """Hash of running counters of accepted events (total, per type, per camera and type, staff)."""
    return f"{_tag(store_id)}:counters"


def cameras(store_id: str) -> str:
    """Set of camera ids of the store that have reported health."""
    return f"{_tag(store_id)}:cameras"


def camera_checkpoint(store_id: str, camera_id: str) -> str:
    """String: the camera's packed checkpoint (header + opaque blob)."""
    return f"{_tag(store_id)}:camera:{camera_id}:checkpoint"


def camera_health(store_id: str, camera_id: str) -> str:
    """Hash: the camera's last health report."""
    return f"{_tag(store_id)}:camera:{camera_id}:health"


def consumer_cursor(store_id: str, consumer: str) -> str:
    """Last stream id a downstream consumer (analytics, rules) has fully applied."""
    return f"{_tag(store_id)}:cursor:{consumer}"


def store_pattern(store_id: str) -> str:
    """SCAN MATCH pattern of every key of the store (glob characters in the id escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in store_id)
    return f"{PREFIX}:{{{escaped}}}:*"


# ------------------------------------------------------------------------------ loss prevention


def lp_rules(store_id: str) -> str:
    """Hash: the store's effective loss-prevention rules (yaml, version, source, updated_at, updated_by)."""
    return f"{_tag(store_id)}:lp:rules"


def lp_sessions(store_id: str) -> str:
    """Hash visitor_id -> session JSON: per-visitor loss-prevention state (visits, flags, dedup marks)."""
    return f"{_tag(store_id)}:lp:sessions"


def lp_sessions_by_seen(store_id: str) -> str:
    """Sorted set of visitor ids with a session, scored by last-seen event time (ms)."""
    return f"{_tag(store_id)}:lp:sessions:by_seen"


def lp_alert(store_id: str, alert_id: str) -> str:
    """Hash: one alert (immutable `json`, plus `status` and who/when of acknowledge and resolve)."""
    return f"{_tag(store_id)}:lp:alert:{alert_id}"


def lp_alerts_by_time(store_id: str) -> str:
    """Sorted set of the store's alert ids scored by alert time (ms)."""
    return f"{_tag(store_id)}:lp:alerts:by_ts"


def lp_alert_counters(store_id: str) -> str:
    """Hash of running alert counts: total, type:<T>, severity:<S>, status:<S>, suppressed:<T>."""
    return f"{_tag(store_id)}:lp:alerts:counters"


def lp_alert_dedup(store_id: str) -> str:
    """Sorted set: time-window dedup hash -> time (ms) of the last alert created with it."""
    return f"{_tag(store_id)}:lp:alerts:dedup"


def lp_alerts_stream(store_id: str) -> str:
    """Stream of created alerts (fields `alert_id`, `json`): the delivery outbox and a feed for readers."""
    return f"{_tag(store_id)}:lp:alerts:stream"


def lp_alerts_channel(store_id: str) -> str:
    """Pub/sub channel on which every new alert's JSON is published."""
    return f"{_tag(store_id)}:lp:alerts:live"


def lp_delivery_failed(store_id: str) -> str:
    """Stream of alert deliveries that failed after every retry (alert_id, channel, error)."""
    return f"{_tag(store_id)}:lp:alerts:undelivered"


def lp_escalations(store_id: str) -> str:
    """Stream of escalation requests (e.g. behavioural analysis), for the service that handles them."""
    return f"{_tag(store_id)}:lp:escalations"


def lp_escalation_ids(store_id: str) -> str:
    """Sorted set of escalation ids already written, scored by time (ms): keeps replays out of the stream."""
    return f"{_tag(store_id)}:lp:escalations:ids"


def lp_ba_results(store_id: str) -> str:
    """Stream of behavioural-analysis results fed into the store's rules (fields `result_id`, `json`)."""
    return f"{_tag(store_id)}:lp:ba_results"


def lp_ba_result_ids(store_id: str) -> str:
    """Sorted set of behavioural-analysis result ids already queued, scored by arrival (ms): retries drop out."""
    return f"{_tag(store_id)}:lp:ba_results:ids"


def lp_status(store_id: str) -> str:
    """Hash: the rule actor's heartbeat (rules version and error, lag, sessions, last tick)."""
    return f"{_tag(store_id)}:lp:status"


# ------------------------------------------------------------------------------------ store analytics
# Aggregates derived from the event stream by the store's analytics consumer, bucketed by the local
# hour of the store (a bucket is named by the epoch second its local hour starts), plus POS state.


def analytics_buckets(store_id: str) -> str:
    """Sorted set of the store's analytics hour buckets that hold data (member and score: bucket start, epoch s)."""
    return f"{_tag(store_id)}:an:buckets"


def analytics_counts(store_id: str, bucket: int) -> str:
    """Hash of one hour bucket's counters (entries, queue joins, zone visits and dwell sums, ...)."""
    return f"{_tag(store_id)}:an:h:{bucket}:counts"


def analytics_visitors(store_id: str, bucket: int, stage: str) -> str:
    """Set of the visitor ids that reached a funnel stage (entry, zone, billing) in one hour bucket."""
    return f"{_tag(store_id)}:an:h:{bucket}:v:{stage}"


def analytics_purchases(store_id: str, bucket: int) -> str:
    """Hash transaction_id -> matched visitor id, for the transactions of one hour bucket."""
    return f"{_tag(store_id)}:an:h:{bucket}:purchases"


def analytics_staff(store_id: str) -> str:
    """Set of visitor ids ever flagged as staff: removed from every visitor count and never matched to a sale."""
    return f"{_tag(store_id)}:an:staff"


def analytics_zone_last(store_id: str) -> str:
    """Sorted set zone_id scored by the time of its latest non-staff visit (ms; only ever raised)."""
    return f"{_tag(store_id)}:an:zone_last"


def analytics_camera_last(store_id: str) -> str:
    """Sorted set camera_id scored by the time of its latest event (ms; only ever raised)."""
    return f"{_tag(store_id)}:an:camera_last"


def analytics_queue_now(store_id: str) -> str:
    """Hash zone_id -> "ts_ms:depth" of the latest queue depth reported for each billing zone."""
    return f"{_tag(store_id)}:an:queue_now"


def analytics_queue_samples(store_id: str) -> str:
    """Sorted set of recent queue-depth samples ("zone|ts_ms|depth|event_id"), scored by time (ms)."""
    return f"{_tag(store_id)}:an:queue_samples"


def analytics_queue_peaks(store_id: str) -> str:
    """Sorted set "bucket|zone_id" scored by the highest queue depth seen in that hour (only ever raised)."""
    return f"{_tag(store_id)}:an:queue_peaks"


def analytics_scratch(store_id: str, name: str) -> str:
    """Temporary set used inside one analytics Lua script and deleted before it returns."""
    return f"{_tag(store_id)}:an:tmp:{name}"


def pos_transactions(store_id: str) -> str:
    """Hash transaction_id -> transaction JSON: the POS idempotency guard (HSETNX)."""
    return f"{_tag(store_id)}:pos:tx"


def pos_by_time(store_id: str) -> str:
    """Sorted set of transaction ids scored by transaction time (ms)."""
    return f"{_tag(store_id)}:pos:by_ts"


def pos_matches(store_id: str) -> str:
    """Hash transaction_id -> matched visitor id ("" when nobody was in billing)."""
    return f"{_tag(store_id)}:pos:match"


def pos_billing_presence(store_id: str) -> str:
    """Sorted set of billing-zone presences (JSON [visitor, start_ms, end_ms]) scored by end_ms."""
    return f"{_tag(store_id)}:pos:presence"


def pos_dirty(store_id: str) -> str:
    """Sorted set of time ranges ("lo:hi", ms) whose transactions must be matched again."""
    return f"{_tag(store_id)}:pos:dirty"


# ------------------------------------------------------------------------------ behavioural analysis


def ba_visits(store_id: str) -> str:
    """Hash visit_id -> JSON of a HIGH_VALUE-zone visit whose person crops are kept (camera, visitor, zone,
    opened/closed times, pinned by an alert or a suspicious verdict)."""
    return f"{_tag(store_id)}:ba:visits"


def ba_visit_frames(store_id: str, visit_id: str) -> str:
    """Hash ts_ms -> JSON of one stored crop of the visit (object key, box, crop rectangle, keypoints)."""
    return f"{_tag(store_id)}:ba:visit:{visit_id}:frames"


def ba_watches(store_id: str) -> str:
    """Hash visit_id -> JSON of the behavioural-analysis watcher's state for an escalated visit."""
    return f"{_tag(store_id)}:ba:watches"


def ba_evidence(store_id: str, alert_id: str) -> str:
    """String: JSON list of the evidence frames copied for an alert (name, visit, zone, camera, ts_ms)."""
    return f"{_tag(store_id)}:ba:evidence:{alert_id}"


def ba_evidence_by_time(store_id: str) -> str:
    """Sorted set of alert ids with copied evidence, scored by copy time (ms): the retention sweep's index."""
    return f"{_tag(store_id)}:ba:evidence:by_ts"


# ------------------------------------------------------------------------------ inventory


def inventory_alerts_stream(store_id: str) -> str:
    """Stream of the store's inventory alerts (fields `alert_id`, `json`), in creation order."""
    return f"{_tag(store_id)}:inv:alerts"


def inventory_alert_by_id(store_id: str) -> str:
    """Hash alert_id -> alert JSON: the inventory alerts' idempotency guard (HSETNX)."""
    return f"{_tag(store_id)}:inv:alerts:by_id"


def inventory_alerts_by_time(store_id: str) -> str:
    """Sorted set of inventory alert ids scored by creation time (ms)."""
    return f"{_tag(store_id)}:inv:alerts:by_ts"


def inventory_shelf(store_id: str) -> str:
    """Hash segment_id -> JSON of the latest shelf-gap observation of that planogram segment."""
    return f"{_tag(store_id)}:inv:shelf"


def pos_pending(store_id: str) -> str:
    """Set of transaction ids stored but not matched yet (matched, then removed, in one MULTI)."""
    return f"{_tag(store_id)}:pos:pending"
