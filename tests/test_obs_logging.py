"""Structured logs: both formats as tables, the trace id through the real API app (real Redis), and the
camera's per-batch trace lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import nullcontext

import pytest
from fastapi.testclient import TestClient

from deployments.logging import (
    LOG_FORMAT_ENV,
    TRACE_HEADER,
    configure_logging,
    current_trace_id,
    resolve_format,
    trace,
    valid_trace_id,
)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Captures the storefleet logger tree; restores its handlers afterwards."""
    root = logging.getLogger("storefleet")
    saved = (list(root.handlers), root.level, root.propagate)
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level, root.propagate = saved


def _lines(stream: io.StringIO) -> list[str]:
    return [ln for ln in stream.getvalue().splitlines() if ln]


@pytest.mark.parametrize(
    ("fmt", "trace_id", "extra", "expected"),
    [
        ("console", None, {}, "INFO storefleet.t event batch"),
        ("console", "abc", {"events": 3, "status": "ok"}, "INFO storefleet.t [abc] event batch events=3 status=ok"),
        ("json", None, {}, {"level": "INFO", "logger": "storefleet.t", "message": "event batch", "trace_id": "-"}),
        ("json", "abc", {"latency_ms": 4.5, "store": "S1"},
         {"level": "INFO", "logger": "storefleet.t", "message": "event batch", "trace_id": "abc", "latency_ms": 4.5,
          "store": "S1"}),
    ],
)
def test_formats(log_stream, fmt, trace_id, extra, expected) -> None:
    configure_logging(fmt, stream=log_stream, fmt_time=False)
    with trace(trace_id) if trace_id else nullcontext():
        logging.getLogger("storefleet.t").info("event batch", extra=extra)
    (line,) = _lines(log_stream)
    if fmt == "console":
        assert line == expected
    else:
        record = json.loads(line)
        assert {k: record[k] for k in expected} == expected and record["ts"].endswith("+00:00")


def test_exceptions_stay_one_json_record(log_stream) -> None:
    configure_logging("json", stream=log_stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("storefleet.t").exception("batch failed")
    (line,) = _lines(log_stream)
    assert "RuntimeError: boom" in json.loads(line)["exc_info"]


def test_configure_is_idempotent_and_does_not_reach_the_root_logger(log_stream) -> None:
    for _ in range(3):
        configure_logging("console", stream=log_stream)
    logging.getLogger("storefleet.t").info("once")
    assert len(_lines(log_stream)) == 1 and logging.getLogger("storefleet").propagate is False


@pytest.mark.parametrize(
    ("arg", "env", "expected"),
    [("json", "console", "json"), (None, "console", "console"), (None, "JSON", "json"), (None, None, "json")],
)
def test_resolve_format(monkeypatch, arg, env, expected) -> None:
    if env is None:
        monkeypatch.delenv(LOG_FORMAT_ENV, raising=False)
    else:
        monkeypatch.setenv(LOG_FORMAT_ENV, env)
    assert resolve_format(arg, io.StringIO()) == expected  # a StringIO is no TTY


def test_resolve_format_names_a_bad_value(monkeypatch) -> None:
    monkeypatch.setenv(LOG_FORMAT_ENV, "xml")
    with pytest.raises(ValueError, match="STOREFLEET_LOG_FORMAT"):
        resolve_format()


@pytest.mark.parametrize(
    ("value", "ok"),
    [("4bf92f3577b34da6a3ce929d0e0e4736", True), ("req-1.2:3", True), ("", False), ("a" * 65, False),
     ("x\r\nSet-Cookie: a=b", False), ("has space", False), (None, False)],
)
def test_valid_trace_id(value, ok) -> None:
    assert valid_trace_id(value) is ok


def test_trace_context_nests_and_resets() -> None:
    with trace("outer"):
        with trace() as inner:
            assert current_trace_id() == inner != "outer" and len(inner) == 32
        assert current_trace_id() == "outer"
    assert current_trace_id() is None


# ------------------------------------------------------------------------------------- the API app


@pytest.fixture
def api(redis_url, redis_client, log_stream) -> TestClient:
    """The real API app (every router, our middleware) over a real, empty Redis."""
    from deployments.api.context import ApiContext, set_context
    from deployments.ingress import app

    fleet = {"stores": [{"id": "S1", "cameras": [{"id": "C1", "source": "synthetic:empty"}]}]}
    set_context(ApiContext.create(fleet, redis_url))
    configure_logging("json", stream=log_stream)
    return TestClient(app)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [(None, None), ("caller-trace-1", "caller-trace-1"), ("bad id\twith tab", None)],
)
def test_api_requests_carry_a_trace_id_in_header_and_log(api, log_stream, sent, echoed) -> None:
    res = api.get("/health", headers={TRACE_HEADER: sent} if sent else {})
    assert res.status_code == 200
    tid = res.headers[TRACE_HEADER]
    assert tid == echoed if echoed else valid_trace_id(tid) and tid != sent
    http = [json.loads(ln) for ln in _lines(log_stream) if '"http request"' in ln]
    assert len(http) == 1
    assert http[0] | {"latency_ms": 0} == http[0] | {"trace_id": tid, "method": "GET", "path": "/health",
                                                       "status": 200, "level": "INFO", "latency_ms": 0}


def test_api_errors_are_logged_with_their_status(api, log_stream) -> None:
    res = api.get("/stores/NOPE/events", headers={TRACE_HEADER: "t-404"})
    assert res.status_code == 404 and res.headers[TRACE_HEADER] == "t-404"
    (http,) = [json.loads(ln) for ln in _lines(log_stream) if '"http request"' in ln]
    assert (http["status"], http["trace_id"]) == (404, "t-404")


# ---------------------------------------------------------------------------------- camera batches


class _Done:
    """What a Serve response is to the camera: something whose result() returns or raises."""

    def __init__(self, value: object) -> None:
        self.value = value

    def result(self) -> object:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@pytest.mark.parametrize(("value", "status"), [([1, 2], "ok"), (TimeoutError("detector"), "error")])
def test_each_detector_batch_logs_its_trace_latency_and_status(log_stream, value, status) -> None:
    from deployments.camera_actor import _Traced

    configure_logging("json", stream=log_stream, level=logging.DEBUG)
    call = _Traced(_Done(value), 2, {"store": "S1", "camera": "C1"})
    if status == "ok":
        assert call.result() == [1, 2]
    else:
        with pytest.raises(TimeoutError):
            call.result()
    (rec,) = [json.loads(ln) for ln in _lines(log_stream)]
    assert (rec["message"], rec["trace_id"], rec["frames"], rec["status"], rec["camera"]) == (
        "detector batch", call.trace_id, 2, status, "C1")
    assert rec["latency_ms"] >= 0
