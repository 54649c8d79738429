"""Loss-prevention records: sessions (per visitor), alerts, escalation requests, behavioural-analysis results.

The pydantic field descriptions are the API documentation (`/docs`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from workloads.events import UtcDatetime

#: Namespace of alert and escalation ids: uuid5(namespace, what caused it), so a replay makes the same id.
LP_NAMESPACE = uuid.UUID("0b7d7c2e-8f55-4a53-9d1e-6a3f1f6c2b90")

#: Zone ids of the store boundary: crossing the entrance / exit line of an entrance camera.
ENTRANCE_ZONE = "@entrance"
EXIT_ZONE = "@exit"


def derived_id(*parts: object) -> str:
    return str(uuid.uuid5(LP_NAMESPACE, "|".join(str(p) for p in parts)))


class Visit(BaseModel):
    """An open visit of a zone (between its ZONE_ENTER and ZONE_EXIT)."""

    zone_id: str
    zone_type: str | None = None
    entered_at: UtcDatetime
    entry_event_id: str = Field(description="Event that opened the visit; identifies the visit.")
    camera_id: str


class Session(BaseModel):
    """One visitor's loss-prevention state in a store, from their first event until it expires."""

    store_id: str
    visitor_id: str
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    camera_id: str = Field(description="Camera of the latest event.")
    events: int = Field(0, description="Events applied to the session.")
    zone_visit_counts: dict[str, int] = Field(default_factory=dict, description="Zone id -> entries.")
    flags: dict[str, bool] = Field(default_factory=dict, description="Session flags that were set.")
    open_visits: dict[str, Visit] = Field(default_factory=dict, description="Zones the visitor is in now.")
    fired: set[str] = Field(default_factory=set, description="fire_once_per marks: `ALERT_TYPE|zone|Z`, "
                            "`ALERT_TYPE|session`.")
    loitered: set[str] = Field(default_factory=set, description="zone_loiter rules done per visit: `rule|visit`.")
    escalations: dict[str, str] = Field(default_factory=dict, description="Zone id -> open escalation id.")
    last_ba: dict[str, Any] | None = Field(None, description="The latest behavioural-analysis result.")


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EvidenceRef(BaseModel):
    """What backs an alert: an event, a behavioural-analysis result, or a clip window of a camera."""

    kind: Literal["event", "ba_result", "clip"]
    id: str | None = Field(None, description="Event id or result id.")
    camera_id: str | None = None
    at: datetime | None = Field(None, description="Time of the event / result, or start of the clip.")
    until: datetime | None = Field(None, description="End of the clip.")


class Alert(BaseModel):
    """A loss-prevention alert. `alert_id` derives from what caused it, so a replay never duplicates it."""

    model_config = ConfigDict(use_enum_values=True)

    alert_id: str
    alert_type: str = Field(description="From the rule: ZONE_VIOLATION, LOITERING, REPEATED_VISIT, ...")
    severity: str = Field(description="INFO, WARNING or CRITICAL (after severity_if escalation).")
    rule_id: str
    rule_name: str = ""
    store_id: str
    visitor_id: str
    zone_id: str | None = None
    zone_type: str | None = None
    camera_id: str | None = None
    timestamp: UtcDatetime = Field(description="Event time of what fired it.")
    created_at: UtcDatetime = Field(description="Wall time the rule actor created it.")
    details: dict[str, Any] = Field(default_factory=dict, description="From the rule's `details:` block.")
    evidence: list[EvidenceRef] = Field(default_factory=list)
    status: AlertStatus = AlertStatus.OPEN
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    note: str | None = Field(None, description="Operator's note from acknowledge / resolve.")

    def view(self) -> dict[str, Any]:
        """The alert as the alert-config dedup fields see it (Intel's alert shape under `metadata`)."""
        doc = self.model_dump(mode="json", exclude={"status", "acknowledged_by", "acknowledged_at",
                                                      "resolved_by", "resolved_at", "note"})
        doc["metadata"] = {
            "person_id": self.visitor_id, "zone_id": self.zone_id, "region_id": self.zone_id,
            "scene_id": self.store_id, "store_id": self.store_id, "camera_id": self.camera_id,
            "zone_type": self.zone_type, "rule_id": self.rule_id,
        }
        return doc


IMMUTABLE_ALERT_FIELDS = {"status", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "note"}


class Escalation(BaseModel):
    """A request to an escalation service (e.g. behavioural analysis): start watching a visit, or stop."""

    escalation_id: str
    action: Literal["start", "stop"]
    service: str = Field(description="Name in the rules' `services:`.")
    handler: str = Field(description="The service's handler (e.g. ba_orchestrator).")
    rule_id: str
    store_id: str
    visitor_id: str
    zone_id: str | None = None
    zone_type: str | None = None
    camera_id: str | None = None
    visit_id: str | None = Field(None, description="Event id that opened the visit being watched.")
    at: UtcDatetime
    params: dict[str, Any] = Field(default_factory=dict)


class BaResult(BaseModel):
    """A behavioural-analysis result (Intel's `ba/results` fields are accepted as they are)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    result_id: str | None = Field(None, description="Unique id; default: derived from the content, so a "
                                  "retried post is applied once.")
    visitor_id: str = Field(min_length=1, validation_alias=AliasChoices("visitor_id", "person_id", "object_id"))
    zone_id: str | None = Field(None, validation_alias=AliasChoices("zone_id", "region_id"))
    status: str = Field(min_length=1, description="suspicious, no_match, no_enough_data, ...")
    confidence: float | None = None
    frames_analyzed: int = 0
    vlm_response: str = ""
    last_frame_ts: UtcDatetime | None = None
    timestamp: UtcDatetime | None = Field(None, description="When; default: last_frame_ts, else arrival time.")
    source: str = Field("behavioral_analysis", description="Matched against session_flags' `source`.")

    def with_id(self) -> BaResult:
        if self.result_id:
            return self
        body = self.model_dump(mode="json", exclude={"result_id"})
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        return self.model_copy(update={"result_id": derived_id("ba", digest)})
