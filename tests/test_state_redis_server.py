"""The embedded redis-server: persistence, ownership of its data folder, no orphans, REDIS_URL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from cluster.redis_server import (
    PID_FILE,
    DataDirInUseError,
    EmbeddedRedis,
    PortInUseError,
    RedisBinaryNotFoundError,
    bundled_redis_server,
    resolve_redis,
)
from workloads.events import EventType, VisitorEvent
from workloads.state import EventLog

ROOT = Path(__file__).resolve().parents[1]


def _events(n: int) -> list[VisitorEvent]:
    t0 = datetime(2026, 3, 3, tzinfo=UTC)
    return [
        VisitorEvent(
            store_id="S1",
            camera_id="C1",
            visitor_id=f"v{i}",
            event_type=EventType.ENTRY,
            timestamp=t0 + timedelta(seconds=i),
        )
        for i in range(n)
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as s:
        yield s


def test_starts_fast_and_answers_on_loopback(server: EmbeddedRedis) -> None:
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert server.start_seconds is not None and server.start_seconds < 2.0
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    cfg = client.config_get("*")
    assert (cfg["appendonly"], cfg["appendfsync"], cfg["bind"], cfg["protected-mode"]) == (
        "yes",
        "everysec",
        "127.0.0.1",
        "yes",
    )
    assert Path(cfg["dir"]) == server.data_dir
    assert int(client.info("server")["process_id"]) == server.pid


@pytest.mark.parametrize("how", ["stop", "kill -9 the server"])
def test_data_survives_a_restart_on_the_same_folder(tmp_path: Path, how: str) -> None:
    data = tmp_path / "redis"
    events = _events(50)
    with EmbeddedRedis(data) as first:
        EventLog(redis.Redis.from_url(first.url)).append(events)
        if how == "kill -9 the server":
            # Redis write()s the AOF before it replies: a killed process loses nothing acknowledged
            # (only an OS crash can lose the last second, appendfsync everysec).
            assert first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            assert _wait_dead(first.pid)
    with EmbeddedRedis(data) as second:
        log = EventLog(redis.Redis.from_url(second.url))
        assert log.count("S1") == 50
        assert log.counters("S1")["total"] == 50
        assert log.append(events).duplicates == [str(e.event_id) for e in events]
        assert log.query("S1", limit=1, order="oldest")[0] == events[:1]
    assert not (data / PID_FILE).exists()


def test_stop_is_idempotent_and_frees_the_folder(tmp_path: Path) -> None:
    s = EmbeddedRedis(tmp_path).start()
    pid = s.pid
    assert pid is not None
    s.stop()
    s.stop()
    assert not s.running and _wait_dead(pid, 0.5)
    with EmbeddedRedis(tmp_path) as again:  # the lock is released
        assert again.running


def test_restart_after_the_server_died(server: EmbeddedRedis) -> None:
    redis.Redis.from_url(server.url).set("k", "v")
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.running
    server.start()
    assert redis.Redis.from_url(server.url).get("k") == b"v"


def test_a_given_port_is_used(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EmbeddedRedis(tmp_path, port=port) as s:
        assert s.port == port and redis.Redis(port=port).ping()


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"port {port} .* already in use"):
            EmbeddedRedis(tmp_path, port=port).start()
    with EmbeddedRedis(tmp_path) as s:  # a failed start leaves the folder usable
        assert s.running


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    assert bundled_redis_server().is_file()
    with pytest.raises(RedisBinaryNotFoundError, match=r"redis-server not found .* REDIS_URL"):
        EmbeddedRedis(tmp_path, binary=tmp_path / "no-such-redis-server").start()


def test_one_live_server_per_folder(server: EmbeddedRedis) -> None:
    with pytest.raises(DataDirInUseError, match=f"owner pid {os.getpid()}"):
        EmbeddedRedis(server.data_dir).start()
    assert redis.Redis.from_url(server.url).ping()


def test_a_stale_server_of_a_crashed_run_is_shut_down(tmp_path: Path) -> None:
    # What a crashed owner leaves behind: a redis-server on the folder, and its pid file.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stale = subprocess.Popen(
        [
            str(bundled_redis_server()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp_path),
            "--appendonly",
            "yes",
            "--appendfilename",
            "appendonly.aof",
            "--save",
            "",
            "--logfile",
            "stale.log",
        ],
        start_new_session=True,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        client.set("written-before-the-crash", "yes")
        (tmp_path / PID_FILE).write_text(
            json.dumps({"pid": stale.pid, "port": port, "owner_pid": 999_999_999})
        )
        with EmbeddedRedis(tmp_path) as fresh:
            assert stale.wait(5) == 0  # shut down cleanly, AOF flushed
            assert fresh.pid != stale.pid
            assert redis.Redis.from_url(fresh.url).get("written-before-the-crash") == b"yes"
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()


def test_a_pid_file_naming_another_process_is_ignored(tmp_path: Path) -> None:
    (tmp_path / PID_FILE).write_text(json.dumps({"pid": os.getpid(), "port": 1, "owner_pid": 1}))
    with EmbeddedRedis(tmp_path) as s:  # our own pid is no redis-server: nobody gets killed
        assert s.running


_CHILD = """
import sys, time
from pathlib import Path
from cluster.redis_server import EmbeddedRedis
s = EmbeddedRedis(Path(sys.argv[1])).start()
print(s.pid, flush=True)
if sys.argv[2] == "sleep":
    time.sleep(60)
"""


@pytest.mark.parametrize(
    ("mode", "kill_owner"),
    [("exit", False), ("sleep", True)],
    ids=["owner exits without stop()", "owner is SIGKILLed"],
)
def test_no_orphan_server_outlives_its_owner(tmp_path: Path, mode: str, kill_owner: bool) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(tmp_path), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert _alive(pid)
        if kill_owner:
            owner.kill()
        owner.wait(10)
        assert _wait_dead(pid), "redis-server outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_redis_url_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    url, server = resolve_redis(tmp_path / "unused")
    assert (url, server) == (redis_url, None)
    assert not (tmp_path / "unused").exists()  # nothing was started


def test_without_redis_url_an_embedded_server_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    url, server = resolve_redis(tmp_path)
    try:
        assert server is not None and url == server.url
        assert redis.Redis.from_url(url).ping()
    finally:
        assert server is not None
        server.stop()


def test_the_session_fixture_honours_redis_url(redis_url: str) -> None:
    if os.environ.get("REDIS_URL"):
        assert redis_url == os.environ["REDIS_URL"].strip()
    else:
        assert redis_url.startswith("redis://127.0.0.1:")
    assert redis.Redis.from_url(redis_url).ping()
