"""Alert delivery: tail the store's alert stream and send each alert to the channels its alert-config
subscription names (MQTT topic, HTTP webhook, log), with retries.

At least once: the delivery cursor moves after an alert's channels were all tried, so a crash
re-sends at most the alert in flight. Receivers deduplicate by alert id (MQTT payload `alert_id`,
webhook header `Idempotency-Key`). An alert that still fails after `retry_attempts` goes to the
store's undelivered stream, and delivery moves on: one dead channel never blocks the rules (they
run in another thread) nor later alerts for long.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import redis
from tenacity import Retrying, stop_after_attempt, wait_fixed

from workloads.lp.alert_config import AlertConfig, Delivery
from workloads.lp.mqtt import MqttPublisher
from workloads.lp.settings import MqttBrokerConfig
from workloads.state import keys

log = logging.getLogger("storefleet.lp.alerts")

CONSUMER = "lp-delivery"


@dataclass
class DeliveryStats:
    delivered: dict[str, int] = field(default_factory=dict)  #: channel type -> alerts
    failed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  #: channels the fleet does not configure (MQTT)
    last_error: str | None = None


class AlertDelivery:
    """Delivery worker of one store. `sleep` is injectable so tests need not wait between retries."""

    def __init__(self, client: redis.Redis, store_id: str, alert_config: AlertConfig,
                 mqtt: MqttBrokerConfig | None = None, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.client, self.store_id, self.cfg, self.mqtt_cfg = client, store_id, alert_config, mqtt
        self.stream = keys.lp_alerts_stream(store_id)
        self.cursor_key = keys.consumer_cursor(store_id, CONSUMER)
        self.http = http or httpx.Client()
        self._mqtt: MqttPublisher | None = None
        self._sleep = sleep
        self.stats = DeliveryStats()

    def position(self) -> str:
        raw = self.client.get(self.cursor_key)
        return (raw.decode() if isinstance(raw, bytes) else raw) or "0-0"

    def _publisher(self) -> MqttPublisher:
        if self._mqtt is None:
            self._mqtt = MqttPublisher(self.mqtt_cfg, f"storefleet-lp-{self.store_id}")
        return self._mqtt

    def _send(self, ch: Delivery, alert: dict[str, Any], payload: str) -> None:
        if ch.type == "log":
            log.warning("ALERT %s %s store=%s visitor=%s zone=%s id=%s", alert.get("alert_type"),
                        alert.get("severity"), alert.get("store_id"), alert.get("visitor_id"),
                        alert.get("zone_id"), alert.get("alert_id"))
        elif ch.type == "mqtt":
            self._publisher().publish(ch.topic or "", payload, qos=ch.qos, timeout_s=ch.timeout_seconds)
        else:
            r = self.http.post(ch.url or "", content=payload, timeout=ch.timeout_seconds,
                               headers={"Content-Type": "application/json",
                                        "Idempotency-Key": str(alert.get("alert_id"))})
            r.raise_for_status()

    def deliver(self, payload: str) -> None:
        """Every channel of the alert's type, each retried; failures go to the undelivered stream."""
        alert = json.loads(payload)
        sub = self.cfg.for_type(str(alert.get("alert_type")))
        svc = self.cfg.service
        for ch in sub.delivery:
            if ch.type == "mqtt" and self.mqtt_cfg is None:  # MQTT is optional: no broker, no MQTT channel
                if not self.stats.skipped:
                    log.info("%s: alert-config names MQTT topics but loss_prevention.mqtt is not set; "
                             "MQTT delivery is skipped", self.store_id)
                self.stats.skipped[ch.type] = self.stats.skipped.get(ch.type, 0) + 1
                continue
            kwargs: dict[str, Any] = {"stop": stop_after_attempt(svc.retry_attempts),
                                      "wait": wait_fixed(svc.retry_interval_seconds), "reraise": True}
            if self._sleep is not None:
                kwargs["sleep"] = self._sleep
            try:
                for attempt in Retrying(**kwargs):
                    with attempt:
                        self._send(ch, alert, payload)
            except Exception as e:  # a channel failed for good: record it, go on with the others
                self.stats.failed[ch.type] = self.stats.failed.get(ch.type, 0) + 1
                self.stats.last_error = f"{ch.name}: {type(e).__name__}: {e}"
                log.error("%s: alert %s not delivered to %s after %d tries: %s", self.store_id,
                          alert.get("alert_id"), ch.name, svc.retry_attempts, e)
                self.client.xadd(keys.lp_delivery_failed(self.store_id),
                                 {"alert_id": str(alert.get("alert_id")), "channel": ch.name, "error": str(e),
                                  "at": datetime.now(UTC).isoformat()}, maxlen=100_000, approximate=True)
            else:
                self.stats.delivered[ch.type] = self.stats.delivered.get(ch.type, 0) + 1

    def step(self, block_ms: int | None = 1000, count: int = 100) -> int:
        res = self.client.xread({self.stream: self.position()}, count=count, block=block_ms)
        if not res:
            return 0
        n = 0
        for entry_id, fields in res[0][1]:
            raw = fields.get(b"json") if b"json" in fields else fields.get("json")
            self.deliver(raw.decode() if isinstance(raw, bytes) else raw)
            self.client.set(self.cursor_key, entry_id)
            n += 1
        return n

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step(block_ms=500)
            except redis.RedisError as e:
                log.warning("%s: alert delivery cannot read Redis, retrying: %s", self.store_id, e)
                stop.wait(1.0)

    def close(self) -> None:
        if self._mqtt is not None:
            self._mqtt.close()
        self.http.close()
