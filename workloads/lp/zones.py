"""A store's zone table for the rules: zone id -> type, from the fleet's cameras and SceneScape scenes."""

from __future__ import annotations

from workloads.config import FleetConfig


class ZoneTableError(ValueError):
    """Two definitions of one zone id disagree on its type."""


def store_zones(fleet: FleetConfig, store_id: str) -> dict[str, str]:
    """Zone id -> zone type for every zone of `store_id` (camera zones, then SceneScape regions)."""
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    for cam in fleet.store(store_id).cameras:
        for z in cam.zones:
            out[z.id], where[z.id] = z.type.value, f"camera {cam.id}"
    lp = fleet.loss_prevention
    if lp.scenescape is not None:
        for scene in lp.scenescape.scenes:
            if scene.store_id != store_id:
                continue
            for region, ztype in scene.zones.items():
                if region in out and out[region] != ztype:
                    raise ZoneTableError(f"store {store_id}: zone {region!r} is {out[region]} in {where[region]} "
                                         f"but {ztype} in SceneScape scene {scene.scene_id or scene.scene_name}")
                out[region], where[region] = ztype, "scenescape"
    return out
