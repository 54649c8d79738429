"""The per-store event log in Redis: idempotent appends, paged time-window queries, running counters.

Why it looks like this:
    * Idempotent by `event_id`: a camera actor restarted from a checkpoint re-sends events, and an
      HTTP client retries; `HSETNX` into the store's id -> JSON hash decides once, for good, whether
      an event is new, so retries never double count.
    * Atomic per event and one round trip per batch: one Lua script per store writes, for every new
      event, the hash entry, the stream entry, both time indexes and the counters (the indexes and
      counters with one call per key per batch, ~2x less Redis CPU than a call per event). A script runs
      without interleaving, so concurrent writers of overlapping batches cannot both accept an id,
      and no reader ever sees half an event.
    * Redis-Cluster-ready: every key a script touches carries the store's hash tag (see `keys`), so a
      multi-store batch is split into one script call per store, all pipelined in one round trip.
    * Stable paging: the indexes are sorted sets scored by event time; Redis orders equal scores by
      member bytes, so (ts_ms, event_id) is a total order and a cursor holding the last returned pair
      is a position that appends before or after it cannot shift (an offset would).

Example:
    >>> log = EventLog(redis.Redis.from_url(url))  # doctest: +SKIP
    >>> log.append([event, event]).duplicates == [str(event.event_id)]  # doctest: +SKIP
    True
    >>> page, cursor = log.query("S1", types={EventType.ENTRY}, limit=50)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict

import redis

from workloads.events import EventType, VisitorEvent
from workloads.state import keys

__all__ = ["AppendResult", "EncodedBatch", "EventLog", "Order", "StoreCounters"]

Order = Literal["newest", "oldest"]

#: Most events one query page may return.
MAX_PAGE = 10_000

# KEYS: 1 id->json hash, 2 stream, 3 time index, 4 counters hash, 5.. per-type time indexes.
# ARGV: 7 per event: event_id, KEYS index of its type index, ts_ms, type, camera_id, is_staff 0/1, json.
# Returns one '1' (accepted) or '0' (duplicate) per event, in order.
_APPEND_LUA = """
local expected = {'hash', 'stream', 'zset', 'hash'}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  local want = expected[i] or 'zset'
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. t .. ', expected a ' .. want)
  end
end
-- Per event only what decides and orders it (HSETNX, XADD); the index and counter updates of the
-- accepted events are gathered and written once per key at the end (one call per key instead of one
-- per event: the script runs without interleaving, so nobody sees the difference).
local flags, by_time, by_type, counts = {}, {}, {}, {}
local function count(name)
  counts[name] = (counts[name] or 0) + 1
