"""Loss-prevention settings of a fleet (the `loss_prevention` field of the fleet config).

Kept free of imports from `workloads.config` (which imports this module), so zone types are spelled
out here; a test checks they match `workloads.config.ZoneType`.

Example:
    >>> LossPreventionConfig().enabled
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ZoneTypeName = Literal["ENTRY", "PRODUCT", "HIGH_VALUE", "BILLING_QUEUE", "CHECKOUT", "EXIT", "RESTRICTED"]

PACKAGE_RULES = Path(__file__).with_name("rules")
DEFAULT_RULES_FILE = PACKAGE_RULES / "default_rules.yaml"
DEFAULT_ALERT_CONFIG_FILE = PACKAGE_RULES / "alert-config.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttBrokerConfig(_Strict):
    host: str = Field("127.0.0.1", description="MQTT broker host.")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port.")
    username_env: str | None = Field(None, description="Environment variable holding the MQTT user name.")
    password_env: str | None = Field(None, description="Environment variable holding the MQTT password.")
    tls: bool = Field(False, description="Connect with TLS (system CA store, or `ca_cert`).")
    ca_cert: str | None = Field(None, description="CA certificate file for TLS.")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive in seconds.")


class ScenescapeScene(_Strict):
    scene_id: str | None = Field(None, description="SceneScape scene UUID (topic level 4); or give `scene_name`.")
    scene_name: str | None = Field(None, description="SceneScape scene name, matched against `scene_name`.")
    store_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="The fleet store this scene is.")
    camera_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="`camera_id` of the events made from this scene (default: `scenescape.<scene>`).",
    )
    zones: dict[str, ZoneTypeName] = Field(
        description="SceneScape region name (or UUID) -> zone type, as in Intel's scene-config `zones`. The "
        "region name becomes the event's `zone_id`; regions not listed are ignored."
    )
    categories: list[str] = Field(["person"], description="Object categories that are visitors.")

    @model_validator(mode="after")
    def _one_key(self) -> ScenescapeScene:
        if not (self.scene_id or self.scene_name):
            raise ValueError("give scene_id or scene_name")
        return self

    def event_camera_id(self) -> str:
        return self.camera_id or f"scenescape.{self.scene_id or self.scene_name}".replace(" ", "_")[:64]


class ScenescapeConfig(MqttBrokerConfig):
    topic: str = Field(
        "scenescape/event/region/+/+/count",
        description="Region-event topic filter. SceneScape publishes each entry/exit on both `count` and "
        "`objects`; subscribing to one is enough (both give the same event ids anyway).",
    )
    client_id: str = Field("storefleet-scenescape", description="MQTT client id; a persistent session keeps "
                           "messages for it while the adapter is down.")
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS; 1 redelivers what was not acknowledged.")
    scenes: list[ScenescapeScene] = Field(min_length=1, description="Scenes to feed into stores.")


class LossPreventionConfig(_Strict):
    enabled: bool = Field(True, description="Run one rule actor per store.")
    rules_file: str | None = Field(
        None,
        description="Rules YAML in the format of Intel's store-wide loss-prevention application "
        "(default: the shipped `workloads/lp/rules/default_rules.yaml`). Read when the fleet starts; when "
        "the rule actors can read the path too, edits are hot-reloaded (an invalid edit keeps the old rules).",
    )
    alert_config_file: str | None = Field(
        None, description="Alert-config YAML: time-window dedup and delivery per alert type (default: shipped)."
    )
    mqtt: MqttBrokerConfig | None = Field(
        None, description="Broker for alert delivery to MQTT topics (alert-config `delivery: [{type: mqtt}]`)."
    )
    scenescape: ScenescapeConfig | None = Field(
        None, description="Feed SceneScape region events (MQTT) into stores, instead of or beside cameras."
    )

    def rules_path(self) -> Path:
        return Path(self.rules_file) if self.rules_file else DEFAULT_RULES_FILE

    def alert_config_path(self) -> Path:
        return Path(self.alert_config_file) if self.alert_config_file else DEFAULT_ALERT_CONFIG_FILE
