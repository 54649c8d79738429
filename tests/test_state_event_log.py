"""The event log against a real Redis: idempotency, atomicity, concurrency, paging and filters."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from workloads.events import BOUNDARY_TYPES, EventType, VisitorEvent
from workloads.state import EventLog, keys
from workloads.state.event_log import EncodedBatch

T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
TYPES = list(EventType)


def ev(
    i: int,
    store: str = "S1",
    *,
    etype: EventType | None = None,
    ts: datetime | None = None,
    camera: str | None = None,
    staff: bool = False,
    event_id: uuid.UUID | None = None,
) -> VisitorEvent:
    """Event number `i`: a stable id per (store, i), so the same i is the same event."""
    etype = etype or TYPES[i % len(TYPES)]
    return VisitorEvent(
        event_id=event_id or uuid.uuid5(uuid.NAMESPACE_OID, f"{store}/{i}"),
        store_id=store,
        camera_id=camera or f"C{i % 3}",
        visitor_id=f"v{i}",
        event_type=etype,
        timestamp=ts or T0 + timedelta(seconds=i),
        zone_id=None if etype in BOUNDARY_TYPES else "Z1",
        is_staff=staff,
    )


def ids(events: list[VisitorEvent]) -> list[str]:
    return [str(e.event_id) for e in events]


def page_all(
    log: EventLog, store: str, limit: int, between_pages: Callable[[], None] = lambda: None, **kw: object
) -> list[VisitorEvent]:
    out: list[VisitorEvent] = []
    cursor = None
    while True:
        page, cursor = log.query(store, limit=limit, cursor=cursor, **kw)  # type: ignore[arg-type]
        assert len(page) <= limit
        out += page
        if cursor is None:
            return out
        between_pages()


@pytest.fixture
def log(redis_client: redis.Redis) -> EventLog:
    return EventLog(redis_client)


# ------------------------------------------------------------------------------------ idempotency


@pytest.mark.parametrize(
    ("batches", "accepted", "duplicates"),
    [
        ([[0]], [[0]], [[]]),
        ([[0, 0]], [[0]], [[0]]),  # same id twice inside one batch
        ([[0], [0]], [[0], []], [[], [0]]),  # across batches
        ([[0, 1], [1, 2, 0]], [[0, 1], [2]], [[], [1, 0]]),
        ([[0, 1, 0, 1], [1, 0], [0]], [[0, 1], [], []], [[0, 1], [1, 0], [0]]),
        ([[], [3]], [[], [3]], [[], []]),
    ],
)
def test_duplicates_count_once(
    log: EventLog, batches: list[list[int]], accepted: list[list[int]], duplicates: list[list[int]]
) -> None:
    for batch, acc, dup in zip(batches, accepted, duplicates, strict=True):
        res = log.append([ev(i) for i in batch])
        assert res.accepted == ids([ev(i) for i in acc])
        assert res.duplicates == ids([ev(i) for i in dup])
    unique = {i for b in batches for i in b}
    c = log.counters("S1")
    assert log.count("S1") == c["total"] == len(unique)
    assert c["by_type"] == dict(Counter(ev(i).event_type.value for i in unique))
    assert sum(n for cam in c["by_camera"].values() for n in cam.values()) == len(unique)
    assert c["non_staff"] == len(unique) and c["staff"] == 0


def test_first_write_of_an_id_wins(log: EventLog) -> None:
    eid = uuid.uuid4()
    first = ev(0, event_id=eid, camera="first")
    assert log.append([first]).accepted == [str(eid)]
    assert log.append([ev(1, event_id=eid, camera="second")]).duplicates == [str(eid)]
    assert log.get("S1", str(eid)) == first
    assert log.counters("S1")["by_camera"] == {"first": {first.event_type.value: 1}}


def test_every_structure_gets_each_accepted_event_once(log: EventLog, redis_client: redis.Redis) -> None:
    events = [ev(i, etype=EventType.ENTRY if i % 2 else EventType.EXIT, staff=i % 3 == 0) for i in range(12)]
    log.append(events + events[:5])
    assert redis_client.xlen(keys.events_stream("S1")) == 12
    assert redis_client.zcard(keys.events_by_time("S1")) == 12
    assert redis_client.zcard(keys.events_by_type_time("S1", "ENTRY")) == 6
    assert redis_client.zcard(keys.events_by_type_time("S1", "EXIT")) == 6
    entry = redis_client.xrange(keys.events_stream("S1"), count=1)[0][1]
    assert VisitorEvent.model_validate_json(entry[b"json"]) == events[0]
    assert entry[b"event_id"].decode() == str(events[0].event_id)
    c = log.counters("S1")
    assert (c["staff"], c["non_staff"]) == (4, 8)
    assert c["staff_by_type"] == {"EXIT": 2, "ENTRY": 2}


@pytest.mark.parametrize("size", [499, 500, 501, 1700])  # the script adds index members 500 per ZADD
def test_a_long_batch_indexes_and_counts_every_event(log: EventLog, redis_client: redis.Redis, size: int) -> None:
    events = [ev(i, staff=i % 4 == 0) for i in range(size)]
    assert log.append(events + events[:3]).accepted == ids(events)
    assert redis_client.zcard(keys.events_by_time("S1")) == redis_client.xlen(keys.events_stream("S1")) == size
    per_type = Counter(e.event_type.value for e in events)
    for etype, n in per_type.items():
        assert redis_client.zcard(keys.events_by_type_time("S1", etype)) == n
    c = log.counters("S1")
    assert (c["total"], c["staff"], c["non_staff"]) == (size, len(events[::4]), size - len(events[::4]))
    assert c["by_type"] == dict(per_type)
    assert log.query("S1", limit=size, order="oldest")[0] == events


def test_an_encoded_batch_is_stored_like_its_events(log: EventLog) -> None:
    events = [ev(i, staff=i % 2 == 0) for i in range(20)]
    log.append(events[:5])
    res = log.append(EncodedBatch.of("S1", events))
    assert (res.accepted, res.duplicates) == (ids(events[5:]), ids(events[:5]))
    assert log.query("S1", limit=100, order="oldest")[0] == events
    c = log.counters("S1")
    assert (c["total"], c["staff"]) == (20, 10)
    with pytest.raises(ValueError, match="batch of store S2"):
        EncodedBatch.of("S2", events[:1])


@pytest.mark.parametrize(("threads", "batch", "pool"), [(4, 25, 400), (8, 7, 300), (6, 100, 600)])
def test_concurrent_overlapping_appends_count_each_event_once(
    log: EventLog, redis_url: str, threads: int, batch: int, pool: int
) -> None:
    events = [ev(i, staff=i % 5 == 0) for i in range(pool)]
    accepted: list[list[str]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            own = EventLog(redis.Redis.from_url(redis_url))  # own connection, as separate actors have
            rng = random.Random(k)
            order = events[:]
            rng.shuffle(order)  # every thread sends every event, in its own order and batching
            barrier.wait()
            for i in range(0, pool, batch):
                accepted[k] += own.append(order[i : i + batch]).accepted
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    every = [i for a in accepted for i in a]
    assert sorted(every) == sorted(ids(events))  # each id accepted exactly once, by some thread
    c = log.counters("S1")
    assert log.count("S1") == c["total"] == pool
    assert c["staff"] == pool // 5
    assert sum(c["by_type"].values()) == pool


def test_a_failing_batch_writes_nothing(log: EventLog, redis_client: redis.Redis) -> None:
    redis_client.set(keys.events_by_type_time("S1", "EXIT"), "not a zset")
    batch = [ev(0, etype=EventType.ENTRY), ev(1, etype=EventType.EXIT)]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        log.append(batch)
    assert log.count("S1") == 0
    assert log.counters("S1")["total"] == 0
    assert redis_client.exists(keys.events_stream("S1"), keys.events_by_time("S1")) == 0


def test_append_survives_a_script_cache_flush(log: EventLog, redis_client: redis.Redis) -> None:
    log.append([ev(0)])
    redis_client.script_flush()
    assert log.append([ev(1), ev(0)]).accepted == ids([ev(1)])
    assert log.query("S1", limit=10)[0] == [ev(1), ev(0)]


# ------------------------------------------------------------------------------------ multi-store


def test_multi_store_batch_is_split_per_store(log: EventLog, redis_client: redis.Redis) -> None:
    batch = [ev(0, "S1"), ev(0, "S2"), ev(1, "S1"), ev(0, "S3"), ev(0, "S2"), ev(2, "S1")]
    res = log.append(batch)
    assert res.accepted == ids([ev(0, "S1"), ev(0, "S2"), ev(1, "S1"), ev(0, "S3"), ev(2, "S1")])
    assert res.duplicates == ids([ev(0, "S2")])
    assert log.stores() == ["S1", "S2", "S3"]
    assert [log.count(s) for s in ("S1", "S2", "S3")] == [3, 1, 1]
    assert log.query("S2", limit=10)[0] == [ev(0, "S2")]
    again = log.append(batch[::-1])
    assert again.accepted == [] and len(again.duplicates) == 6
    assert [log.counters(s)["total"] for s in ("S1", "S2", "S3")] == [3, 1, 1]


def test_unknown_store_is_empty(log: EventLog) -> None:
    assert log.query("nope", limit=5) == ([], None)
    assert log.count("nope") == 0
    assert log.last_event("nope") is None
    assert log.counters("nope") == {
        "total": 0,
        "by_type": {},
        "by_camera": {},
        "staff": 0,
        "non_staff": 0,
        "staff_by_type": {},
    }
    assert log.stores() == []


# ------------------------------------------------------------------------------------ queries

# 20 events, one per second from T0; types cycle over the 8 types, so i % 8 is the type index.
N = 20


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.mark.parametrize(
    ("types", "start", "end", "expected"),
    [
        (None, None, None, list(range(N))),
        (None, at(5), None, list(range(5, N))),  # start is inclusive
        (None, None, at(5), list(range(5))),  # end is exclusive
        (None, at(5), at(6), [5]),
        (None, at(5), at(5), []),  # empty window
        (None, at(6), at(5), []),  # inverted window
        (None, at(4.5), at(7.0001), [5, 6, 7]),
        (None, at(4.9995), at(5.0005), [5]),  # ms resolution
        (None, at(-100), at(1000), list(range(N))),
        (None, at(19), None, [19]),
        (None, at(20), None, []),
        ({EventType.ENTRY}, None, None, [0, 8, 16]),
        (EventType.ENTRY, None, None, [0, 8, 16]),  # a bare type, not a set
        ({"ENTRY", "EXIT"}, None, None, [0, 1, 8, 9, 16, 17]),
        ({EventType.ENTRY, EventType.EXIT}, at(8), at(16), [8, 9]),  # both bounds hit an event
        ({EventType.ZONE_DWELL}, at(5), at(6), [5]),
        ({EventType.ZONE_DWELL}, at(5.001), at(13), []),
        (set(), None, None, []),
        (set(EventType), at(3), at(7), [3, 4, 5, 6]),
    ],
)
@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("limit", [1, 3, 100])
def test_type_and_time_filters(
    log: EventLog,
    types: set[EventType | str] | None,
    start: datetime | None,
    end: datetime | None,
    expected: list[int],
    order: str,
    limit: int,
) -> None:
    log.append([ev(i) for i in reversed(range(N))])
    got = page_all(log, "S1", limit, types=types, start=start, end=end, order=order)
    want = [ev(i) for i in expected]
    assert got == (want[::-1] if order == "newest" else want)


def test_filters_accept_any_time_zone(log: EventLog) -> None:
    log.append([ev(i) for i in range(N)])
    plus2 = at(3).astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    assert log.query("S1", start=plus2, end=at(4), limit=10)[0] == [ev(3)]
    with pytest.raises(ValueError, match="time zone"):
        log.query("S1", start=datetime(2026, 3, 3, 14), limit=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"cursor": "garbage!"}, "invalid cursor"),
        ({"cursor": "djF8bmV3ZXN0fHh8eQ"}, "invalid cursor"),  # v1|newest|x|y: ts not a number
        ({"order": "sideways"}, "order"),
        ({"types": {"NOT_A_TYPE"}}, "NOT_A_TYPE"),
    ],
)
def test_bad_query_arguments(log: EventLog, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        log.query("S1", **kwargs)  # type: ignore[arg-type]


def test_cursor_of_one_order_is_refused_by_the_other(log: EventLog) -> None:
    log.append([ev(i) for i in range(5)])
    _, cursor = log.query("S1", limit=2, order="newest")
    assert cursor is not None
    with pytest.raises(ValueError, match="order"):
        log.query("S1", limit=2, cursor=cursor, order="oldest")


def test_equal_timestamps_page_by_event_id(log: EventLog) -> None:
    events = [ev(i, ts=T0, etype=EventType.ENTRY if i % 2 else EventType.EXIT) for i in range(25)]
    log.append(events)
    by_key = sorted(events, key=lambda e: str(e.event_id))
    for limit in (1, 2, 4, 24, 25):
        assert page_all(log, "S1", limit, order="oldest") == by_key
        assert page_all(log, "S1", limit, order="newest") == by_key[::-1]
        assert page_all(log, "S1", limit, types={"ENTRY", "EXIT"}, order="oldest") == by_key


def test_last_event_is_latest_by_event_time(log: EventLog) -> None:
    log.append([ev(5), ev(9), ev(2)])
    assert log.last_event("S1") == ev(9)
    log.append([ev(7)])  # arrives last but happened earlier
    assert log.last_event("S1") == ev(9)


def test_works_with_a_decoding_client(redis_url: str, redis_client: redis.Redis) -> None:
    log = EventLog(redis.Redis.from_url(redis_url, decode_responses=True))
    assert log.append([ev(0), ev(1, "S2"), ev(0)]).duplicates == ids([ev(0)])
    page, cursor = log.query("S1", limit=1)
    assert page == [ev(0)] and cursor is None
    assert log.stores() == ["S1", "S2"]
    assert log.counters("S1")["total"] == 1


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("limit", [1, 7, 50])
@pytest.mark.parametrize("types", [None, {EventType.ENTRY, EventType.ZONE_ENTER, EventType.EXIT}])
def test_paging_under_concurrent_appends_returns_each_event_once(
    log: EventLog, redis_url: str, order: str, limit: int, types: set[EventType] | None
) -> None:
    # Groups of 3 events share a millisecond, so pages also split ties (resolved by event id).
    base = [ev(i, ts=T0 + timedelta(milliseconds=(i // 3) * 10)) for i in range(240)]
    log.append(base)
    stop = threading.Event()
    written = threading.Semaphore(0)
    writer_errors: list[BaseException] = []

    def writer() -> None:
        w = EventLog(redis.Redis.from_url(redis_url))
        rng = random.Random(1)
        n = 10_000
        try:
            while not stop.is_set():
                # New events land before, inside and after the existing range, some on shared ms.
                batch = [
                    ev(n + k, ts=T0 + timedelta(milliseconds=rng.randrange(-500, 1500))) for k in range(5)
                ]
                w.append([*batch, rng.choice(base)])  # plus a duplicate of an old one
                n += 5
                written.release()
        except BaseException as e:
            writer_errors.append(e)
            written.release()

    def wait_for_a_write() -> None:  # guarantees appends land between every two pages
        assert written.acquire(timeout=10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        got = page_all(log, "S1", limit, wait_for_a_write, types=types, order=order)
    finally:
        stop.set()
        t.join()
    assert not writer_errors
    assert log.count("S1") > len(base)
    got_ids = ids(got)
    assert len(got_ids) == len(set(got_ids)), "an event was returned twice"
    wanted = {str(e.event_id) for e in base if types is None or e.event_type in types}
    assert wanted <= set(got_ids), "an event stored before paging began was skipped"
    sort_keys = [(e.ts_ms, str(e.event_id)) for e in got]
    assert sort_keys == sorted(sort_keys, reverse=order == "newest")
    assert all(types is None or e.event_type in types for e in got)
