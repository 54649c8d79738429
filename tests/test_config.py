"""Fleet config loading: a broken file names the file, the field path and the reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workloads.config import ConfigError, FleetConfig, ZoneType, load_fleet_config

VALID: dict[str, Any] = {
    "stores": [
        {
            "id": "S1",
            "timezone": "Europe/Paris",
            "cameras": [
                {
                    "id": "C1",
                    "role": "entrance",
                    "source": "videos/entrance.mp4",
                    "tripwires": [
                        {"id": "door", "points": [[0, 100], [200, 100]], "inside_point": [100, 200]}
                    ],
                },
                {
                    "id": "C2",
                    "source": "synthetic:empty",
                    "zones": [
                        {
                            "id": "Q1",
                            "type": "BILLING_QUEUE",
                            "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]],
                        },
                        {"id": "K1", "type": "CHECKOUT", "polygon": [[100, 0], [200, 0], [200, 100]]},
                    ],
                },
            ],
            "staff": [
                {"kind": "uniform_colour", "hsv_low": [100, 120, 70], "hsv_high": [130, 255, 255]},
                {"kind": "staff_zone", "zone_id": "K1"},
            ],
        }
    ]
}


def edit(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    cfg = copy.deepcopy(VALID)
    fn(cfg)
    return cfg


def store0(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg["stores"][0]


def write(tmp_path: Path, content: dict[str, Any] | str, name: str = "fleet.yaml") -> Path:
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return p


@pytest.mark.parametrize(
    ("content", "field_path", "reason"),
    [
        pytest.param(
            edit(lambda c: store0(c).pop("cameras")), "stores[0].cameras", "Field required", id="no-cameras"
        ),
        pytest.param(
            edit(lambda c: store0(c).update(cameras=[])),
            "stores[0].cameras",
            "at least 1",
            id="empty-cameras",
        ),
        pytest.param({"stores": []}, "stores", "at least 1", id="no-stores"),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][1].update(id="C1")),
            "stores[0]",
            "duplicate camera id 'C1'",
            id="duplicate-camera-id",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][1]["zones"][1].update(id="Q1")),
            "stores[0]",
            "duplicate zone id 'Q1'",
            id="duplicate-zone-id",
        ),
        pytest.param(
            edit(lambda c: c["stores"].append(copy.deepcopy(store0(c)))),
            "(top level)",
            "duplicate store id 'S1'",
            id="duplicate-store-id",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][1]["zones"][0].update(polygon=[[0, 0], [10, 10], [20, 20]])),
            "stores[0].cameras[1].zones[0].polygon",
            "no area",
            id="collinear-polygon",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][1]["zones"][0].update(polygon=[[0, 0], [10, 10]])),
            "stores[0].cameras[1].zones[0].polygon",
            "at least 3",
            id="two-point-polygon",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][1]["zones"][0].update(polygon=[["a", 0], [10, 0], [10, 10]])),
            "stores[0].cameras[1].zones[0].polygon[0][0]",
            "valid number",
            id="polygon-corner-not-a-number",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][0]["tripwires"][0].update(inside_point=[300, 100])),
            "stores[0].cameras[0].tripwires[0]",
            "inside_point lies on the tripwire line",
            id="inside-point-on-line",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][0]["tripwires"][0].update(points=[[5, 5], [5, 5]])),
            "stores[0].cameras[0].tripwires[0]",
            "same point",
            id="tripwire-zero-length",
        ),
        pytest.param(
            edit(lambda c: store0(c).update(timezone="Mars/Olympus")),
            "stores[0].timezone",
            "unknown time zone 'Mars/Olympus'",
            id="unknown-timezone",
        ),
        pytest.param(
            edit(lambda c: store0(c)["staff"][1].update(zone_id="backroom")),
            "stores[0]",
            "staff rule names zone 'backroom'",
            id="unknown-staff-zone",
        ),
        pytest.param(
            edit(lambda c: store0(c)["staff"][0].update(kind="beard")),
            "stores[0].staff[0]",
            "does not match any of the expected tags",
            id="unknown-staff-rule-kind",
        ),
        pytest.param(
            edit(lambda c: store0(c)["staff"][0].update(hsv_low=[1, 2])),
            "stores[0].staff[0].uniform_colour.hsv_low[2]",
            "Field required",
            id="hsv-too-short",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][0].update(target_fps="fast")),
            "stores[0].cameras[0].target_fps",
            "valid number",
            id="fps-not-a-number",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][0].update(target_fps=0)),
            "stores[0].cameras[0].target_fps",
            "greater than 0",
            id="fps-zero",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][1]["zones"][0].update(type="LOUNGE")),
            "stores[0].cameras[1].zones[0].type",
            "Input should be",
            id="unknown-zone-type",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][0].update(fsp=5)),
            "stores[0].cameras[0].fsp",
            "Extra inputs are not permitted",
            id="typo-field",
        ),
        pytest.param(
            edit(lambda c: store0(c)["cameras"][0].update(id="front door")),
            "stores[0].cameras[0].id",
            "should match pattern",
            id="id-with-space",
        ),
        pytest.param(
            edit(lambda c: c.update(tracker={"lost_track_buffer_s": -1})),
            "tracker.lost_track_buffer_s",
            "greater than 0",
            id="tracker-negative-buffer",
        ),
    ],
)
def test_config_errors_name_file_path_and_reason(tmp_path, content, field_path, reason):
    p = write(tmp_path, content)
    with pytest.raises(ConfigError) as exc:
        load_fleet_config(p)
    msg = str(exc.value)
    assert str(p) in msg
    assert f"- {field_path}: " in msg, msg
    assert reason in msg, msg


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("stores: [\n  - id: S1\n", "not valid YAML", id="bad-yaml"),
        pytest.param("stores:\n\t- id: S1\n", "not valid YAML", id="tab-indent"),
        pytest.param(
            "- just\n- a list\n", "expected a mapping at the top level, got list", id="top-level-list"
        ),
        pytest.param("", "expected a mapping at the top level, got NoneType", id="empty-file"),
    ],
)
def test_unparseable_files(tmp_path, text, reason):
    p = write(tmp_path, text, name="broken.yaml")
    with pytest.raises(ConfigError, match=r"broken\.yaml") as exc:
        load_fleet_config(p)
    assert reason in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such fleet config file"):
        load_fleet_config(tmp_path / "nope.yaml")


def test_all_problems_are_listed(tmp_path):
    def two_problems(c):
        store0(c).update(timezone="Nowhere/City")
        store0(c)["cameras"][0].update(target_fps=-1)

    with pytest.raises(ConfigError) as exc:
        load_fleet_config(write(tmp_path, edit(two_problems)))
    msg = str(exc.value)
    assert "2 problem(s)" in msg
    assert "stores[0].timezone" in msg and "stores[0].cameras[0].target_fps" in msg


def test_valid_file_loads_and_resolves_relative_sources(tmp_path):
    cfg_dir = tmp_path / "conf"
    cfg_dir.mkdir()

    def sources(c):
        cams = store0(c)["cameras"]
        cams.append({"id": "C3", "source": "rtsp://10.0.0.5/stream1"})
        cams.append({"id": "C4", "source": "/data/clips/aisle.mp4"})
        cams.append({"id": "C5", "source": "bundled:vtest.avi"})

    cfg = load_fleet_config(write(cfg_dir, edit(sources)))
    assert isinstance(cfg, FleetConfig)
    by_id = {c.id: c for _, c in cfg.cameras()}
    assert by_id["C1"].source == str((cfg_dir / "videos" / "entrance.mp4").resolve())
    assert by_id["C2"].source == "synthetic:empty"
    assert by_id["C3"].source == "rtsp://10.0.0.5/stream1"
    assert by_id["C4"].source == "/data/clips/aisle.mp4"
    assert by_id["C5"].source == "bundled:vtest.avi"
    s1 = cfg.store("S1")
    assert s1.timezone == "Europe/Paris"
    assert by_id["C2"].zones[0].type is ZoneType.BILLING_QUEUE
    assert by_id["C1"].tripwires[0].points == ((0.0, 100.0), (200.0, 100.0))
    assert cfg.tracker.lost_track_buffer_s == 3.0  # defaults filled in
    with pytest.raises(KeyError):
        cfg.store("S9")
