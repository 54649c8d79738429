"""The loop a store's rule actor runs (no Ray inside): tail the store's event stream and its
behavioural-analysis inputs exactly once, tick the clock for loitering and expiry, hot-reload rules.

Exactly once: each step reads a batch after the committed cursor, derives its effects in memory
(`StoreRules`), and writes effects and cursor in one MULTI/EXEC (`LpStore.queue_effects`). A crash
before EXEC loses nothing (the batch is read again), a crash after it repeats nothing. A restarted
runner rebuilds its sessions and clock from Redis. Tick effects (loiter alerts, expiry) carry no
cursor; their alert ids derive from the visit, so a tick repeated after a crash cannot duplicate.

Rules: the effective rules live in Redis (`sf:{S}:lp:rules`); the newest of the file and the Redis copy
wins at start. Every tick the runner checks both: a changed file (when readable here) or a new version
written by the API (`PUT /api/v1/lp/rules`) is loaded; an invalid one is reported in the status and the
old rules keep running.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from workloads.lp.alert_config import AlertConfig
from workloads.lp.clock import StoreClock
from workloads.lp.models import BaResult
from workloads.lp.processor import Effects, StoreRules
from workloads.lp.rules import RulesError, RuleSet, load_rules
from workloads.lp.store import CREATED, SUPPRESSED, LpStore
from workloads.state import keys
from workloads.state.checkpoints import CheckpointStore
from workloads.state.stream_consumer import StreamConsumer

log = logging.getLogger("storefleet.lp")

CONSUMER = "lp-rules"
BA_CONSUMER = "lp-ba"


def text_version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RulesSource:
    """The rules file as the fleet's driver read it; `path` is watched where the runner can read it."""

    text: str
    path: str | None = None
    mtime: float = 0.0

    @classmethod
    def from_file(cls, path: str | Path) -> RulesSource:
        p = Path(path)
        return cls(p.read_text(), str(p.resolve()), p.stat().st_mtime)


@dataclass
class _BaBatch:
    results: list[tuple[BaResult, datetime]]
    last_id: str | None

    def __bool__(self) -> bool:
        return self.last_id is not None


class _BaStream:
    """Cursor over the store's behavioural-analysis input stream (same exactly-once scheme as events)."""

    def __init__(self, client: redis.Redis, store_id: str) -> None:
        self.client = client
        self.stream = keys.lp_ba_results(store_id)
        self.cursor_key = keys.consumer_cursor(store_id, BA_CONSUMER)

    def read(self, count: int) -> _BaBatch:
        pos = self.client.get(self.cursor_key)
        pos = (pos.decode() if isinstance(pos, bytes) else pos) or "0-0"
        res = self.client.xread({self.stream: pos}, count=count)
        if not res:
            return _BaBatch([], None)
        entries = res[0][1]
        out = []
        for _, f in entries:
            raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in f.items()}
            at = raw["received_at"].decode() if isinstance(raw["received_at"], bytes) else raw["received_at"]
            out.append((BaResult.model_validate_json(raw["json"]), datetime.fromisoformat(at)))
        last = entries[-1][0]
        return _BaBatch(out, last.decode() if isinstance(last, bytes) else last)

    def commit(self, pipe: redis.client.Pipeline, batch: _BaBatch) -> None:
        if batch.last_id is not None:
            pipe.set(self.cursor_key, batch.last_id)


@dataclass
class RunnerStats:
    events: int = 0
    ba_results: int = 0
    evaluations: int = 0
    alerts_created: int = 0
    alerts_suppressed: int = 0
    escalations: int = 0
    ticks: int = 0
    errors: int = 0
    last_error: str | None = None
    created_by: dict[tuple[str, str], int] = field(default_factory=dict)  #: (type, severity) -> n


StepHook = Callable[[Effects, list[int]], None]


