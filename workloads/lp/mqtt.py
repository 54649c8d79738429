"""A small blocking MQTT publisher over paho-mqtt (alert delivery), with connection settings from config."""

from __future__ import annotations

import os
import ssl
import threading

import paho.mqtt.client as mqtt

from workloads.lp.settings import MqttBrokerConfig


def make_client(cfg: MqttBrokerConfig, client_id: str, clean_session: bool = True,
                manual_ack: bool = False) -> mqtt.Client:
    """A paho client (callback API v2) with the config's credentials and TLS."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                         manual_ack=manual_ack)
    if cfg.username_env:
        client.username_pw_set(os.environ.get(cfg.username_env, ""),
                               os.environ.get(cfg.password_env, "") if cfg.password_env else None)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca_cert, cert_reqs=ssl.CERT_REQUIRED)
    return client


class MqttPublisher:
    """Connects on first use, reconnects in paho's background loop; `publish` waits for the broker's ack."""

    def __init__(self, cfg: MqttBrokerConfig, client_id: str) -> None:
        self.cfg = cfg
        self.client = make_client(cfg, client_id)
        self._connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda c, u, f, rc, p: self._connected.clear()
        self._started = False

    def _ensure(self, timeout_s: float) -> None:
        if not self._started:
            self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
            self.client.loop_start()
            self._started = True
        if not self._connected.wait(timeout_s):
            raise ConnectionError(f"MQTT broker {self.cfg.host}:{self.cfg.port} not reachable")

    def publish(self, topic: str, payload: str, qos: int = 1, timeout_s: float = 5.0) -> None:
        self._ensure(timeout_s)
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"MQTT publish to {topic} not acknowledged within {timeout_s} s")

    def close(self) -> None:
        if self._started:
            self.client.loop_stop()
            self.client.disconnect()
