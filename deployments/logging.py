"""Structured logs: JSON lines for machines, one compact line for terminals, a trace id on every record.

Why: an SRE follows one HTTP request or one camera batch through the logs by its trace id and ships
JSON to a log store; a developer at a terminal wants a line they can read. `STOREFLEET_LOG_FORMAT`
picks `json` or `console` (unset: console on a terminal, JSON otherwise, so Ray workers, whose
stderr goes to files, write JSON). Like every `STOREFLEET_*` variable it travels to Ray workers
(`cluster.fleet.init_ray`).

Only the `storefleet` logger tree is configured: Ray's and Serve's own logs keep their format.

Example:
    >>> import logging
    >>> configure_logging("console", stream=sys.stdout, fmt_time=False)
    >>> with trace("abc123"):
    ...     logging.getLogger("storefleet.demo").info("event batch", extra={"events": 3, "status": "ok"})
    INFO storefleet.demo [abc123] event batch events=3 status=ok
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

LOG_FORMAT_ENV = "STOREFLEET_LOG_FORMAT"
TRACE_HEADER = "X-Trace-Id"
ROOT_LOGGER = "storefleet"

_trace_id: ContextVar[str | None] = ContextVar("storefleet_trace_id", default=None)
# A caller's id is echoed in our logs and headers: keep it short and free of log/header injection.
_VALID_TRACE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is printed.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "trace_id"}

log = logging.getLogger("storefleet.http")


def new_trace_id() -> str:
    """A fresh random trace id (32 hex digits, the size of a W3C trace id)."""
    return uuid.uuid4().hex


def valid_trace_id(value: str | None) -> bool:
    """True for an id we may echo: 1-64 characters of letters, digits and `._:-`."""
    return bool(value and _VALID_TRACE.match(value))


def current_trace_id() -> str | None:
    return _trace_id.get()


@contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """Run a block under `trace_id` (a new one when None); every log record inside carries it."""
    tid = trace_id or new_trace_id()
    token = _trace_id.set(tid)
    try:
        yield tid
    finally:
        _trace_id.reset(token)


class TraceFilter(logging.Filter):
    """Puts the current trace id (or `-`) on every record, for both formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            record.trace_id = _trace_id.get() or "-"
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class ConsoleFormatter(logging.Formatter):
    """`12:00:01.123 INFO storefleet.camera [trace] message key=value ...`: one line a human can scan."""

    def __init__(self, fmt_time: bool = True) -> None:
        super().__init__()
        self.fmt_time = fmt_time

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.fmt_time:
            parts.append(time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}")
        parts += [record.levelname, record.name]
        tid = getattr(record, "trace_id", "-")
        if tid != "-":
            parts.append(f"[{tid}]")
        parts.append(record.getMessage())
        parts += [f"{k}={v}" for k, v in extra_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def json_formatter() -> logging.Formatter:
    """One JSON object per line: ts, level, logger, message, trace_id, then the `extra=` fields."""
    return JsonFormatter(
        "{levelname}{name}{message}{trace_id}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="ts",  # ISO-8601 UTC with microseconds
    )


def resolve_format(fmt: str | None = None, stream: TextIO | None = None) -> str:
    """`json` or `console`: the argument, else `STOREFLEET_LOG_FORMAT`, else by whether `stream` is a TTY."""
    fmt = (fmt or os.environ.get(LOG_FORMAT_ENV) or "").strip().lower()
    if fmt in ("json", "console"):
        return fmt
    if fmt:
        raise ValueError(f"{LOG_FORMAT_ENV}={fmt!r}: use json or console")
    stream = stream or sys.stderr
    return "console" if stream.isatty() else "json"


def configure_logging(
    fmt: str | None = None, level: int = logging.INFO, stream: TextIO | None = None, fmt_time: bool = True
) -> None:
    """Give the `storefleet` logger tree one handler with the chosen format (idempotent per process).

    Records stop at `storefleet` (no propagation), so Ray's root handler does not print them twice.
    """
    root = logging.getLogger(ROOT_LOGGER)
    chosen = resolve_format(fmt, stream)
    for h in list(root.handlers):
        if getattr(h, "_storefleet", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._storefleet = True  # type: ignore[attr-defined]
    handler.addFilter(TraceFilter())
    handler.setFormatter(json_formatter() if chosen == "json" else ConsoleFormatter(fmt_time))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


# ------------------------------------------------------------------------------------------- HTTP

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TraceMiddleware:
    """ASGI middleware: a trace id per HTTP request (the caller's `X-Trace-Id` when valid, else new),
    set for the request's logs, echoed in the response header, and one log line with method, path,
    status and latency.

    Pure ASGI rather than `BaseHTTPMiddleware`, so the trace id's context reaches the route (sync
    routes run in a thread that copies the context) and streaming responses are not buffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, TRACE_HEADER)
        tid = given if given is not None and valid_trace_id(given) else new_trace_id()
        status = 500
        t0 = time.perf_counter()

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (TRACE_HEADER.lower().encode(), tid.encode())]
            await send(message)

        with trace(tid):
            try:
                await self.app(scope, receive, send_with_trace)
            finally:
                fields = {"method": scope.get("method"), "path": scope.get("path"), "status": status,
                          "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}
                log.log(logging.WARNING if status >= 500 else logging.INFO, "http request", extra=fields)


def _header(scope: Scope, name: str) -> str | None:
    want = name.lower().encode()
    for k, v in scope.get("headers", []):
        if k.lower() == want:
            return v.decode("latin-1")
    return None
