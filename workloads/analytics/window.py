"""What a store's aggregates hold for one time window: summed counters and visitor-set algebra.

A window is answered from its hour buckets only (one HGETALL per bucket that holds data, and one
Lua script for the visitor sets), never from raw events. The script unions each stage's hourly
sets server-side, removes staff, and returns only counts:
    * reached[stage]: visitors who reached that stage in the window;
    * funnel[stage]: visitors who reached it *and every earlier stage* (a strict funnel);
    * purchasers: visitors who entered in the window and were matched to one of its transactions.

Example:
    >>> totals = WindowReader(client).totals("S1", window)  # doctest: +SKIP
    >>> totals.reached["entry"], totals.purchasers  # doctest: +SKIP
    (145, 55)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis

from workloads.analytics.buckets import Window
from workloads.analytics.stages import Stage
from workloads.state import keys

#: Funnel stages in order; "purchased" comes from the per-bucket purchase hashes.
STAGES = ("entry", "zone", "billing", "purchased")

# KEYS: 1 staff set, 2..5 scratch sets (one per stage), 6 scratch (purchasers), then the entry,
# zone and billing visitor sets and the purchase hashes of the window's buckets.
# ARGV: how many keys of each of those four groups follow.
# Returns: reached x4, funnel x4, purchasers, matched transactions.
_WINDOW_LUA = """
local staff, conv = KEYS[1], KEYS[6]
local tmp = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local n = {tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
local pos = 7
local CHUNK = 500
local function union(dest, first, count)
  redis.call('DEL', dest)
  local i = 0
  while i < count do
    local ks = {dest}
    for j = i, math.min(i + CHUNK, count) - 1 do ks[#ks + 1] = KEYS[first + j] end
    redis.call('SUNIONSTORE', dest, unpack(ks))
    i = i + CHUNK
  end
end
for s = 1, 3 do
  union(tmp[s], pos, n[s])
  pos = pos + n[s]
end
redis.call('DEL', tmp[4])
local matched = 0
for i = 0, n[4] - 1 do
  local vals = redis.call('HVALS', KEYS[pos + i])
  matched = matched + #vals
  for j = 1, #vals, CHUNK do
    local chunk = {}
    for k = j, math.min(j + CHUNK - 1, #vals) do chunk[#chunk + 1] = vals[k] end
    redis.call('SADD', tmp[4], unpack(chunk))
  end
end
local out = {}
for s = 1, 4 do
  out[s] = redis.call('SDIFFSTORE', tmp[s], tmp[s], staff)
end
out[9] = redis.call('SINTERSTORE', conv, tmp[1], tmp[4])
out[5] = out[1]
for s = 2, 4 do
  out[s + 4] = redis.call('SINTERSTORE', tmp[s], tmp[s - 1], tmp[s])
end
out[10] = matched
redis.call('DEL', tmp[1], tmp[2], tmp[3], tmp[4], conv)
return out
"""


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass
class WindowTotals:
    """A store's aggregates over one window."""

    store_id: str
    window: Window
    counts: Counter[str] = field(default_factory=Counter)  #: counters summed over the window's buckets
    per_bucket: dict[int, Counter[str]] = field(default_factory=dict)  #: bucket start -> its counters
    reached: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    funnel: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    purchasers: int = 0  #: visitors who entered in the window and bought in it
    transactions: int = 0  #: POS transactions in the window
    matched_transactions: int = 0

    @property
    def unique_visitors(self) -> int:
        return self.reached["entry"]


class WindowReader:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(_WINDOW_LUA)

    def buckets(self, store_id: str, window: Window) -> list[int]:
        """Starts of the window's buckets that hold data."""
        raw = self.client.zrangebyscore(keys.analytics_buckets(store_id), window.start, f"({window.end}")
        return [int(_s(b)) for b in raw]

    def totals(self, store_id: str, window: Window) -> WindowTotals:
        out = WindowTotals(store_id, window)
        buckets = self.buckets(store_id, window)
        out.transactions = int(self.client.zcount(keys.pos_by_time(store_id), window.start * 1000,
                                                  f"({window.end * 1000}"))
        if not buckets:
            return out
        pipe = self.client.pipeline(transaction=False)
        for b in buckets:
            pipe.hgetall(keys.analytics_counts(store_id, b))
        for b, raw in zip(buckets, pipe.execute(), strict=True):
            c = Counter({_s(k): int(v) for k, v in raw.items()})
            out.per_bucket[b] = c
            out.counts.update(c)
        groups = [
            [keys.analytics_visitors(store_id, b, Stage.ENTRY.value) for b in buckets],
            [keys.analytics_visitors(store_id, b, Stage.ZONE.value) for b in buckets],
            [keys.analytics_visitors(store_id, b, Stage.BILLING.value) for b in buckets],
            [keys.analytics_purchases(store_id, b) for b in buckets],
        ]
        scratch = [keys.analytics_scratch(store_id, name) for name in (*STAGES, "conv")]
        reply = self._script(
            keys=[keys.analytics_staff(store_id), *scratch, *(k for g in groups for k in g)],
            args=[len(g) for g in groups],
        )
        values = [int(v) for v in reply]
        out.reached = dict(zip(STAGES, values[0:4], strict=True))
        out.funnel = dict(zip(STAGES, values[4:8], strict=True))
        out.purchasers, out.matched_transactions = values[8], values[9]
        return out
