"""SceneScape input: region events from Intel SceneScape's MQTT broker become visitor events of our stores.

Sites that already run SceneScape publish, per region of a scene, an event on
`scenescape/event/region/{scene_id}/{region_id}/{count|objects}` whenever objects enter or leave:

    {"timestamp": "...Z", "scene_id": "...", "scene_name": "...", "region_id": "...", "region_name": "aisle1",
     "entered": [{"id": "<person>", "category": "person", ...}],
     "exited": [{"object": {"id": "<person>", ...}, "dwell": 19.6}], ...}

Each entered person becomes a ZONE_ENTER and each exited one a ZONE_EXIT (with the dwell) of the zone
named like the region (`loss_prevention.scenescape.scenes[].zones` maps region names to zone types,
as Intel's scene-config does). Event ids derive from (scene, region, person, type, time), so the
`count` and `objects` twins of one event, and a message the broker redelivers, are stored once.

Delivery is at least once end to end: the adapter subscribes with QoS 1 on a persistent session and
acknowledges a message only after the store actor accepted its events (paho's manual ack); a
message that cannot be stored is not acknowledged and comes back after a reconnect.

The events go to the store's StoreActor (`append`), the same single writer our cameras use, so
the event log, analytics and the rule actor see SceneScape visitors exactly like camera visitors.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import ray

from workloads.config import FleetConfig
from workloads.events import EventType, VisitorEvent, deterministic_event_id
from workloads.lp.mqtt import make_client
from workloads.lp.settings import ScenescapeConfig, ScenescapeScene

log = logging.getLogger("storefleet.scenescape")

Sink = Callable[[list[VisitorEvent]], None]

NAMESPACE = "storefleet"
ACTOR_NAME = "scenescape"


def _time(raw: Any) -> datetime:
    ts = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class AdapterStats:
    messages: int = 0
    events: int = 0
    ignored: int = 0  #: messages of scenes or regions not configured
    malformed: int = 0
    sink_failures: int = 0
    last_error: str | None = None
    by_store: dict[str, int] = field(default_factory=dict)


class ScenescapeTranslator:
    """SceneScape region-event JSON -> visitor events (pure; the MQTT part is `ScenescapeAdapter`)."""

    def __init__(self, cfg: ScenescapeConfig) -> None:
        self.by_id = {s.scene_id: s for s in cfg.scenes if s.scene_id}
        self.by_name = {s.scene_name: s for s in cfg.scenes if s.scene_name}

    def scene(self, scene_id: str | None, scene_name: str | None) -> ScenescapeScene | None:
        return self.by_id.get(scene_id or "") or self.by_name.get(scene_name or "")

    def translate(self, topic: str, payload: dict[str, Any]) -> list[VisitorEvent] | None:
        """Events of one message; None when the scene or region is not configured (ignored)."""
        parts = topic.split("/")
        topic_scene = parts[3] if len(parts) > 3 else None
        topic_region = parts[4] if len(parts) > 4 else None
        scene = self.scene(payload.get("scene_id") or topic_scene, payload.get("scene_name"))
        if scene is None:
            return None
        region_id = str(payload.get("region_id") or topic_region or "")
        region_name = str(payload.get("region_name") or "")
        zone_id = region_name if region_name in scene.zones else region_id if region_id in scene.zones else None
        if zone_id is None:
            return None
        at = _time(payload["timestamp"])
        scene_key = scene.scene_id or scene.scene_name
        out: list[VisitorEvent] = []

        def event(etype: EventType, obj: dict[str, Any], dwell_s: float = 0.0) -> None:
            if (obj.get("category") or obj.get("type")) not in scene.categories:
                return
            person = str(obj["id"])
            out.append(VisitorEvent(
                event_id=deterministic_event_id("scenescape", scene_key, region_id, person, etype.value,
                                                at.isoformat()),
                store_id=scene.store_id, camera_id=scene.event_camera_id(), visitor_id=person, event_type=etype,
                timestamp=at, zone_id=zone_id, dwell_ms=max(0, round(dwell_s * 1000)),
                confidence=min(1.0, max(0.0, float(obj.get("confidence", 1.0)))),
            ))

        for obj in payload.get("entered") or []:
            event(EventType.ZONE_ENTER, obj)
        for item in payload.get("exited") or []:
            obj = item.get("object", item) if isinstance(item, dict) else {}
            event(EventType.ZONE_EXIT, obj, float(item.get("dwell", 0.0) or 0.0))
        return out


class StoreActorSink:
    """Hands events to the stores' actors (`store:<id>` in the storefleet namespace) and waits for the ack."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._handles: dict[str, Any] = {}

    def __call__(self, events: list[VisitorEvent]) -> None:
        by_store: dict[str, list[VisitorEvent]] = {}
        for e in events:
            by_store.setdefault(e.store_id, []).append(e)
        refs = []
        for store_id, batch in by_store.items():
            h = self._handles.get(store_id)
            if h is None:
                h = self._handles[store_id] = ray.get_actor(f"store:{store_id}", namespace=NAMESPACE)
            refs.append(h.append.remote(batch))
        try:
            ray.get(refs, timeout=self.timeout_s)
        except Exception:
            self._handles.clear()  # look the actors up again next time
            raise


