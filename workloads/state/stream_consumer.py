"""Tail a store's event stream exactly once: the cursor commits in the same MULTI as derived state.

Downstream consumers (analytics aggregates, loss-prevention rules) read the store's events from
`sf:{S}:events` rather than being called by the store actor. Each keeps a cursor (the last stream
id it applied) and writes it in the same transaction as the state it derived from those events,
so a consumer that crashes anywhere either applied a batch and moved its cursor, or did neither:
after a restart it re-reads exactly the batch it had not committed.

Example:
    >>> consumer = StreamConsumer(client, "S1", "analytics")  # doctest: +SKIP
    >>> batch = consumer.read(count=500, block_ms=1000)  # doctest: +SKIP
    >>> pipe = client.pipeline(transaction=True)  # doctest: +SKIP
    >>> ... derived updates on pipe ...; consumer.commit(pipe, batch); pipe.execute()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from workloads.events import VisitorEvent
from workloads.state import keys


@dataclass(frozen=True)
class Batch:
    events: list[VisitorEvent]
    last_id: str | None  #: stream id of the last entry read; None when nothing was read

    def __bool__(self) -> bool:
        return self.last_id is not None


class StreamConsumer:
    def __init__(self, client: redis.Redis, store_id: str, name: str) -> None:
        self.client, self.store_id, self.name = client, store_id, name
        self.stream = keys.events_stream(store_id)
        self.cursor_key = keys.consumer_cursor(store_id, name)

    def position(self) -> str:
        raw = self.client.get(self.cursor_key)
        return raw.decode() if isinstance(raw, bytes) else (raw or "0-0")

    def read(self, count: int = 500, block_ms: int | None = None) -> Batch:
        """The next events after the committed cursor (blocking up to `block_ms` when there are none)."""
        res = self.client.xread({self.stream: self.position()}, count=count, block=block_ms)
        if not res:
            return Batch([], None)
        _, entries = res[0]
        events = []
        for _entry_id, fields in entries:
            raw = fields.get(b"json") if b"json" in fields else fields.get("json")
            events.append(VisitorEvent.model_validate_json(raw))
        last = entries[-1][0]
        return Batch(events, last.decode() if isinstance(last, bytes) else last)

    def commit(self, pipe: redis.client.Pipeline, batch: Batch) -> None:
        """Queue the cursor move on the caller's transaction, next to the state derived from `batch`."""
        if batch.last_id is not None:
            pipe.set(self.cursor_key, batch.last_id)

    def lag(self) -> int:
        """Entries in the stream not yet applied by this consumer."""
        pos = self.position()
        if pos == "0-0":
            return int(self.client.xlen(self.stream))
        return len(self.client.xrange(self.stream, f"({pos}", "+"))