class RuleRunner:
    """One store's rules over Redis. Drive it with `run(stop_event)` in a thread, or `step()` in tests.

    Args:
        client: Redis client.
        store_id: The store.
        zones: Zone id -> zone type.
        source: The rules file as read by whoever started the runner.
        alert_config: Time-window dedup per alert type.
        variables_override: RULES_VARIABLES (JSON) to apply to every rules version.
        camera_slack_s: How far a ZONE_EXIT can trail a camera's feed time (see `StoreClock`).
        wall: The wall clock (tests pass their own).
        on_step: Called with each committed step's effects and the script replies of its alerts.
        status_extra: More fields for the status (e.g. the delivery worker's counts).
    """

    def __init__(self, client: redis.Redis, store_id: str, zones: dict[str, str], source: RulesSource,
                 alert_config: AlertConfig, variables_override: str | None = None, *, camera_slack_s: float = 2.0,
                 wall: Callable[[], float] = time.time, batch: int = 500, on_step: StepHook | None = None,
                 status_extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.client, self.store_id, self.source = client, store_id, source
        self.alert_config, self.variables_override, self.batch = alert_config, variables_override, batch
        self.on_step, self.status_extra = on_step, status_extra
        self.store = LpStore(client)
        self.health = CheckpointStore(client)
        self.events = StreamConsumer(client, store_id, CONSUMER)
        self.ba = _BaStream(client, store_id)
        self.stats = RunnerStats()
        self.rules_error: str | None = None
        self.rules_source = ""
        self.rules_loaded_at = ""
        self._redis_version: str | None = None
        self._file_mtime = source.mtime
        ruleset = self._initial_rules()
        self.clock = StoreClock(wall=wall, slack_s=camera_slack_s)
        self.rules = StoreRules(store_id, zones, ruleset, self.clock)
        self.rules.load(self.store.load_sessions(store_id))
        self._next_tick = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ rules

    def _load(self, text: str, where: str) -> RuleSet:
        return load_rules(text, self.variables_override, where)

    def _read_file(self) -> tuple[str, float]:
        p = self.source.path
        if p and os.path.isfile(p):
            try:
                return Path(p).read_text(), os.stat(p).st_mtime
            except OSError:
                pass
        return self.source.text, self.source.mtime

    def _initial_rules(self) -> RuleSet:
        stored = self.store.get_rules(self.store_id)
        text, mtime = self._read_file()
        self._file_mtime = mtime
        if stored and stored.get("yaml"):
            stored_at = datetime.fromisoformat(stored["updated_at"]).timestamp() if stored.get("updated_at") else 0
            if stored_at >= mtime:
                try:
                    rs = self._load(stored["yaml"], f"{self.store_id} rules in Redis")
                    self._applied(rs, stored.get("source", "redis"), stored.get("version"))
                    return rs
                except RulesError as e:
                    log.error("%s: stored rules are invalid, using the file: %s", self.store_id, e)
        rs = self._load(text, self.source.path or "rules")
        version = text_version(text)
        self.store.put_rules([self.store_id], text, version, f"file:{self.source.path or '(given)'}", "rule-actor")
        self._applied(rs, f"file:{self.source.path or '(given)'}", version)
        return rs

    def _applied(self, rs: RuleSet, source: str, redis_version: str | None) -> None:
        self.rules_source, self._redis_version = source, redis_version
        self.rules_loaded_at = datetime.now(UTC).isoformat()
        self.rules_error = None
        log.info("%s: rules %s loaded from %s (%d rules)", self.store_id, rs.version, source, len(rs.rules))

    def check_reload(self) -> None:
        """Apply a changed rules file or a new Redis version; keep the old rules if the new ones are invalid."""
        p = self.source.path
        if p and os.path.isfile(p):
            try:
                mtime = os.stat(p).st_mtime
            except OSError:
                mtime = self._file_mtime
            if mtime != self._file_mtime:
                self._file_mtime = mtime
                text = Path(p).read_text()
                try:
                    rs = self._load(text, p)
                except RulesError as e:
                    self.rules_error = str(e)
                    log.error("%s: rules file changed but is invalid; keeping version %s: %s",
                              self.store_id, self.rules.ruleset.version, e)
                else:
                    version = text_version(text)
                    self.store.put_rules([self.store_id], text, version, f"file:{p}", "rule-actor")
                    self.rules.set_rules(rs)
                    self._applied(rs, f"file:{p}", version)
                    return
        raw = self.client.hget(keys.lp_rules(self.store_id), "version")
        version = raw.decode() if isinstance(raw, bytes) else raw
        if version and version != self._redis_version:
            stored = self.store.get_rules(self.store_id) or {}
            self._redis_version = version
            try:
                rs = self._load(stored.get("yaml", ""), f"{self.store_id} rules in Redis")
            except RulesError as e:
                self.rules_error = str(e)
                log.error("%s: new rules in Redis are invalid; keeping version %s: %s",
                          self.store_id, self.rules.ruleset.version, e)
            else:
                self.rules.set_rules(rs)
                self._applied(rs, stored.get("source", "redis"), version)

    # ------------------------------------------------------------------ the loop

    def _commit(self, fx: Effects, cursors: list[tuple[Any, Any]]) -> None:
        if not fx and not cursors:
            return
        pipe = self.client.pipeline(transaction=True)
        positions = self.store.queue_effects(pipe, self.store_id, fx, self.alert_config)
        for consumer, batch in cursors:
            consumer.commit(pipe, batch)
        try:
            replies = pipe.execute()
        except redis.RedisError:
            self.rules.load(self.store.load_sessions(self.store_id))  # memory may be ahead of Redis
            raise
        codes = [int(replies[i]) for i in positions]
        st = self.stats
        st.evaluations += fx.evaluations
        st.escalations += len(fx.escalations)
        for alert, code in zip(fx.alerts, codes, strict=True):
            if code == CREATED:
                st.alerts_created += 1
                k = (alert.alert_type, alert.severity)
                st.created_by[k] = st.created_by.get(k, 0) + 1
            elif code == SUPPRESSED:
                st.alerts_suppressed += 1
        if self.on_step is not None:
            self.on_step(fx, codes)

    def _feed_clocks(self) -> None:
        for cam, h in self.health.all_health(self.store_id).items():
            if h.last_frame_ts is not None:
                self.clock.feed(cam, h.last_frame_ts.timestamp())

    def tick(self) -> None:
        self._feed_clocks()
        self._commit(self.rules.tick(), [])
        self.check_reload()
        self.stats.ticks += 1
        self.write_status()

    def step(self, block_ms: int | None = None) -> int:
        """Apply one batch of events and of BA results, and tick when due. Returns inputs applied."""
        with self._lock:
            interval = self.rules.ruleset.settings.tick_interval_seconds
            now = time.monotonic()
            if block_ms is None:
                block_ms = max(1, int((self._next_tick - now) * 1000)) if self._next_tick > now else 1
            n = 0
            batch = self.events.read(self.batch, block_ms=block_ms)
            if batch:
                self._commit(self.rules.apply_events(batch.events), [(self.events, batch)])
                n += len(batch.events)
                self.stats.events += len(batch.events)
            ba = self.ba.read(self.batch)
            if ba:
                fx = Effects()
                for result, received_at in ba.results:
                    fx.merge(self.rules.apply_ba_result(result, received_at))
                self._commit(fx, [(self.ba, ba)])
                n += len(ba.results)
                self.stats.ba_results += len(ba.results)
            if time.monotonic() >= self._next_tick:
                self.tick()
                self._next_tick = time.monotonic() + interval
            return n

    def run(self, stop: threading.Event) -> None:
        """Step until `stop` is set; failures are logged and retried (nothing is lost: inputs wait behind cursors)."""
        while not stop.is_set():
            try:
                self.step()
            except Exception as e:  # the loop must outlive any one failure; inputs stay queued
                self.stats.errors += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                log.warning("%s: rule step failed, retrying in 1 s: %s", self.store_id, e,
                            exc_info=not isinstance(e, redis.RedisError))
                stop.wait(1.0)

    # ------------------------------------------------------------------ status

    def lag(self, cap: int = 100) -> int:
        """Events not applied yet (counted up to `cap`); one cheap call when there are none."""
        pos = self.events.position()
        last = self.client.xrevrange(self.events.stream, count=1)
        if not last or (last[0][0].decode() if isinstance(last[0][0], bytes) else last[0][0]) == pos:
            return 0
        return len(self.client.xrange(self.events.stream, f"({pos}" if pos != "0-0" else "-", "+", count=cap))

    def status(self) -> dict[str, Any]:
        s = self.stats
        sessions = list(self.rules.sessions.values())  # one C-level copy: safe beside the loop's thread
        open_visits = sum(len(x.open_visits) for x in sessions)
        return {
            "store_id": self.store_id,
            "rules_version": self.rules.ruleset.version,
            "rules_source": self.rules_source,
            "rules_loaded_at": self.rules_loaded_at,
            "rules_error": self.rules_error,
            "rules": len([r for r in self.rules.ruleset.rules if r.enabled]),
            "sessions": len(sessions),
            "open_visits": open_visits,
            "event_lag": self.lag(),
            "events_applied": s.events,
            "ba_results_applied": s.ba_results,
            "evaluations": s.evaluations,
            "alerts_created": s.alerts_created,
            "alerts_suppressed": s.alerts_suppressed,
            "escalations": s.escalations,
            "ticks": s.ticks,
            "errors": s.errors,
            "last_error": s.last_error,
            "heartbeat_at": datetime.now(UTC).isoformat(),
            **(self.status_extra() if self.status_extra else {}),
        }

    def write_status(self) -> None:
        self.store.put_status(self.store_id, self.status())
