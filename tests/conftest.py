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


# ------------------------------------------------------------------------------------------- Mosquitto


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(host, port) of a real Mosquitto broker (Debian's, see infra/apt-test-packages.txt) on a free port."""
    import shutil
    import socket
    import subprocess
    import time

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}") from None
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("mosquitto did not start listening within 10 s")
    yield "127.0.0.1", port
    proc.terminate()
    proc.wait(timeout=10)
