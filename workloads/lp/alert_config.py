"""The alert-config file (format of Intel's loss-prevention alert service): per alert type, a
time-window dedup over a hash of chosen fields, and delivery channels.

This is the second dedup layer: a rule's `fire_once_per` stops repeats within one visitor's session,
this one stops near-duplicates across sessions and rules within a time window (e.g. the same person
and zone from two cameras).

Example:
    >>> cfg = load_alert_config(DEFAULT_ALERT_CONFIG_FILE.read_text())
    >>> cfg.for_type("LOITERING").dedup.window_seconds
    120.0
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workloads.lp.settings import DEFAULT_ALERT_CONFIG_FILE

__all__ = ["DEFAULT_ALERT_CONFIG_FILE", "AlertConfig", "AlertConfigError", "dedup_key", "load_alert_config"]


class AlertConfigError(ValueError):
    """An alert-config file that cannot be used; names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceSettings(_Strict):
    retry_attempts: int = Field(3, ge=1, le=100, description="Tries per alert and channel before giving up.")
    retry_interval_seconds: float = Field(5.0, ge=0, description="Wait between tries.")


class HashSettings(_Strict):
    algorithm: Literal["sha1", "sha256", "md5", "blake2b"] = "sha1"
    truncate: int = Field(16, ge=4, le=128, description="Hex characters of the digest kept.")


class DedupSettings(_Strict):
    enabled: bool = False
    strategy: Literal["field_hash"] = "field_hash"
    fields: list[str] = Field(default_factory=list, description="Paths into the alert, e.g. metadata.person_id.")
    window_seconds: float = Field(0.0, ge=0)
    on_missing: Literal["skip", "drop"] = Field("skip", description="A field is missing: skip dedup, or drop.")
    hash: HashSettings = Field(default_factory=HashSettings)

    @model_validator(mode="after")
    def _usable(self) -> DedupSettings:
        if self.enabled and (not self.fields or self.window_seconds <= 0):
            raise ValueError("enabled dedup needs fields and window_seconds > 0")
        return self


class Delivery(_Strict):
    type: Literal["mqtt", "webhook", "log"]
    topic: str | None = None
    url: str | None = None
    timeout_seconds: float = Field(5.0, gt=0)
    qos: Literal[0, 1, 2] = 1

    @model_validator(mode="after")
    def _target(self) -> Delivery:
        if self.type == "mqtt" and not self.topic:
            raise ValueError("mqtt delivery needs a topic")
        if self.type == "webhook" and not (self.url and self.url.startswith(("http://", "https://"))):
            raise ValueError("webhook delivery needs an http(s) url")
        return self

    @property
    def name(self) -> str:
        return f"{self.type}:{self.topic or self.url or ''}"


class Subscription(_Strict):
    alert_type: str
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    delivery: list[Delivery] = Field(default_factory=list)


class AlertConfig(_Strict):
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    subscriptions: list[Subscription] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AlertConfig:
        types = [s.alert_type for s in self.subscriptions]
        dupes = sorted({t for t in types if types.count(t) > 1})
        if dupes:
            raise ValueError(f"alert types with more than one subscription: {dupes}")
        return self

    def for_type(self, alert_type: str) -> Subscription:
        for s in self.subscriptions:
            if s.alert_type == alert_type:
                return s
        return Subscription(alert_type=alert_type)


def _path(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def dedup_key(sub: Subscription, alert_view: dict[str, Any]) -> str | None:
    """The alert's dedup hash, None for no dedup; `"drop"` when a field is missing and on_missing is drop."""
    d = sub.dedup
    if not d.enabled:
        return None
    values = [_path(alert_view, f) for f in d.fields]
    if any(v is None or v == "" for v in values):
        return "drop" if d.on_missing == "drop" else None
    h = hashlib.new(d.hash.algorithm)
    h.update("\x1f".join([sub.alert_type, *(str(v) for v in values)]).encode())
    return h.hexdigest()[: d.hash.truncate]


def load_alert_config(text: str, source: str = "alert-config") -> AlertConfig:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise AlertConfigError(f"{source}: not valid YAML: {e}") from None
    try:
        return AlertConfig.model_validate(raw)
    except ValidationError as e:
        lines = [f"{source}: {e.error_count()} problem(s) in the alert config"]
        for err in e.errors():
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            lines.append(f"  - {loc or '(top level)'}: {err['msg'].removeprefix('Value error, ')}")
        raise AlertConfigError("\n".join(lines)) from None


def load_alert_config_file(path: str | Path) -> AlertConfig:
    p = Path(path)
    try:
        return load_alert_config(p.read_text(), str(p))
    except OSError as e:
        raise AlertConfigError(f"{p}: cannot read: {e.strerror or e}") from None
