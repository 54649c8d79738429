"""Fleet configuration: stores, cameras, zones, tripwires, staff rules, detector and tracker settings.

The pydantic models are the documentation: every field's description is what `storefleet config
schema` prints and what docs/configuration.md is generated from. A wrong file fails at load with
the file, the field path and what is wrong (see `load_fleet_config`).

Example:
    >>> cfg = FleetConfig.model_validate({"stores": [{"id": "S1", "cameras": [
    ...     {"id": "C1", "source": "synthetic:empty"}]}]})
    >>> cfg.stores[0].cameras[0].target_fps
    5.0
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workloads.access import ApiConfig
from workloads.analytics.settings import AnalyticsConfig
from workloads.behaviour.settings import BehaviourConfig
from workloads.inventory.settings import InventoryConfig, StoreInventoryConfig
from workloads.lp.settings import LossPreventionConfig

Point = tuple[float, float]
_ID = r"^[A-Za-z0-9_.-]+$"


class ZoneType(StrEnum):
    ENTRY = "ENTRY"
    PRODUCT = "PRODUCT"
    HIGH_VALUE = "HIGH_VALUE"
    BILLING_QUEUE = "BILLING_QUEUE"
    CHECKOUT = "CHECKOUT"
    EXIT = "EXIT"
    RESTRICTED = "RESTRICTED"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneConfig(_Strict):
    id: str = Field(
        pattern=_ID, title="Zone id", description="Unique within the store; appears as `zone_id` in events."
    )
    type: ZoneType = Field(title="Zone type", description="What the zone means for analytics and rules.")
    polygon: list[Point] = Field(
        min_length=3,
        title="Polygon",
        description="Corners in pixel coordinates of the camera frame, in order. A person is inside when the "
        "bottom-centre of their box (their feet) is inside.",
    )
    sku_zone: str | None = Field(None, description="Product category shown in heatmaps and events' `sku_zone`.")
    min_inside_s: float = Field(
        0.4, ge=0, description="A person must be inside this long before ZONE_ENTER fires (debounces box jitter)."
    )
    exit_grace_s: float = Field(
        1.0, ge=0, description="A person must be outside this long before ZONE_EXIT fires (bridges brief occlusion)."
    )
    dwell_threshold_s: float = Field(
        10.0, gt=0, description="ZONE_DWELL fires once per visit when the dwell passes this many seconds."
    )
    abandon_grace_s: float = Field(
        3.0,
        ge=0,
        description="BILLING_QUEUE only: leaving the queue without reaching a CHECKOUT zone within this many "
        "seconds is BILLING_QUEUE_ABANDON.",
    )

    @field_validator("polygon")
    @classmethod
    def _non_degenerate(cls, pts: list[Point]) -> list[Point]:
        area = 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True)))
        if area < 1.0:
            raise ValueError("polygon has (almost) no area: check the corner order and coordinates")
        return pts


class TripwireConfig(_Strict):
    id: str = Field(pattern=_ID, description="Unique within the camera.")
    points: tuple[Point, Point] = Field(description="The line's two ends, pixel coordinates.")
    inside_point: Point = Field(
        description="Any point on the store side of the line. Crossing towards it is ENTRY, away from it EXIT."
    )
    min_travel_px: float = Field(
        8.0, ge=0, description="Feet must end at least this far from the line to count (rejects jitter on it)."
    )

    @model_validator(mode="after")
    def _inside_not_on_line(self) -> TripwireConfig:
        (x0, y0), (x1, y1) = self.points
        if math.dist((x0, y0), (x1, y1)) < 1.0:
            raise ValueError("points: the two ends are the same point")
        cross = (x1 - x0) * (self.inside_point[1] - y0) - (y1 - y0) * (self.inside_point[0] - x0)
        if abs(cross) < 1e-6:
            raise ValueError("inside_point lies on the tripwire line; pick a point clearly on the store side")
        return self


class CameraRole(StrEnum):
    ENTRANCE = "entrance"
    FLOOR = "floor"
    BILLING = "billing"
    SHELF = "shelf"


#: Detector input size per camera role, for cameras that set none when the fleet's `detector` names
#: no `input_size` either. Measured (docs/accuracy.md): at 640 the detector finds 19 % of people under
#: 100 px tall and 99-100 % from 100 px up; at 960, 93 % of the small ones, for 2.6x the time.
#: Entrance, floor and billing cameras see people that small; shelf cameras see them up close.
ROLE_INPUT_SIZE: dict[CameraRole, int] = {
    CameraRole.ENTRANCE: 960,
    CameraRole.FLOOR: 960,
    CameraRole.BILLING: 960,
    CameraRole.SHELF: 640,
}


class CameraConfig(_Strict):
    id: str = Field(pattern=_ID, description="Unique within the fleet; appears as `camera_id` in events.")
    role: CameraRole = Field(CameraRole.FLOOR, description="What the camera looks at; picks role defaults.")
    source: str = Field(
        description="Where frames come from: a file path (relative to the config file), `bundled:vtest.avi` for "
        "the demo footage, `rtsp://` / `http(s)://` streams, or `synthetic:<scene>`."
    )
    target_fps: float = Field(5.0, gt=0, le=60, description="Frames per second sent to the detector.")
    loop: bool = Field(True, description="Restart a file source at its end (demo / soak); false plays it once.")
    realtime: bool = Field(
        True,
        description="Pace a file source at its native speed as if live. False is backfill: as fast as the "
        "detector allows, no frame dropped.",
    )
    max_frames: int | None = Field(
        None, ge=1, description="Stop after this many processed frames, as if the feed ended (tests, benchmarks)."
    )
    input_size: int | None = Field(
        None,
        ge=160,
        le=1920,
        multiple_of=32,
        description="Detector input size for this camera. Default: the fleet detector's `input_size` when the "
        "file sets one, else the role's (entrance, floor, billing 960; shelf 640: people under 100 px tall need 960).",
    )
    zones: list[ZoneConfig] = Field(default_factory=list, description="Areas of this camera's view.")
    tripwires: list[TripwireConfig] = Field(
        default_factory=list, description="Door lines: crossing them is ENTRY / EXIT (entrance cameras)."
    )


class UniformColourRule(_Strict):
    kind: Literal["uniform_colour"] = "uniform_colour"
    hsv_low: tuple[int, int, int] = Field(description="Lower HSV bound (OpenCV scale: H 0-179, S and V 0-255).")
    hsv_high: tuple[int, int, int] = Field(description="Upper HSV bound.")
    min_fraction: float = Field(0.35, gt=0, le=1, description="Share of torso pixels in range to call it a uniform.")


class StaffZoneRule(_Strict):
    kind: Literal["staff_zone"] = "staff_zone"
    zone_id: str = Field(description="People first seen in this zone (a staff-only area) are staff.")


StaffRule = Annotated[UniformColourRule | StaffZoneRule, Field(discriminator="kind")]


class StoreConfig(_Strict):
    id: str = Field(pattern=_ID, description="Unique within the fleet; appears as `store_id`.")
    name: str = Field("", description="Human name shown in dashboards.")
    timezone: str = Field("UTC", description="IANA time zone; 'today' in the API means today here.")
    cameras: list[CameraConfig] = Field(min_length=1, description="The store's cameras (at least one).")
    staff: list[StaffRule] = Field(default_factory=list, description="How staff are recognised and excluded.")
    inventory: StoreInventoryConfig = Field(
        default_factory=StoreInventoryConfig, description="Planogram of the shelf cameras and inventory overrides."
    )

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Paris')") from None
        return tz

    @model_validator(mode="after")
    def _unique_ids(self) -> StoreConfig:
        _no_dupes([c.id for c in self.cameras], "camera id")
        zone_ids = [z.id for c in self.cameras for z in c.zones]
        _no_dupes(zone_ids, "zone id")
        for rule in self.staff:
            if isinstance(rule, StaffZoneRule) and rule.zone_id not in zone_ids:
                raise ValueError(f"staff rule names zone {rule.zone_id!r}, which no camera of this store has")
        self.inventory.check_cameras({c.id: c.role.value for c in self.cameras})
        return self


class Precision(StrEnum):
    FP32 = "FP32"
    INT8 = "INT8"


class DetectorConfig(_Strict):
    model: str = Field("yolo11n-pose", description="Registry name of the person/pose model.")
    precision: Precision = Field(Precision.INT8, description="OpenVINO IR to load: FP32 or NNCF-quantised INT8.")
    input_size: int = Field(640, ge=160, le=1920, multiple_of=32, description="Square letterbox size in pixels.")
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = Field("CPU", description="OpenVINO device.")
    conf_threshold: float = Field(0.25, gt=0, lt=1, description="Minimum person score kept.")
    iou_threshold: float = Field(0.6, gt=0, lt=1, description="NMS overlap above which the weaker box is dropped.")
    max_batch_size: int = Field(4, ge=1, le=64, description="Frames per batched inference across cameras.")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="How long a batch waits to fill up.")
    frames_per_call: int = Field(
        8,
        ge=1,
        le=32,
        description="Backfill cameras (realtime: false) send up to this many frames per detector call: fewer "
        "calls, less per-call overhead. Live cameras always send their latest frame alone.",
    )


class TrackerConfig(_Strict):
    lost_track_buffer_s: float = Field(3.0, gt=0, description="How long a lost person is kept for re-association.")
    track_activation_threshold: float = Field(0.3, gt=0, lt=1, description="Score needed to start a new track.")
    minimum_matching_threshold: float = Field(0.8, gt=0, lt=1, description="ByteTrack association threshold.")
    minimum_consecutive_frames: int = Field(2, ge=1, description="Frames before a new track is confirmed.")
    reentry_window_s: float = Field(
        600.0, ge=0, description="An ENTRY by a visitor who exited less than this long ago is a REENTRY."
    )
    reentry_min_similarity: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Off by default (null): a REENTRY is a track that itself went out and came back in. Set, a "
        "new track coming in is the same visitor as one who left within `reentry_window_s` when their clothes' "
        "colours are at least this similar and clearly closer than any other leaver's. Colour alone linked the "
        "wrong people more often than the right ones on our test clips (docs/accuracy.md).",
    )
    appearance_veto: float = Field(
        0.45,
        ge=0,
        lt=1,
        description="The tracker refuses to move a track onto a clearly visible person whose colours are less "
        "similar than this to the track's (stops identity swaps when people cross); 0 turns the check off.",
    )


class FleetConfig(_Strict):
    name: str = Field("storefleet", description="Fleet name, shown in logs and dashboards.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="The shared person detector.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Tracking, for every camera.")
    event_batch_max: int = Field(64, ge=1, le=500, description="Most events a camera sends in one call.")
    event_batch_interval_s: float = Field(1.0, gt=0, description="Longest a camera holds events before sending.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="HTTP API access: keys and roles.")
    analytics: AnalyticsConfig = Field(
        default_factory=AnalyticsConfig, description="Store analytics: POS matching window and anomaly thresholds."
    )
    loss_prevention: LossPreventionConfig = Field(
        default_factory=LossPreventionConfig,
        description="Loss prevention: rules and alert-config files, alert MQTT broker, SceneScape input.",
    )
    behaviour: BehaviourConfig = Field(
        default_factory=BehaviourConfig,
        description="Behavioural analysis: person crops in HIGH_VALUE zones, pose pre-filter, vision-language model.",
    )
    inventory: InventoryConfig = Field(
        default_factory=InventoryConfig, description="Inventory: lake folder, service level, cleaning rules, planner."
    )
    stores: list[StoreConfig] = Field(min_length=1, description="The chain's stores (at least one).")

    @model_validator(mode="after")
    def _fleet_unique(self) -> FleetConfig:
        _no_dupes([s.id for s in self.stores], "store id")
        _no_dupes([c.id for s in self.stores for c in s.cameras], "camera id (across the fleet)")
        _no_dupes([k.id for k in self.api.keys], "api key id")
        store_ids = {s.id for s in self.stores}
        for k in self.api.keys:
            if k.store_id is not None and k.store_id not in store_ids:
                raise ValueError(f"api key {k.id!r} names store {k.store_id!r}, which is not in the fleet")
        return self

    @model_validator(mode="after")
    def _role_input_sizes(self) -> FleetConfig:
        """Cameras without an input size get their role's, unless the fleet's detector names one."""
        if "input_size" not in self.detector.model_fields_set:
            for c in (c for s in self.stores for c in s.cameras):
                if c.input_size is None:
                    c.input_size = ROLE_INPUT_SIZE[c.role]
        return self

    def cameras(self) -> list[tuple[StoreConfig, CameraConfig]]:
        return [(s, c) for s in self.stores for c in s.cameras]

    def store(self, store_id: str) -> StoreConfig:
        for s in self.stores:
            if s.id == store_id:
                return s
        raise KeyError(store_id)


def _no_dupes(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} {i!r}")
        seen.add(i)


class ConfigError(ValueError):
    """A fleet file that cannot be used; the message names the file, the field path and the problem."""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} problem(s) in the fleet config"]
    for e in err.errors():
        lines.append(f"  - {_loc(e['loc'])}: {e['msg']}")
    return "\n".join(lines)


def load_fleet_config(path: str | Path) -> FleetConfig:
    """Load and validate a fleet YAML file; relative file sources resolve against the file's folder."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such fleet config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        cfg = FleetConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(p))) from None
    for store in cfg.stores:
        for cam in store.cameras:
            if "://" not in cam.source and ":" not in cam.source.split("/")[0]:
                src = Path(cam.source)
                if not src.is_absolute():
                    cam.source = str((p.parent / src).resolve())
    return cfg
