"""Point-of-sale transactions and their match to visitors: who bought.

Rule: a non-staff visitor seen in a billing zone (BILLING_QUEUE or CHECKOUT) during the
`purchase_window_s` (5 min) before a transaction counts as purchased. Each transaction matches at
most one visitor: among the candidates, someone standing in a CHECKOUT zone at the moment of the
transaction (a presence that covers it) comes first, since that is who pays; otherwise, and among
several at the till, the one whose billing presence ended closest to the transaction time (the payer
leaves the till right after paying). Ties go to whoever entered billing first (first in line), then
to the smaller visitor id, so the answer never depends on order. Measured on the synthetic scenes
(docs/accuracy.md): "ended closest" alone often picked the next customer, whose queue presence ends
as they step up to the till at the same moment the payer's ends.

Arrival order does not matter either (POS before or after the camera events): a match is a pure
function of the stored transaction and the stored billing presences around it, and it is computed
again whenever either side changes. A new transaction is matched when it is stored (it stays in a
pending set until its match is written); the aggregator records a dirty time range for every batch
with billing presences (and for staff flagged for the first time); `rematch_dirty` recomputes the
transactions in those ranges and only then clears them, so a crash in between just redoes an
idempotent computation. A visitor may match several transactions (paying twice), which
never double counts: conversion counts visitors.

Idempotent by `transaction_id`: a repeated id is a duplicate, the first version is kept.

Example:
    >>> best_visitor(1_000_000, [("a", 900_000, 950_000), ("b", 990_000, 995_000)], set(), 300_000)
    'b'
    >>> best_visitor(1_000_000, [("a", 980_000, 1_001_000, True), ("b", 990_000, 1_000_000)], set(), 300_000)
    'a'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

import redis
from pydantic import BaseModel, ConfigDict, Field

from workloads.analytics.buckets import bucket_of_ms
from workloads.analytics.stages import MAX_PRESENCE_MS
from workloads.events import UtcDatetime
from workloads.state import keys

#: Transactions matched per Redis round trip when a dirty range holds many.
_CHUNK = 2000


class Transaction(BaseModel):
    """One POS transaction of the store named in the path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: str = Field(
        min_length=1, max_length=128, description="Unique per store; re-sending the same id is a no-op (duplicate)."
    )
    timestamp: UtcDatetime = Field(description="When the sale was rung up, ISO-8601 with a zone.")
    amount: float | None = Field(None, ge=0, description="Total value, in the store's currency.")
    items: int | None = Field(None, ge=0, description="Number of items sold.")

    @property
    def ts_ms(self) -> int:
        return int(self.timestamp.timestamp() * 1000)


#: visitor_id, start_ms, end_ms of a billing-zone presence, then whether the zone is a CHECKOUT (the till;
#: absent means no, as in presences stored before the till rule).
Presence = tuple[str, int, int] | tuple[str, int, int, bool]


def best_visitor(ts_ms: int, presences: Iterable[Presence], staff: set[str], window_ms: int) -> str | None:
    """The visitor a transaction at `ts_ms` matches (see the module rule), or None."""
    best: tuple[bool, int, int, str] | None = None
    for visitor, start, end, *till in presences:
        if visitor in staff or start > ts_ms or end < ts_ms - window_ms:
            continue
        paying = bool(till and till[0]) and end >= ts_ms
        key = (not paying, abs(ts_ms - end), start, visitor)
        if best is None or key < best:
            best = key
    return best[3] if best is not None else None


TxStatus = Literal["accepted", "duplicate"]


@dataclass(frozen=True)
class Recorded:
    transaction_id: str
    status: TxStatus
    visitor_id: str | None  #: matched visitor after this call's re-match


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


