"""Exactly-once tailing of a store's event stream, against a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workloads.events import EventType, VisitorEvent
from workloads.state.event_log import EventLog
from workloads.state.stream_consumer import StreamConsumer


def events(n: int, start: int = 0) -> list[VisitorEvent]:
    t0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    return [
        VisitorEvent(store_id="S1", camera_id="C1", visitor_id=f"v{i}", event_type=EventType.ENTRY,
                     timestamp=t0 + timedelta(seconds=i))
        for i in range(start, start + n)
    ]


def apply(client, consumer: StreamConsumer, count: int, crash_before_exec: bool = False) -> int:
    """A consumer step: count ENTRY events into a hash, moving the cursor in the same MULTI."""
    batch = consumer.read(count=count)
    if not batch:
        return 0
    pipe = client.pipeline(transaction=True)
    pipe.hincrby("test:derived", "entries", len(batch.events))
    consumer.commit(pipe, batch)
    if crash_before_exec:
        pipe.reset()  # the process died before EXEC: nothing of this batch is applied
        return 0
    pipe.execute()
    return len(batch.events)


@pytest.mark.parametrize(("n", "count", "crash_at"), [(10, 3, None), (10, 3, 2), (25, 10, 0), (1, 5, 0)])
def test_each_event_applied_exactly_once_across_crashes(redis_client, n, count, crash_at) -> None:
    EventLog(redis_client).append(events(n))
    consumer = StreamConsumer(redis_client, "S1", "test")
    step = 0
    while True:
        crash = crash_at is not None and step == crash_at
        applied = apply(redis_client, StreamConsumer(redis_client, "S1", "test"), count, crash)
        step += 1
        if applied == 0 and not crash:
            break
    assert int(redis_client.hget("test:derived", "entries")) == n
    assert consumer.lag() == 0


def test_new_events_after_the_cursor_are_picked_up(redis_client) -> None:
    log, consumer = EventLog(redis_client), StreamConsumer(redis_client, "S1", "test")
    first = events(3)
    log.append(first)
    assert apply(redis_client, consumer, 100) == 3
    log.append(first)  # same ids: duplicates never reach the stream
    log.append(events(2, start=3))
    assert consumer.lag() == 2
    assert apply(redis_client, consumer, 100) == 2
    assert not consumer.read(block_ms=10)
