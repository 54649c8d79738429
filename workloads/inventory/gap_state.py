"""The latest shelf-gap observation of every planogram segment, in Redis.

Gaps are state, not events: only the newest observation of a segment matters, so one hash per store
(`sf:{S}:inv:shelf`, segment id -> JSON) is overwritten in place. A replayed or restarted shelf
camera writes the same kind of value again; nothing accumulates. Writes never go backwards in time:
an observation older than the stored one for that segment is ignored.

Example:
    >>> state = ShelfGapState(redis.Redis.from_url(url))  # doctest: +SKIP
    >>> state.put([obs])  # doctest: +SKIP
    >>> state.get("S1")["A1"].gap_ratio  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import redis
from pydantic import BaseModel, Field

from workloads.state import keys


class GapObservation(BaseModel):
    store_id: str
    camera_id: str
    segment_id: str
    sku: str
    facings: int
    empty_facings: list[int] = Field(description="Indices (left to right) of facings seen empty.")
    gap_ratio: float = Field(description="Share of the segment's facings that are empty (0-1), smoothed over frames.")
    bare_fraction: float = Field(description="Share of the segment's width that looks bare in the latest frame.")
    observed_at: datetime = Field(description="Feed time of the latest frame used.")
    frames: int = Field(1, description="Frames the smoothed gap ratio is the median of.")
    aisle: str = ""


# KEYS: 1 hash. ARGV: pairs of (segment id, json, observed ms). Skips values older than the stored one.
_PUT = """
for i = 1, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i] .. ':ms')
  if (not old) or tonumber(old) <= tonumber(ARGV[i + 2]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1], ARGV[i] .. ':ms', ARGV[i + 2])
  end
end
return 1
"""


class ShelfGapState:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._put = client.register_script(_PUT)

    def put(self, observations: Iterable[GapObservation]) -> None:
        by_store: dict[str, list[GapObservation]] = {}
        for o in observations:
            by_store.setdefault(o.store_id, []).append(o)
        for store_id, obs in by_store.items():
            args: list[str | int] = []
            for o in obs:
                args += [o.segment_id, o.model_dump_json(), int(o.observed_at.timestamp() * 1000)]
            self._put(keys=[keys.inventory_shelf(store_id)], args=args)

    def get(self, store_id: str) -> dict[str, GapObservation]:
        raw = self.client.hgetall(keys.inventory_shelf(store_id))
        out = {}
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            if name.endswith(":ms"):
                continue
            out[name] = GapObservation.model_validate_json(v)
        return out
