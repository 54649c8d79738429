"""Alert delivery to a real Mosquitto broker and a real HTTP webhook, with retries and dead letters."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import paho.mqtt.client as mqtt
import pytest

from tests.test_lp_processor import ev, visit
from tests.test_lp_runner import DEFAULT_ALERTS, drain, make_runner
from workloads.lp.alert_config import load_alert_config
from workloads.lp.delivery import AlertDelivery
from workloads.lp.settings import MqttBrokerConfig
from workloads.state import keys
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration


def _subscriber(host: str, port: int, topic: str) -> tuple[mqtt.Client, list[tuple[str, dict]]]:
    got: list[tuple[str, dict]] = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda cl, u, mid, rc, p: ready.set()
    c.on_message = lambda cl, u, m: got.append((m.topic, json.loads(m.payload)))
    c.connect(host, port)
    c.loop_start()
    assert ready.wait(5), "subscription not confirmed"
    return c, got


def _alerts(redis_client) -> None:
    EventLog(redis_client).append([ev(0, "ZONE_ENTER", "R"), *visit(0, "HV", 5, visitor="b"),
                                   ev(20, "EXIT", visitor="b")])
    drain(make_runner(redis_client))


def _deliver_all(d: AlertDelivery) -> int:
    n = 0
    while (k := d.step(block_ms=10)) > 0:
        n += k
    return n


def test_alerts_reach_their_mqtt_topics(redis_client, mqtt_broker) -> None:
    host, port = mqtt_broker
    sub, got = _subscriber(host, port, "storefleet/alerts/#")
    try:
        _alerts(redis_client)
        d = AlertDelivery(redis_client, "S1", DEFAULT_ALERTS, MqttBrokerConfig(host=host, port=port))
        assert _deliver_all(d) == 2
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted((t, a["alert_type"]) for t, a in got) == [
            ("storefleet/alerts/checkout_bypass", "CHECKOUT_BYPASS"),
            ("storefleet/alerts/zone_violation", "ZONE_VIOLATION"),
        ]
        assert d.stats.delivered == {"mqtt": 2, "log": 2}
        # A restarted worker resumes after its cursor: nothing is sent twice.
        again = AlertDelivery(redis_client, "S1", DEFAULT_ALERTS, MqttBrokerConfig(host=host, port=port))
        assert _deliver_all(again) == 0
        d.close()
    finally:
        sub.loop_stop()
        sub.disconnect()


class _Hook(BaseHTTPRequestHandler):
    fail_first: ClassVar[set[str]] = set()
    seen: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        type(self).seen.append((key, body))
        if key not in type(self).fail_first:
            type(self).fail_first.add(key)
            self.send_response(503)  # every alert fails once, then goes through
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Hook.fail_first, _Hook.seen = set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()


def _webhook_config(url: str, attempts: int = 3) -> str:
    return json.dumps({"service": {"retry_attempts": attempts, "retry_interval_seconds": 0.01},
                       "subscriptions": [{"alert_type": t, "delivery": [{"type": "webhook", "url": url}]}
                                         for t in ("ZONE_VIOLATION", "CHECKOUT_BYPASS")]})


def test_webhook_retries_until_delivered(redis_client, webhook) -> None:
    _alerts(redis_client)
    d = AlertDelivery(redis_client, "S1", load_alert_config(_webhook_config(webhook)))
    assert _deliver_all(d) == 2
    assert d.stats.delivered == {"webhook": 2} and d.stats.failed == {}
    keys_seen = [k for k, _ in _Hook.seen]
    assert len(keys_seen) == 4 and len(set(keys_seen)) == 2  # each alert: one 503, one 200
    assert all(body["alert_id"] == k for k, body in _Hook.seen)
    assert redis_client.xlen(keys.lp_delivery_failed("S1")) == 0


def test_dead_channels_go_to_the_undelivered_stream_and_delivery_moves_on(redis_client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here once the socket closes
    _alerts(redis_client)
    cfg = load_alert_config(json.dumps({
        "service": {"retry_attempts": 2, "retry_interval_seconds": 0.01},
        "subscriptions": [{"alert_type": "ZONE_VIOLATION", "delivery": [
            {"type": "webhook", "url": f"http://127.0.0.1:{dead_port}/x", "timeout_seconds": 1},
            {"type": "mqtt", "topic": "t", "timeout_seconds": 0.5}, {"type": "log"}]}],
    }))
    d = AlertDelivery(redis_client, "S1", cfg, MqttBrokerConfig(host="127.0.0.1", port=dead_port))
    assert _deliver_all(d) == 2  # both alerts handled; CHECKOUT_BYPASS has no channels here
    assert d.stats.failed == {"webhook": 1, "mqtt": 1} and d.stats.delivered == {"log": 1}
    rows = redis_client.xrange(keys.lp_delivery_failed("S1"))
    assert sorted(f[b"channel"].decode().split(":")[0] for _, f in rows) == ["mqtt", "webhook"]
    d.close()


def test_mqtt_channels_are_skipped_without_a_broker(redis_client) -> None:
    _alerts(redis_client)
    d = AlertDelivery(redis_client, "S1", DEFAULT_ALERTS, mqtt=None)
    assert _deliver_all(d) == 2
    assert d.stats.skipped == {"mqtt": 2} and d.stats.delivered == {"log": 2} and d.stats.failed == {}
    assert redis_client.xlen(keys.lp_delivery_failed("S1")) == 0
