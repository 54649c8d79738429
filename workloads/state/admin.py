"""Operator actions on the state of a whole store."""

from __future__ import annotations

import redis

from workloads.state import keys


def forget_store(client: redis.Redis, store_id: str) -> int:
    """Delete every key of the store (events, counters, checkpoints, health) and unlist it.

    For demos and tests: a fresh run of the same fleet starts from nothing. Returns the number of
    keys deleted. Not atomic with concurrent writers of the same store; stop them first.
    """
    deleted = 0
    batch: list[bytes | str] = []
    for key in client.scan_iter(match=keys.store_pattern(store_id), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(client.delete(*batch))
    client.srem(keys.stores(), store_id)
    return deleted
