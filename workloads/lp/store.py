"""Loss-prevention state in Redis: sessions, alerts (create once, dedup, acknowledge, resolve), escalation
requests, behavioural-analysis inputs, the effective rules and the rule actor's status.

Why it looks like this:
    * Every key carries the store's hash tag (`workloads.state.keys`), so a store's writes can share one
      MULTI/EXEC and scripts keep working on Redis Cluster sharded by store.
    * The rule actor writes what one step derived (sessions, alerts, escalations) and its stream cursors
      in ONE transaction (`queue_effects` + the cursors' commit), so after a crash it re-reads exactly
      the inputs whose effects were not written.
    * Alert creation is a script that does nothing when the alert id exists (ids derive from the cause):
      a replay can never duplicate an alert, its stream entry or its pub/sub message. The same script
      applies the alert-config time-window dedup, atomically with the creation.
    * Operators' acknowledge/resolve is a script too: a state machine (open -> acknowledged -> resolved)
      whose retries change nothing.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from workloads.lp.alert_config import AlertConfig, dedup_key
from workloads.lp.models import Alert, BaResult, Escalation, Session
from workloads.lp.processor import Effects
from workloads.state import keys

#: Entries kept in the alert and escalation streams (approximate trim; alerts themselves are kept).
STREAM_MAXLEN = 100_000
#: How long escalation and behavioural-analysis result ids are remembered against replays and retries.
ESCALATION_ID_TTL_MS = 7 * 24 * 3600 * 1000

# KEYS: 1 alert hash, 2 by-time zset, 3 stream, 4 dedup zset, 5 counters
# ARGV: 1 id, 2 json, 3 ts_ms, 4 dedup hash|''|'drop', 5 window_ms, 6 channel, 7 type, 8 severity,
#       9 maxlen, 10 prune_before_ms
# Returns 1 created, 0 already there (replay), 2 suppressed by the time-window dedup.
_CREATE_ALERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ts = tonumber(ARGV[3])
if ARGV[4] == 'drop' then
  redis.call('HINCRBY', KEYS[5], 'suppressed:' .. ARGV[7], 1)
  return 2
end
if ARGV[4] ~= '' then
  local last = redis.call('ZSCORE', KEYS[4], ARGV[4])
  if last and math.abs(ts - tonumber(last)) < tonumber(ARGV[5]) then
    redis.call('HINCRBY', KEYS[5], 'suppressed:' .. ARGV[7], 1)
    return 2
  end
  redis.call('ZADD', KEYS[4], 'GT', ts, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[10])
end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'status', 'open')
redis.call('ZADD', KEYS[2], ts, ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'alert_id', ARGV[1], 'json', ARGV[2])
redis.call('HINCRBY', KEYS[5], 'total', 1)
redis.call('HINCRBY', KEYS[5], 'type:' .. ARGV[7], 1)
redis.call('HINCRBY', KEYS[5], 'severity:' .. ARGV[8], 1)
redis.call('HINCRBY', KEYS[5], 'status:open', 1)
redis.call('PUBLISH', ARGV[6], ARGV[2])
return 1
"""

# Append to a stream once per id (escalation requests, behavioural-analysis inputs).
# KEYS: 1 ids zset, 2 stream. ARGV: 1 id, 2 ts_ms, 3 maxlen, 4 prune_before_ms, 5.. field, value pairs.
# Returns 1 added, 0 already there (a replay or a retried post).
_ADD_ONCE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
return 1
"""

# KEYS: 1 alert hash, 2 counters. ARGV: 1 'ack'|'resolve', 2 who, 3 when (ISO), 4 note ('' for none).
# Returns {status_after, changed 0/1}, or {'missing', 0}.
_TRANSITION = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', 0} end
local target = ARGV[1] == 'ack' and 'acknowledged' or 'resolved'
if st == target or st == 'resolved' then return {st, 0} end
local prefix = ARGV[1] == 'ack' and 'acknowledged' or 'resolved'
redis.call('HSET', KEYS[1], 'status', target, prefix .. '_by', ARGV[2], prefix .. '_at', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'note', ARGV[4]) end
redis.call('HINCRBY', KEYS[2], 'status:' .. st, -1)
redis.call('HINCRBY', KEYS[2], 'status:' .. target, 1)
return {target, 1}
"""

