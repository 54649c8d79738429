"""Markdown reference of the fleet config, generated from the pydantic models' field descriptions.

docs/configuration.md is this function's output; a test fails when the two drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from workloads import config as c
from workloads.access import ApiConfig, ApiKeyConfig
from workloads.analytics.settings import AnalyticsConfig
from workloads.behaviour import settings as ba
from workloads.inventory import settings as inv
from workloads.lp import settings as lp

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Fleet (top level)", c.FleetConfig),
    ("detector", c.DetectorConfig),
    ("tracker", c.TrackerConfig),
    ("stores[]", c.StoreConfig),
    ("stores[].cameras[]", c.CameraConfig),
    ("stores[].cameras[].zones[]", c.ZoneConfig),
    ("stores[].cameras[].tripwires[]", c.TripwireConfig),
    ("stores[].staff[] (kind: uniform_colour)", c.UniformColourRule),
    ("stores[].staff[] (kind: staff_zone)", c.StaffZoneRule),
    ("api", ApiConfig),
    ("api.keys[]", ApiKeyConfig),
    ("analytics", AnalyticsConfig),
    ("loss_prevention", lp.LossPreventionConfig),
    ("loss_prevention.mqtt", lp.MqttBrokerConfig),
    ("loss_prevention.scenescape", lp.ScenescapeConfig),
    ("loss_prevention.scenescape.scenes[]", lp.ScenescapeScene),
    ("inventory", inv.InventoryConfig),
    ("inventory.cleaning", inv.CleaningRules),
    ("inventory.llm_planner", inv.LlmPlannerConfig),
    ("stores[].inventory", inv.StoreInventoryConfig),
    ("stores[].inventory.planogram[]", inv.ShelfSegment),
    ("stores[].inventory.gap_detector (kind: classical)", inv.ClassicalGapDetectorConfig),
    ("stores[].inventory.gap_detector (kind: box_model)", inv.BoxModelGapDetectorConfig),
    ("behaviour", ba.BehaviourConfig),
    ("behaviour.evidence", ba.EvidenceConfig),
    ("behaviour.evidence.s3", ba.S3Config),
    ("behaviour.prefilter", ba.PrefilterConfig),
    ("behaviour.vlm", ba.VlmConfig),
]


def _type(f: FieldInfo) -> str:
    a = f.annotation
    if isinstance(a, type):
        return a.__name__
    return str(a).replace("typing.", "").replace("workloads.config.", "")


def _default(f: FieldInfo) -> str:
    if f.default is PydanticUndefined:
        return "required" if f.default_factory is None else "(empty)"
    d: Any = f.default
    return f"`{getattr(d, 'value', d)}`"


def render() -> str:
    out = [
        "# Fleet configuration reference",
        "",
        "Generated from the pydantic models in `workloads/config.py` (`storefleet config docs`); "
        "check a file with `storefleet config validate FILE`.",
        "",
    ]
    for title, model in SECTIONS:
        out += [f"## {title}", "", "| field | type | default | meaning |", "|---|---|---|---|"]
        for name, f in model.model_fields.items():
            desc = (f.description or "").replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{name}` | `{_type(f)}` | {_default(f)} | {desc} |")
        out.append("")
    return "\n".join(out)
