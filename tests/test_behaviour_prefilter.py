"""Pose pre-filter on hand-built keypoint sequences (COCO-17, `standing_pose` as the body)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from workloads.behaviour.prefilter import (
    PatternFile,
    PoseFrame,
    Prefilter,
    resolve_point,
    standing_pose,
)
from workloads.behaviour.settings import DEFAULT_PATTERNS_FILE

L_SHOULDER, L_ELBOW, L_WRIST, L_HIP = 5, 7, 9, 11
R_WRIST = 10


def pose(wrist: tuple[float, float] | None = None, elbow: tuple[float, float] | None = None, *,
         right_wrist: tuple[float, float] | None = None, scale: float = 1.0, conf: float = 0.9) -> np.ndarray:
    """Standing body (shoulders y=90, hips y=190 at scale 1, centre x=100) with the left arm moved.

    Coordinates are given at scale 1 relative to the body; `scale` zooms the whole person about (100, 50)."""
    kp = standing_pose()
    if wrist is not None:
        kp[L_WRIST, :2] = wrist
    if elbow is not None:
        kp[L_ELBOW, :2] = elbow
    if right_wrist is not None:
        kp[R_WRIST, :2] = right_wrist
    kp[:, :2] = (kp[:, :2] - (100, 50)) * scale + (100, 50)
    kp[:, 2] = np.where(kp[:, 2] > 0, conf, 0)
    return kp


HANG = pose()  # arms hanging straight down, wrists at hip height beside the hips
REACH = pose(wrist=(215, 95), elbow=(170, 95))  # left arm stretched out sideways at shoulder height
WAIST = pose(wrist=(112, 180), elbow=(150, 140))  # left hand at the waistband, elbow bent out
POCKET = pose(wrist=(122, 215), elbow=(140, 150))  # left hand down at the thigh pocket, elbow bent
ACROSS = pose(wrist=(72, 178), elbow=(140, 145))  # left hand across the stomach to the right hip
LOW_CONF = pose(conf=0.1)


def seq(*poses: np.ndarray) -> list[PoseFrame]:
    return [PoseFrame(float(i) * 0.5, p) for i, p in enumerate(poses)]


@pytest.fixture(scope="module")
def pf() -> Prefilter:
    return Prefilter.from_file(DEFAULT_PATTERNS_FILE)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([HANG] * 8, set()),  # browsing with arms down: nothing
        ([REACH] * 4 + [HANG] * 4, set()),  # reach to the shelf and let the arm drop straight
        ([HANG, REACH, WAIST, WAIST, HANG], {("hand_to_waist", "left")}),
        ([REACH, HANG, HANG, WAIST, WAIST], {("hand_to_waist", "left")}),  # gap of 2 frames <= 3
        ([REACH, HANG, HANG, HANG, HANG, WAIST, WAIST], set()),  # gap of 4 frames > 3: not one motion
        ([REACH, WAIST, HANG], set()),  # one frame at the waist is not enough (min_frames 2)
        ([WAIST] * 5, set()),  # hand resting at the waist, never reached out: no motion
        ([REACH, REACH, POCKET, POCKET, POCKET], {("hand_to_pocket", "left")}),
        ([HANG, ACROSS, ACROSS, HANG], {("hand_across_body", "left")}),
        ([LOW_CONF] * 3 + [REACH, LOW_CONF, LOW_CONF], set()),  # unsure keypoints hold no phase
    ],
    ids=["hang", "reach-drop", "waist", "waist-gap2", "waist-gap4", "waist-1frame", "waist-rest", "pocket",
         "across", "low-conf"],
)
def test_patterns(pf: Prefilter, frames: list[np.ndarray], expected: set[tuple[str, str]]) -> None:
    res = pf.run(seq(*frames))
    assert {(m.pattern, m.side) for m in res.matches} == expected


@pytest.mark.parametrize("scale", [0.4, 1.0, 2.5])
def test_normalised_by_body_size(pf: Prefilter, scale: float) -> None:
    """The same motion by a far (small) or near (large) person matches the same way."""
    frames = [pose(scale=scale), pose(wrist=(215, 95), elbow=(170, 95), scale=scale),
              pose(wrist=(112, 180), elbow=(150, 140), scale=scale), pose(wrist=(112, 180), elbow=(150, 140),
                                                                           scale=scale)]
    assert [m.pattern for m in pf.run(seq(*frames)).matches] == ["hand_to_waist"]


def test_mirror_side(pf: Prefilter) -> None:
    """The right arm doing the motion is a right-side match (mirror the left-arm sequence)."""
    def mirror(kp: np.ndarray) -> np.ndarray:
        out = kp.copy()
        out[:, 0] = 200 - out[:, 0]
        swap = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
        return out[swap]

    res = pf.run(seq(*(mirror(p) for p in (HANG, REACH, WAIST, WAIST))))
    assert [(m.pattern, m.side) for m in res.matches] == [("hand_to_waist", "right")]


def test_match_times_and_counts(pf: Prefilter) -> None:
    res = pf.run(seq(HANG, REACH, WAIST, WAIST, LOW_CONF))
    (m,) = res.matches
    assert (m.start, m.end, m.start_ts, m.end_ts) == (1, 3, 0.5, 1.5)
    assert (res.frames, res.usable_frames) == (5, 4)


def test_two_occurrences(pf: Prefilter) -> None:
    res = pf.run(seq(REACH, WAIST, WAIST, REACH, WAIST, WAIST))
    assert [(m.start, m.end) for m in res.matches if m.pattern == "hand_to_waist"] == [(0, 2), (3, 5)]


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"patterns": [{"id": "a", "phases": [{"name": "p", "all": [{"distance": ["wrist", "hip"], "max": 1}]}]}]},
         "bare side names need `sides:`"),
        ({"patterns": [{"id": "a", "sides": ["left"], "phases": [{"name": "p", "all": [{"distance": ["paw", "hip"],
                                                                                          "max": 1}]}]}]},
         "unknown point 'paw'"),
        ({"patterns": [{"id": "a", "phases": [{"name": "p", "all": [{"height": "nose"}]}]}]}, "give min, max"),
        ({"patterns": [{"id": "a", "phases": [{"name": "p", "all": [{"height": "nose", "angle": ["a", "b", "c"],
                                                                      "max": 1}]}]}]}, "exactly one of"),
    ],
)
def test_pattern_file_errors(doc: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        PatternFile.model_validate(doc)


def test_resolve_point() -> None:
    assert resolve_point("other_wrist", "right") == "left_wrist"
    assert resolve_point("left_knee", None) == "left_knee"