CREATED, DUPLICATE, SUPPRESSED = 1, 0, 2


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@dataclass
class AlertFilter:
    """What `list_alerts` / `count_alerts` keep. Empty sets keep everything."""

    types: set[str] = field(default_factory=set)
    severities: set[str] = field(default_factory=set)
    statuses: set[str] = field(default_factory=set)
    start: datetime | None = None  #: inclusive
    end: datetime | None = None  #: exclusive
    visitor_id: str | None = None

    def keep(self, a: Alert) -> bool:
        return ((not self.types or a.alert_type in self.types)
                and (not self.severities or a.severity in self.severities)
                and (not self.statuses or str(a.status) in self.statuses)
                and (self.visitor_id is None or a.visitor_id == self.visitor_id))


def _encode_cursor(ts_ms: int, alert_id: str) -> str:
    return base64.urlsafe_b64encode(f"a1|{ts_ms}|{alert_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, ts, alert_id = raw.split("|")
        if tag != "a1" or not alert_id:
            raise ValueError
        return int(ts), alert_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"invalid cursor {cursor!r}") from None


class LpStore:
    """Loss-prevention reads and writes over one Redis client (thread-safe: pipelines per call)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._transition = client.register_script(_TRANSITION)

    # ------------------------------------------------------------------ the rule actor's writes

    def queue_effects(self, pipe: redis.client.Pipeline, store_id: str, fx: Effects,
                      alert_config: AlertConfig) -> list[int]:
        """Queue a step's effects on `pipe` (a MULTI). Returns the pipeline positions of the alert scripts.

        Scripts are sent as EVAL (not EVALSHA): inside MULTI a missing script would fail at EXEC while the
        rest of the transaction, cursors included, went through.
        """
        sessions_key, seen_key = keys.lp_sessions(store_id), keys.lp_sessions_by_seen(store_id)
        if fx.sessions:
            pipe.hset(sessions_key, mapping={v: s.model_dump_json() for v, s in fx.sessions.items()})
            pipe.zadd(seen_key, {v: _ms(s.last_seen) for v, s in fx.sessions.items()})
        if fx.expired:
            gone = [s.visitor_id for s in fx.expired]
            pipe.hdel(sessions_key, *gone)
            pipe.zrem(seen_key, *gone)
        positions: list[int] = []
        windows = [s.dedup.window_seconds for s in alert_config.subscriptions if s.dedup.enabled] or [0.0]
        max_window_ms = int(max(windows) * 1000)
        for a in fx.alerts:
            sub = alert_config.for_type(a.alert_type)
            dkey = dedup_key(sub, a.view()) or ""
            ts = _ms(a.timestamp)
            positions.append(len(pipe))
            pipe.eval(
                _CREATE_ALERT, 5,
                keys.lp_alert(store_id, a.alert_id), keys.lp_alerts_by_time(store_id),
                keys.lp_alerts_stream(store_id), keys.lp_alert_dedup(store_id), keys.lp_alert_counters(store_id),
                a.alert_id, a.model_dump_json(exclude={"status"}), ts, dkey, int(sub.dedup.window_seconds * 1000),
                keys.lp_alerts_channel(store_id), a.alert_type, a.severity, STREAM_MAXLEN,
                ts - max_window_ms - 3_600_000,
            )
        for e in fx.escalations:
            ts = _ms(e.at)
            pipe.eval(_ADD_ONCE, 2, keys.lp_escalation_ids(store_id), keys.lp_escalations(store_id),
                      e.escalation_id, ts, STREAM_MAXLEN, ts - ESCALATION_ID_TTL_MS,
                      "escalation_id", e.escalation_id, "json", e.model_dump_json())
        return positions

    def load_sessions(self, store_id: str) -> list[Session]:
        return [Session.model_validate_json(v) for v in self.client.hvals(keys.lp_sessions(store_id))]

    # ------------------------------------------------------------------ alerts: reads and operator actions

    @staticmethod
    def _alert(raw: dict[Any, Any]) -> Alert | None:
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        doc = json.loads(d["json"])
        doc["status"] = d.get("status", "open")
        for k in ("acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "note"):
            if d.get(k):
                doc[k] = d[k]
        return Alert.model_validate(doc)

    def get_alert(self, store_id: str, alert_id: str) -> Alert | None:
        return self._alert(self.client.hgetall(keys.lp_alert(store_id, alert_id)))

    def find_alert(self, store_ids: Iterable[str], alert_id: str) -> Alert | None:
        """The alert with this id in any of `store_ids` (one pipelined EXISTS per store)."""
        stores = list(store_ids)
        pipe = self.client.pipeline(transaction=False)
        for s in stores:
            pipe.exists(keys.lp_alert(s, alert_id))
        for s, hit in zip(stores, pipe.execute(), strict=True):
            if hit:
                return self.get_alert(s, alert_id)
        return None

    def transition(self, store_id: str, alert_id: str, action: str, who: str, note: str | None = None,
                   when: datetime | None = None) -> tuple[Alert | None, bool]:
        """Acknowledge (`ack`) or resolve (`resolve`). Returns the alert after, and whether it changed."""
        if action not in ("ack", "resolve"):
            raise ValueError(f"unknown action {action!r}")
        at = (when or datetime.now(UTC)).isoformat()
        status, changed = self._transition(
            keys=[keys.lp_alert(store_id, alert_id), keys.lp_alert_counters(store_id)],
            args=[action, who, at, note or ""],
        )
        if _s(status) == "missing":
            return None, False
        return self.get_alert(store_id, alert_id), bool(int(changed))

    def _scan_store(self, store_id: str, flt: AlertFilter, cursor: tuple[int, str] | None,
                    page: int = 200) -> Iterator[Alert]:
        """The store's alerts newest first (ties: larger id first), after `cursor`, that pass `flt`."""
        key = keys.lp_alerts_by_time(store_id)
        hi: str | int = "+inf"
        if flt.end is not None:
            hi = f"({_ms(flt.end)}"
        if cursor is not None:
            hi = cursor[0] if flt.end is None else min(cursor[0], _ms(flt.end) - 1)
        lo = _ms(flt.start) if flt.start is not None else "-inf"
        offset = 0
        while True:
            rows = self.client.zrevrangebyscore(key, hi, lo, start=offset, num=page, withscores=True)
            if not rows:
                return
            offset += len(rows)
            pipe = self.client.pipeline(transaction=False)
            ids = [_s(m) for m, _ in rows]
            for i in ids:
                pipe.hgetall(keys.lp_alert(store_id, i))
            for (i, score), raw in zip(zip(ids, (int(s) for _, s in rows), strict=True), pipe.execute(),
                                       strict=True):
                if cursor is not None and score == cursor[0] and i >= cursor[1]:
                    continue
                a = self._alert(raw)
                if a is not None and flt.keep(a):
                    yield a
            if len(rows) < page:
                return

    def list_alerts(self, store_ids: Iterable[str], flt: AlertFilter, limit: int = 100,
                    cursor: str | None = None) -> tuple[list[Alert], str | None]:
        """One page of alerts of the stores, newest first, and the cursor of the next page."""
        cur = _decode_cursor(cursor) if cursor else None
        merged = heapq.merge(*(self._scan_store(s, flt, cur) for s in store_ids),
                             key=lambda a: (_ms(a.timestamp), a.alert_id), reverse=True)
        out: list[Alert] = []
        for a in merged:
            if len(out) == limit:
                last = out[-1]
                return out, _encode_cursor(_ms(last.timestamp), last.alert_id)
            out.append(a)
        return out, None

    def count_alerts(self, store_ids: Iterable[str], flt: AlertFilter) -> dict[str, Any]:
        """Totals by type, severity and status of the alerts that pass `flt`."""
        by: dict[str, dict[str, int]] = {"by_type": {}, "by_severity": {}, "by_status": {}}
        total = 0
        stores = list(store_ids)
        unfiltered = not (flt.types or flt.severities or flt.statuses or flt.start or flt.end or flt.visitor_id)
        if unfiltered:  # running counters, no scan
            for s in stores:
                for k, v in self.client.hgetall(keys.lp_alert_counters(s)).items():
                    name, n = _s(k), int(v)
                    if name == "total":
                        total += n
                    for prefix, group in (("type:", "by_type"), ("severity:", "by_severity"),
                                          ("status:", "by_status")):
                        if name.startswith(prefix) and n:
                            by[group][name[len(prefix):]] = by[group].get(name[len(prefix):], 0) + n
            return {"total": total, **by}
        for s in stores:
            for a in self._scan_store(s, flt, None, page=500):
                total += 1
                for group, k in (("by_type", a.alert_type), ("by_severity", a.severity),
                                 ("by_status", str(a.status))):
                    by[group][k] = by[group].get(k, 0) + 1
        return {"total": total, **by}

    def suppressed(self, store_id: str) -> dict[str, int]:
        raw = self.client.hgetall(keys.lp_alert_counters(store_id))
        return {_s(k)[11:]: int(v) for k, v in raw.items() if _s(k).startswith("suppressed:")}

    # ------------------------------------------------------------------ sessions

    def sessions(self, store_id: str) -> list[Session]:
        out = self.load_sessions(store_id)
        out.sort(key=lambda s: s.last_seen, reverse=True)
        return out

    def session(self, store_id: str, visitor_id: str) -> Session | None:
        raw = self.client.hget(keys.lp_sessions(store_id), visitor_id)
        return Session.model_validate_json(raw) if raw is not None else None

    # ------------------------------------------------------------------ inputs and outputs for other services

    def add_ba_result(self, store_id: str, result: BaResult, received_at: datetime | None = None) -> str:
        """Queue a behavioural-analysis result for the store's rules (durable; the rule actor applies it once)."""
        result = result.with_id()
        at = received_at or datetime.now(UTC)
        ts = _ms(at)
        self.client.eval(_ADD_ONCE, 2, keys.lp_ba_result_ids(store_id), keys.lp_ba_results(store_id),
                         result.result_id or "", ts, STREAM_MAXLEN, ts - ESCALATION_ID_TTL_MS,
                         "result_id", result.result_id or "", "json", result.model_dump_json(),
                         "received_at", at.isoformat())
        return result.result_id or ""

    def escalations(self, store_id: str, count: int = 100) -> list[Escalation]:
        rows = self.client.xrange(keys.lp_escalations(store_id), count=count)
        return [Escalation.model_validate_json(fields.get(b"json") or fields.get("json")) for _, fields in rows]

    # ------------------------------------------------------------------ rules and status

    def get_rules(self, store_id: str) -> dict[str, str] | None:
        raw = self.client.hgetall(keys.lp_rules(store_id))
        return {_s(k): _s(v) for k, v in raw.items()} or None

    def put_rules(self, store_ids: Iterable[str], text: str, version: str, source: str, by: str,
                  at: datetime | None = None) -> None:
        when = (at or datetime.now(UTC)).isoformat()
        pipe = self.client.pipeline(transaction=False)
        for s in store_ids:
            pipe.hset(keys.lp_rules(s), mapping={"yaml": text, "version": version, "source": source,
                                                 "updated_at": when, "updated_by": by})
        pipe.execute()

    def put_status(self, store_id: str, status: dict[str, Any]) -> None:
        self.client.hset(keys.lp_status(store_id),
                         mapping={k: json.dumps(v, default=str) for k, v in status.items()})

    def get_status(self, store_id: str) -> dict[str, Any]:
        return {_s(k): json.loads(v) for k, v in self.client.hgetall(keys.lp_status(store_id)).items()}