end
for i = 1, #ARGV, 7 do
  local id, ts, etype, json = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 6]
  if redis.call('HSETNX', KEYS[1], id, json) == 1 then
    redis.call('XADD', KEYS[2], '*', 'event_id', id, 'json', json)
    by_time[#by_time + 1] = ts
    by_time[#by_time + 1] = id
    local k = tonumber(ARGV[i + 1])
    local t = by_type[k]
    if not t then
      t = {}
      by_type[k] = t
    end
    t[#t + 1] = ts
    t[#t + 1] = id
    count('total')
    count('type:' .. etype)
    count('cam:' .. etype .. ':' .. ARGV[i + 4])
    if ARGV[i + 5] == '1' then
      count('staff')
      count('staff_type:' .. etype)
    else
      count('non_staff')
    end
    flags[#flags + 1] = '1'
  else
    flags[#flags + 1] = '0'
  end
end
local function zadd(key, pairs_)  -- in slices: unpack() of a very long list overflows Lua's stack
  for j = 1, #pairs_, 1000 do
    redis.call('ZADD', key, unpack(pairs_, j, math.min(j + 999, #pairs_)))
  end
end
zadd(KEYS[3], by_time)
for k, t in pairs(by_type) do
  zadd(KEYS[k], t)
end
for name, n in pairs(counts) do
  redis.call('HINCRBY', KEYS[4], name, n)
end
return table.concat(flags)
"""

# KEYS: 1 id->json hash, 2.. time indexes to merge (the all-events one, or one per wanted type).
# ARGV: order 'asc'|'desc', limit, start_ms|'', end_ms|'' (exclusive), cursor ts_ms|'', cursor id|''.
# Returns {more 0/1, id, score, json, id, score, json, ...}.
_QUERY_LUA = """
local asc = ARGV[1] == 'asc'
local limit = tonumber(ARGV[2])
local start_ms, end_ms, cur_ts, cur_id = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local start_n, end_n = tonumber(start_ms), tonumber(end_ms)

-- Byte order, as Redis orders equal-score members (Lua's '<' on strings follows the locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Number of members ordered strictly before (cur_ts, cur_id), and at or before it.
local function position(key)
  local r = redis.call('ZRANK', key, cur_id)
  if r then return r, r + 1 end
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. cur_ts)
  local hi = redis.call('ZCOUNT', key, '-inf', cur_ts)
  while lo < hi do  -- binary search among the members that share the cursor's score
    local mid = math.floor((lo + hi) / 2)
    if before(cur_id, redis.call('ZRANGE', key, mid, mid)[1]) then hi = mid else lo = mid + 1 end
  end
  return lo, lo
end

local cands = {}
for k = 2, #KEYS do
  local key = KEYS[k]
  if asc then
    local s = 0
    if start_ms ~= '' then s = redis.call('ZCOUNT', key, '-inf', '(' .. start_ms) end
    if cur_id ~= '' then
      local _, le = position(key)
      if le > s then s = le end
    end
    local rows = redis.call('ZRANGE', key, s, s + limit, 'WITHSCORES')
    for i = 1, #rows, 2 do
      local sc = tonumber(rows[i + 1])
      if end_n and sc >= end_n then break end
      cands[#cands + 1] = {rows[i], sc, rows[i + 1]}
    end
  else
    local e = redis.call('ZCARD', key) - 1
    if end_ms ~= '' then e = math.min(e, redis.call('ZCOUNT', key, '-inf', '(' .. end_ms) - 1) end
    if cur_id ~= '' then
      local lt = position(key)
      e = math.min(e, lt - 1)
    end
    if e >= 0 then
      local rows = redis.call('ZRANGE', key, math.max(0, e - limit), e, 'WITHSCORES')
      for i = #rows - 1, 1, -2 do
        local sc = tonumber(rows[i + 1])
        if start_n and sc < start_n then break end
        cands[#cands + 1] = {rows[i], sc, rows[i + 1]}
      end
    end
  end
end

if #KEYS > 2 then
  table.sort(cands, function(a, b)
    if a[2] ~= b[2] then
      if asc then return a[2] < b[2] else return a[2] > b[2] end
    end
    if asc then return before(a[1], b[1]) else return before(b[1], a[1]) end
  end)
end

local n = math.min(limit, #cands)
local out = {#cands > limit and 1 or 0}
if n == 0 then return out end
local ids = {}
for i = 1, n do ids[i] = cands[i][1] end
local docs = redis.call('HMGET', KEYS[1], unpack(ids))
for i = 1, n do
  out[#out + 1] = ids[i]
  out[#out + 1] = cands[i][3]
  out[#out + 1] = docs[i]
end
return out
"""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Event ids of one `append`, in input order.

    `duplicates` holds ids already in the log, or repeated earlier in the same batch. After a
    retried call whose first attempt reached Redis but whose reply was lost, the events of that
    attempt show up here: they are stored exactly once either way.
    """

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


#: One event as the append script takes it: event_id, event_type, ts_ms, camera_id, is_staff, its JSON.
EncodedRow = tuple[str, str, int, str, bool, str]


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Validated events of one store, encoded once, where they were validated.

    Why: the HTTP ingest validates in its API replica and the store actor writes; sending pydantic
    events between them costs a pickle of every model (~50 ms per 500), and sending JSON costs a second
    validation in the actor. Plain tuples of str/int pickle in ~0.1 ms and need neither. Build it only
    with `of` (from `VisitorEvent`s): `EventLog.append` trusts its rows.
    """

    store_id: str
    rows: list[EncodedRow]

    @classmethod
    def of(cls, store_id: str, events: Iterable[VisitorEvent]) -> EncodedBatch:
        rows: list[EncodedRow] = []
        for e in events:
            if e.store_id != store_id:
                raise ValueError(f"event {e.event_id} of store {e.store_id} in a batch of store {store_id}")
            rows.append((str(e.event_id), e.event_type.value, e.ts_ms, e.camera_id, e.is_staff, e.model_dump_json()))
        return cls(store_id, rows)


def _outcomes(flagged: Iterable[tuple[str, str]]) -> AppendResult:
    """(event id, the script's '1' accepted / '0' duplicate) pairs, in the caller's order, as a result."""
    result = AppendResult()
    for event_id, flag in flagged:
        (result.accepted if flag == "1" else result.duplicates).append(event_id)
    return result


class StoreCounters(TypedDict):
    """Running counts of accepted (unique) events of one store."""

    total: int
    by_type: dict[str, int]
    by_camera: dict[str, dict[str, int]]  #: camera id -> event type -> count
    staff: int
    non_staff: int
    staff_by_type: dict[str, int]


def _s(value: bytes | str) -> str:
    """Works with clients created with or without `decode_responses`."""
    return value.decode() if isinstance(value, bytes) else value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _bound_ms(ts: datetime, name: str) -> int:
    """A window bound in index units: ms since the epoch, rounded up.

    Event scores are whole ms, so for an event score s and a bound b, `s >= ceil(b)` iff `s >= b`
    and `s < ceil(b)` iff `s < b`: rounding up keeps [start, end) exact at ms resolution.
    """
    if ts.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return -((_EPOCH - ts) // _MS)  # exact integer ceil, no float rounding


def _encode_cursor(order: Order, ts_ms: int, event_id: str) -> str:
    raw = f"v1|{order}|{ts_ms}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, order: Order) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, cur_order, ts, event_id = raw.split("|")
        ts_ms = int(ts)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"invalid cursor {cursor!r}") from None
    if version != "v1" or not event_id:
        raise ValueError(f"invalid cursor {cursor!r}")
    if cur_order != order:
        raise ValueError(f"cursor was issued for order={cur_order!r}, not {order!r}")
    return ts_ms, event_id


class EventLog:
    """The store event log over one Redis client (thread-safe: every call uses its own pipeline).

    Args:
        client: A `redis.Redis`, with or without `decode_responses`.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._append_script = client.register_script(_APPEND_LUA)
        self._query_script = client.register_script(_QUERY_LUA)

    # ------------------------------------------------------------------ writes

    def append(self, events: Sequence[VisitorEvent] | EncodedBatch) -> AppendResult:
        """Store the events not stored yet; one round trip for the whole batch, whatever its stores.

        Each event is written entirely or not at all: its JSON, stream entry, both time indexes and
        its counters. Events of several stores are split into one script call per store (keys of
        different hash tags cannot meet in one script on Redis Cluster), all pipelined together.
        If one store's call fails, the others' may have been applied: retry the whole batch, which
        is safe because the append is idempotent.
        """
        if isinstance(events, EncodedBatch):
            flags = self._run([events])[0] if events.rows else ""
            return _outcomes(zip((row[0] for row in events.rows), flags, strict=True))
        if not events:
            return AppendResult()
        by_store: dict[str, list[VisitorEvent]] = {}
        for e in events:
            by_store.setdefault(e.store_id, []).append(e)
        batches = [EncodedBatch.of(store_id, batch) for store_id, batch in by_store.items()]
        flags_of = {store_id: iter(f) for store_id, f in zip(by_store, self._run(batches), strict=True)}
        return _outcomes((str(e.event_id), next(flags_of[e.store_id])) for e in events)

    def _run(self, batches: Sequence[EncodedBatch]) -> list[str]:
        """One script call per batch, pipelined; each returns one '1' (accepted) or '0' per row."""
        calls = [self._append_call(b) for b in batches]

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            # Registry first: a store listed with no events yet is harmless, the reverse is not.
            pipe.sadd(keys.stores(), *{b.store_id for b in batches})
            for call_keys, args in calls:
                pipe.evalsha(self._append_script.sha, len(call_keys), *call_keys, *args)
            return pipe.execute()[1:]

        try:
            replies = run()
        except redis.exceptions.NoScriptError:
            # First use on this server (or after SCRIPT FLUSH / a restart): load and redo the whole
            # batch, which is safe because the append is idempotent.
            self.client.script_load(_APPEND_LUA)
            replies = run()
        return [_s(reply) for reply in replies]

    @staticmethod
    def _append_call(batch: EncodedBatch) -> tuple[list[str], list[str | int]]:
        store_id = batch.store_id
        call_keys = [
            keys.event_by_id(store_id),
            keys.events_stream(store_id),
            keys.events_by_time(store_id),
            keys.event_counters(store_id),
        ]
        type_key_index: dict[str, int] = {}
        args: list[str | int] = []
        for event_id, etype, ts_ms, camera_id, is_staff, doc in batch.rows:
            if etype not in type_key_index:
                call_keys.append(keys.events_by_type_time(store_id, etype))
                type_key_index[etype] = len(call_keys)  # Lua KEYS are 1-based
            args += [event_id, type_key_index[etype], ts_ms, etype, camera_id, 1 if is_staff else 0, doc]
        return call_keys, args

    # ------------------------------------------------------------------ reads

    def query(
        self,
        store_id: str,
        types: Iterable[EventType | str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        order: Order = "newest",
    ) -> tuple[list[VisitorEvent], str | None]:
        """One page of a store's events in the time window [start, end), at millisecond resolution.

        Args:
            store_id: The store.
            types: Event types to keep; None keeps all, an empty set none.
            start: Inclusive lower bound (time-zone aware).
            end: Exclusive upper bound (time-zone aware).
            limit: Page size, 1..10000.
            cursor: `next_cursor` of the previous page of the same query; None for the first page.
            order: "newest" first (default, what dashboards and API clients want) or "oldest" first
                (replay, rebuilding an actor's state).

        Returns:
            The page and the cursor of the next one (None when this page is the last).
            Paging is exact under concurrent appends: every event stored before the first page that
            lies in the window is returned exactly once; events appended meanwhile appear at most once.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
        if order not in ("newest", "oldest"):
            raise ValueError(f"order must be 'newest' or 'oldest', got {order!r}")
        start_ms = _bound_ms(start, "start") if start is not None else None
        end_ms = _bound_ms(end, "end") if end is not None else None
        if start_ms is not None and end_ms is not None and start_ms >= end_ms:
            return [], None
        if types is None:
            index_keys = [keys.events_by_time(store_id)]
        else:
            if isinstance(types, str):  # one type given bare, not as a set of one
                types = [types]
            wanted = sorted({EventType(t).value for t in types})
            if not wanted:
                return [], None
            index_keys = [keys.events_by_type_time(store_id, t) for t in wanted]
        cur_ts, cur_id = _decode_cursor(cursor, order) if cursor else (None, "")

        reply = self._query_script(
            keys=[keys.event_by_id(store_id), *index_keys],
            args=[
                "asc" if order == "oldest" else "desc",
                limit,
                "" if start_ms is None else start_ms,
                "" if end_ms is None else end_ms,
                "" if cur_ts is None else cur_ts,
                cur_id,
            ],
        )
        more = int(reply[0]) == 1
        events: list[VisitorEvent] = []
        last: tuple[int, str] | None = None
        for i in range(1, len(reply), 3):
            event_id, score, doc = _s(reply[i]), int(float(_s(reply[i + 1]))), reply[i + 2]
            last = (score, event_id)
            if doc is not None:  # never absent: the hash entry is written before the indexes
                events.append(VisitorEvent.model_validate_json(doc))
        next_cursor = _encode_cursor(order, *last) if more and last is not None else None
        return events, next_cursor

    def get(self, store_id: str, event_id: str) -> VisitorEvent | None:
        """One event by id, or None."""
        doc = self.client.hget(keys.event_by_id(store_id), event_id)
        return VisitorEvent.model_validate_json(doc) if doc is not None else None

    def last_event(self, store_id: str) -> VisitorEvent | None:
        """The store's latest event by event time (not by arrival), or None."""
        page, _ = self.query(store_id, limit=1, order="newest")
        return page[0] if page else None

    def count(self, store_id: str) -> int:
        """Number of unique events stored for the store."""
        return int(self.client.hlen(keys.event_by_id(store_id)))

    def counters(self, store_id: str) -> StoreCounters:
        """Running counters of the store's accepted events, as of one atomic read."""
        raw = self.client.hgetall(keys.event_counters(store_id))
        out: StoreCounters = {
            "total": 0, "by_type": {}, "by_camera": {}, "staff": 0, "non_staff": 0, "staff_by_type": {},
        }
        for k, v in raw.items():
            name, n = _s(k), int(v)
            if name in ("total", "staff", "non_staff"):
                out[name] = n  # type: ignore[literal-required]
            elif name.startswith("type:"):
                out["by_type"][name[5:]] = n
            elif name.startswith("staff_type:"):
                out["staff_by_type"][name[11:]] = n
            elif name.startswith("cam:"):
                _, etype, camera_id = name.split(":", 2)  # camera ids may contain ':', types do not
                out["by_camera"].setdefault(camera_id, {})[etype] = n
        return out

    def stores(self) -> list[str]:
        """Ids of the stores that have events, sorted."""
        return sorted(_s(s) for s in self.client.smembers(keys.stores()))
