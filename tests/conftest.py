"""Shared pytest fixtures. Keep each fixture small and documented; group them by subsystem."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from cluster.redis_server import REDIS_URL_ENV, EmbeddedRedis

# ---------------------------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis for the whole session: `REDIS_URL` if set, else an embedded redis-server.

    Tests using it must only touch their own db through `redis_client` (it is flushed per test), so
    never point `REDIS_URL` at a Redis holding data you want to keep.
    """
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if url:
        yield url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client (bytes responses) on an empty db."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


# ------------------------------------------------------------------------------------ Ray and models


@pytest.fixture(scope="session")
def vtest() -> str:
    """Path of the real pedestrian clip (extracted from Debian's opencv-doc on first use)."""
    from cluster.assets import vtest_path

    return str(vtest_path())


@pytest.fixture(scope="session")
def prepared_detector(vtest: str) -> None:
    """The YOLO11n-pose OpenVINO FP32 + INT8 IR in the cache (exported once, then reused)."""
    from cluster.cli import prepare_assets
    from workloads.config import FleetConfig

    prepare_assets(FleetConfig.model_validate({"stores": [{"id": "S", "cameras": [{"id": "C", "source": vtest}]}]}),
                   progress=False)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One real local Ray cluster for the session (starting Ray costs seconds)."""
    import ray
    from ray import serve

    from cluster.fleet import init_ray

    init_ray(num_cpus=4)
    yield
    serve.shutdown()
    ray.shutdown()