class ScenescapeAdapter:
    """Subscribes to SceneScape region events and feeds them to `sink` (default: the store actors).

    Args:
        cfg: Broker, topic and scene -> store mapping.
        sink: Called with each message's events; must raise if they were not stored.
        retries: Tries of `sink` per message before leaving it unacknowledged (the broker resends it
            after a reconnect).
    """

    def __init__(self, cfg: ScenescapeConfig, sink: Sink | None = None, retries: int = 3,
                 retry_wait_s: float = 0.5) -> None:
        self.cfg, self.sink, self.retries, self.retry_wait_s = cfg, sink or StoreActorSink(), retries, retry_wait_s
        self.translator = ScenescapeTranslator(cfg)
        self.stats = AdapterStats()
        self.subscribed = threading.Event()
        self._failing = threading.Event()  #: a message could not be stored: stop acking, reconnect
        self._stopping = threading.Event()
        self.client = make_client(cfg, cfg.client_id, clean_session=False, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.warning("SceneScape broker refused the connection: %s", rc)
            return
        client.subscribe(self.cfg.topic, qos=self.cfg.qos)

    def handle(self, topic: str, payload: bytes) -> bool:
        """Translate and store one message. True when it may be acknowledged (stored, ignored or malformed)."""
        self.stats.messages += 1
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
            events = self.translator.translate(topic, doc)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.stats.malformed += 1
            self.stats.last_error = f"{topic}: {type(e).__name__}: {e}"
            log.warning("malformed SceneScape message on %s dropped: %s", topic, e)
            return True
        if events is None:
            self.stats.ignored += 1
            return True
        if not events:
            return True
        for attempt in range(self.retries):
            try:
                self.sink(events)
            except Exception as e:  # the store actor is restarting, Ray is busy, ...
                self.stats.sink_failures += 1
                self.stats.last_error = f"sink: {type(e).__name__}: {e}"
                log.warning("SceneScape events not stored (try %d/%d): %s", attempt + 1, self.retries, e)
                time.sleep(self.retry_wait_s * (attempt + 1))
            else:
                self.stats.events += len(events)
                for e in events:
                    self.stats.by_store[e.store_id] = self.stats.by_store.get(e.store_id, 0) + 1
                return True
        return False

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._failing.is_set():
            return  # after a failure nothing is acknowledged (keeps order): all of it comes back
        if self.handle(msg.topic, msg.payload):
            client.ack(msg.mid, msg.qos)
        else:
            self._failing.set()

    def _supervise(self) -> None:
        """After a message could not be stored: reconnect, so the broker resends what was not acknowledged."""
        while not self._stopping.wait(0.2):
            if self._failing.is_set():
                log.warning("reconnecting to SceneScape so that unstored messages are sent again")
                self.client.disconnect()
                self.client.loop_stop()
                self._stopping.wait(self.retry_wait_s)
                self.subscribed.clear()
                self._failing.clear()
                self._connect()

    def _connect(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def start(self) -> None:
        """Connect (retrying in the background until the broker is reachable) and consume in a thread."""
        self._connect()
        threading.Thread(target=self._supervise, name="scenescape-supervisor", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self.client.disconnect()
        self.client.loop_stop()


@ray.remote(max_restarts=-1, num_cpus=0.05, max_concurrency=2)
class ScenescapeActor:
    """The adapter inside the cluster (started by the fleet when `loss_prevention.scenescape` is set)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.adapter = ScenescapeAdapter(ScenescapeConfig.model_validate(cfg))
        self.adapter.start()

    def ping(self) -> str:
        return ACTOR_NAME

    def stats(self) -> dict[str, Any]:
        s = self.adapter.stats
        return {**s.__dict__, "subscribed": self.adapter.subscribed.is_set()}


def start_scenescape(config: FleetConfig) -> dict[str, Any]:
    """`{"@scenescape": actor}` when the fleet configures SceneScape input, else `{}`."""
    ss = config.loss_prevention.scenescape
    if ss is None:
        return {}
    stores = {s.id for s in config.stores}
    unknown = sorted({s.store_id for s in ss.scenes} - stores)
    if unknown:
        raise ValueError(f"loss_prevention.scenescape.scenes name stores that are not in the fleet: {unknown}")
    actor = ScenescapeActor.options(name=ACTOR_NAME, namespace=NAMESPACE, get_if_exists=True).remote(
        ss.model_dump(mode="json"))
    ray.get(actor.ping.remote())
    return {"@scenescape": actor}
