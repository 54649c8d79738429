"""Key layout: every per-store key carries the store's hash tag, so a store lives in one Cluster slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from workloads.events import EventType
from workloads.state import keys


def _store_keys(store_id: str) -> list[str]:
    return [
        keys.events_stream(store_id),
        keys.event_by_id(store_id),
        keys.events_by_time(store_id),
        *(keys.events_by_type_time(store_id, t.value) for t in EventType),
        keys.event_counters(store_id),
        keys.cameras(store_id),
        keys.camera_checkpoint(store_id, "C1"),
        keys.camera_health(store_id, "cam:with:colons"),
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (keys.events_stream("S1"), "sf:{S1}:events"),
        (keys.event_by_id("S1"), "sf:{S1}:events:by_id"),
        (keys.events_by_time("S1"), "sf:{S1}:events:by_ts"),
        (keys.events_by_type_time("S1", "ENTRY"), "sf:{S1}:events:by_ts:ENTRY"),
        (keys.event_counters("S1"), "sf:{S1}:counters"),
        (keys.cameras("S1"), "sf:{S1}:cameras"),
        (keys.camera_checkpoint("S1", "C7"), "sf:{S1}:camera:C7:checkpoint"),
        (keys.camera_health("S1", "C7"), "sf:{S1}:camera:C7:health"),
        (keys.stores(), "sf:stores"),
        (keys.store_pattern("S1"), "sf:{S1}:*"),
        (keys.store_pattern("a*b"), "sf:{a\\*b}:*"),
    ],
)
def test_key_strings(key: str, expected: str) -> None:
    assert key == expected


@pytest.mark.parametrize("store_id", ["S1", "store-042", "a.b_c", "x:y"])
def test_all_keys_of_a_store_share_one_cluster_slot(store_id: str) -> None:
    slots = {key_slot(k.encode()) for k in _store_keys(store_id)}
    assert slots == {key_slot(store_id.encode())}


def test_all_keys_are_distinct() -> None:
    all_keys = _store_keys("S1") + _store_keys("S2") + [keys.stores()]
    assert len(all_keys) == len(set(all_keys))


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "{S1}"])
def test_ids_that_would_break_the_hash_tag_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="store id"):
        keys.events_stream(bad)