class PosLedger:
    """A store's transactions and their matches in Redis. Not thread-safe: callers serialise
    `record` and `rematch_dirty` (the store actor holds one lock for all analytics writes)."""

    def __init__(self, client: redis.Redis, store_id: str, tz: ZoneInfo, purchase_window_s: float) -> None:
        self.client, self.store_id, self.tz = client, store_id, tz
        self.window_ms = int(purchase_window_s * 1000)

    def record(self, transactions: Sequence[Transaction]) -> list[Recorded]:
        """Store new transactions, match every one of the batch (duplicates too) and return the matches.

        A transaction's match depends on no other transaction, so a batch only matches its own. The ids
        enter a pending set in the MULTI that stores them and leave it in the MULTI that writes their
        match: a crash in between leaves them pending for the next `rematch_dirty`.
        """
        if not transactions:
            return []
        s = self.store_id
        pipe = self.client.pipeline(transaction=True)
        for t in transactions:
            pipe.hsetnx(keys.pos_transactions(s), t.transaction_id, t.model_dump_json())
            pipe.zadd(keys.pos_by_time(s), {t.transaction_id: t.ts_ms}, nx=True)
        ids = list(dict.fromkeys(t.transaction_id for t in transactions))
        pipe.sadd(keys.pos_pending(s), *ids)
        replies = pipe.execute()
        self._match_ids(ids)
        self.rematch_dirty()
        matches = dict(zip(ids, self.client.hmget(keys.pos_matches(s), ids), strict=True))
        seen: set[str] = set()
        out = []
        for i, t in enumerate(transactions):
            new = bool(replies[2 * i]) and t.transaction_id not in seen
            seen.add(t.transaction_id)
            m = matches[t.transaction_id]
            visitor = _s(m) if m else ""
            out.append(Recorded(t.transaction_id, "accepted" if new else "duplicate", visitor or None))
        return out

    def rematch_dirty(self) -> int:
        """Match the pending transactions and those of every dirty range; returns how many were matched."""
        s = self.store_id
        pending = [_s(m) for m in self.client.smembers(keys.pos_pending(s))]
        n = self._match_ids(pending)
        raw = self.client.zrange(keys.pos_dirty(s), 0, -1)
        if not raw:
            return n
        members = [_s(m) for m in raw]
        ranges = []
        for m in members:
            lo, _, hi = m.partition(":")
            ranges.append((int(lo), int(hi)))
        n += sum(self.rematch(lo, hi) for lo, hi in merge_ranges(ranges))
        self.client.zrem(keys.pos_dirty(s), *members)
        return n

    def rematch(self, lo_ms: int, hi_ms: int) -> int:
        """Recompute the match of every transaction with a time in [lo_ms, hi_ms]."""
        done = 0
        offset = 0
        while True:
            rows = self.client.zrangebyscore(keys.pos_by_time(self.store_id), lo_ms, hi_ms, start=offset,
                                             num=_CHUNK, withscores=True)
            if not rows:
                return done
            self._match([(_s(tid), int(score)) for tid, score in rows])
            done += len(rows)
            offset += len(rows)
            if len(rows) < _CHUNK:
                return done

    def _match_ids(self, ids: list[str]) -> int:
        """Match transactions by id, at their stored time (a duplicate keeps its first version)."""
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            scores = self.client.zmscore(keys.pos_by_time(self.store_id), chunk)
            self._match([(tid, int(sc)) for tid, sc in zip(chunk, scores, strict=True) if sc is not None],
                        done=chunk)
        return len(ids)

    def _match(self, txs: list[tuple[str, int]], done: list[str] | None = None) -> None:
        """Write the match of each (id, ts_ms); `done` ids leave the pending set in the same MULTI."""
        s = self.store_id
        txs = sorted(txs, key=lambda t: t[1])
        # Sales far apart in time share no candidate: fetch presences per cluster of close sales.
        clusters: list[list[tuple[str, int]]] = []
        for tx in txs:
            if clusters and tx[1] - clusters[-1][-1][1] <= self.window_ms + MAX_PRESENCE_MS:
                clusters[-1].append(tx)
            else:
                clusters.append([tx])
        fetch = self.client.pipeline(transaction=False)
        for c in clusters:
            fetch.zrangebyscore(keys.pos_billing_presence(s), c[0][1] - self.window_ms, c[-1][1] + MAX_PRESENCE_MS)
        found = fetch.execute() if clusters else []
        presences: list[list[Presence]] = [[tuple(json.loads(m)) for m in raw] for raw in found]  # type: ignore[misc]
        visitors = sorted({p[0] for ps in presences for p in ps})
        staff: set[str] = set()
        if visitors:
            flags = self.client.smismember(keys.analytics_staff(s), visitors)
            staff = {v for v, f in zip(visitors, flags, strict=True) if f}
        pipe = self.client.pipeline(transaction=True)
        buckets: set[int] = set()
        for cluster, candidates in zip(clusters, presences, strict=True):
            for tid, ts in cluster:
                visitor = best_visitor(ts, candidates, staff, self.window_ms)
                b = bucket_of_ms(ts, self.tz)
                buckets.add(b)
                pipe.hset(keys.pos_matches(s), tid, visitor or "")
                if visitor:
                    pipe.hset(keys.analytics_purchases(s, b), tid, visitor)
                else:
                    pipe.hdel(keys.analytics_purchases(s, b), tid)
        if buckets:
            pipe.zadd(keys.analytics_buckets(s), {str(b): b for b in buckets})
        if done:
            pipe.srem(keys.pos_pending(s), *done)
        pipe.execute()

    def transactions_between(self, lo_ms: int, hi_ms: int) -> int:
        """Number of transactions with a time in [lo_ms, hi_ms)."""
        return int(self.client.zcount(keys.pos_by_time(self.store_id), lo_ms, f"({hi_ms}"))
