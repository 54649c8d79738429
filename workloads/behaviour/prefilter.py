"""Pose pre-filter: find hand-to-waist / pocket / bag motions in a visit's keypoints, before any model.

Why: the vision-language model is the expensive step. Most visits of a high-value zone are people
looking at products; their arms never go from the shelf to the waist, a pocket or across the body.
A pattern file (see `patterns.yaml` for the language) describes those motions as phases of keypoint
geometry (distances normalised by torso length, angles, height along the torso) held for a number of
frames; a visit with no match ends as `no_match` without calling the model.

Example:
    >>> from workloads.behaviour.settings import DEFAULT_PATTERNS_FILE
    >>> pf = Prefilter.from_file(DEFAULT_PATTERNS_FILE)
    >>> still = [PoseFrame(t, standing_pose()) for t in range(5)]
    >>> pf.run(still).matched
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: COCO-17 keypoint order of YOLO pose models.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
_INDEX = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
_SIDED = {"eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"}
_DERIVED = {"mid_shoulder": ("left_shoulder", "right_shoulder"), "mid_hip": ("left_hip", "right_hip")}
Side = Literal["left", "right"]


# ---------------------------------------------------------------------------------------- pattern file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Strict):
    """One measurement with bounds; exactly one of `distance`, `angle`, `height`."""

    distance: tuple[str, str] | None = Field(None, description="Two points; distance / torso length.")
    angle: tuple[str, str, str] | None = Field(None, description="Three points; the angle at the middle one, degrees.")
    height: str | None = Field(None, description="A point; 0 at shoulder height, 1 at hip height.")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> Condition:
        if sum(x is not None for x in (self.distance, self.angle, self.height)) != 1:
            raise ValueError("give exactly one of distance, angle, height")
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self

    def points(self) -> tuple[str, ...]:
        return self.distance or self.angle or ((self.height,) if self.height else ())


class Phase(_Strict):
    name: str
    min_frames: int = Field(1, ge=1, description="Frames in a row on which every condition holds.")
    max_gap_frames: int = Field(0, ge=0, description="Frames allowed between the previous phase's end and this one.")
    all: list[Condition] = Field(min_length=1)


class Pattern(_Strict):
    id: str
    description: str = ""
    sides: list[Side] = Field(default_factory=list, description="Evaluate once per side; empty: names are absolute.")
    phases: list[Phase] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_points(self) -> Pattern:
        for side in self.sides or [None]:
            for ph in self.phases:
                for c in ph.all:
                    for p in c.points():
                        resolve_point(p, side)  # raises on an unknown name
        return self


class PatternFile(_Strict):
    version: Literal[1] = 1
    min_keypoint_conf: float = Field(0.3, ge=0, le=1)
    patterns: list[Pattern] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PatternFile:
        ids = [p.id for p in self.patterns]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate pattern ids: {ids}")
        return self


def resolve_point(name: str, side: Side | None) -> str:
    """A point name of the pattern language -> a COCO keypoint or derived point name.

    >>> resolve_point("wrist", "left"), resolve_point("other_hip", "left"), resolve_point("mid_hip", None)
    ('left_wrist', 'right_hip', 'mid_hip')
    """
    if name in _INDEX or name in _DERIVED:
        return name
    other = name.startswith("other_")
    base = name.removeprefix("other_")
    if base in _SIDED and side is not None:
        s = ("right" if side == "left" else "left") if other else side
        return f"{s}_{base}"
    raise ValueError(f"unknown point {name!r}" + ("" if side else " (bare side names need `sides:`)"))


def load_patterns(path: str | Path) -> PatternFile:
    return PatternFile.model_validate(yaml.safe_load(Path(path).read_text()))


# ---------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class PoseFrame:
    """One person's keypoints on one stored frame: `keypoints` (17, 3) `x, y, conf` in any pixel frame."""

    ts: float
    keypoints: npt.NDArray[np.float32]


class _Body:
    """Points of one frame that passed the confidence threshold, plus the torso length."""

    def __init__(self, kp: npt.NDArray[np.float32], min_conf: float) -> None:
        kp = np.asarray(kp, dtype=np.float64).reshape(17, 3)
        self.pts: dict[str, np.ndarray] = {n: kp[i, :2] for n, i in _INDEX.items() if kp[i, 2] >= min_conf}
        for name, (a, b) in _DERIVED.items():
            have = [self.pts[p] for p in (a, b) if p in self.pts]
            if have:
                self.pts[name] = np.mean(have, axis=0)
        s, h = self.pts.get("mid_shoulder"), self.pts.get("mid_hip")
        self.torso = float(np.linalg.norm(h - s)) if s is not None and h is not None else 0.0
        self.usable = self.torso >= 1.0

    def measure(self, c: Condition, side: Side | None) -> float | None:
        names = [resolve_point(p, side) for p in c.points()]
        if not self.usable or any(n not in self.pts for n in names):
            return None
        p = [self.pts[n] for n in names]
        if c.distance:
            return float(np.linalg.norm(p[0] - p[1])) / self.torso
        if c.angle:
            v1, v2 = p[0] - p[1], p[2] - p[1]
            n = float(np.linalg.norm(v1) * np.linalg.norm(v2))
            if n == 0:
                return None
            return math.degrees(math.acos(max(-1.0, min(1.0, float(v1 @ v2) / n))))
        top, bottom = self.pts["mid_shoulder"][1], self.pts["mid_hip"][1]
        if abs(bottom - top) < 1.0:
            return None
        return float((p[0][1] - top) / (bottom - top))


def _holds(body: _Body, phase: Phase, side: Side | None) -> bool:
    for c in phase.all:
        v = body.measure(c, side)
        if v is None or (c.min is not None and v < c.min) or (c.max is not None and v > c.max):
            return False
    return True


def _runs(mask: Sequence[bool], min_len: int) -> list[tuple[int, int]]:
    """(start, end) inclusive of every run of True at least `min_len` long."""
    out, start = [], None
    for i, v in enumerate([*mask, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start >= min_len:
                out.append((start, i - 1))
            start = None
    return out


# ---------------------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Match:
    pattern: str
    side: Side | None
    start: int  #: index of the first frame of the first phase
    end: int  #: index of the last frame of the last phase
    start_ts: float
    end_ts: float


@dataclass
class PrefilterResult:
    frames: int
    usable_frames: int
    matches: list[Match] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.matches)


class Prefilter:
    """Runs a pattern file over one person's pose frames (in time order)."""

    def __init__(self, patterns: PatternFile) -> None:
        self.spec = patterns

    @classmethod
    def from_file(cls, path: str | Path) -> Prefilter:
        return cls(load_patterns(path))

    def run(self, frames: Sequence[PoseFrame]) -> PrefilterResult:
        bodies = [_Body(f.keypoints, self.spec.min_keypoint_conf) for f in frames]
        result = PrefilterResult(frames=len(frames), usable_frames=sum(b.usable for b in bodies))
        for pat in self.spec.patterns:
            for side in pat.sides or [None]:
                masks = [[_holds(b, ph, side) for b in bodies] for ph in pat.phases]
                for start, end in _sequence(pat.phases, masks):
                    result.matches.append(Match(pat.id, side, start, end, frames[start].ts, frames[end].ts))
        result.matches.sort(key=lambda m: (m.end, m.pattern, m.side or ""))
        return result


def _sequence(phases: list[Phase], masks: list[list[bool]]) -> list[tuple[int, int]]:
    """Non-overlapping occurrences of the phases in order, earliest first, as (first, last) frame."""
    found: list[tuple[int, int]] = []
    runs = [_runs(m, ph.min_frames) for ph, m in zip(phases, masks, strict=True)]
    after = -1  # occurrences do not overlap: the next one starts after the last one's end
    for s0, e0 in runs[0]:
        if s0 <= after:
            continue
        end = e0
        for ph, rs in zip(phases[1:], runs[1:], strict=True):
            nxt = next(((s, e) for s, e in rs if end < s <= end + 1 + ph.max_gap_frames), None)
            if nxt is None:
                break
            end = nxt[1]
        else:
            found.append((s0, end))
            after = end
    return found


# ---------------------------------------------------------------------------------------- test poses


def standing_pose(cx: float = 100.0, top: float = 50.0, scale: float = 1.0) -> npt.NDArray[np.float32]:
    """An upright person with arms hanging (torso 100 px at scale 1), all keypoints confident.

    A building block for hand-made sequences in tests and docs: move `left_wrist` / `right_wrist`
    (indices 9 and 10) to make motions.
    """
    s = scale
    pts = {
        "nose": (0, 0), "left_eye": (5, -5), "right_eye": (-5, -5), "left_ear": (10, 0), "right_ear": (-10, 0),
        "left_shoulder": (25, 40), "right_shoulder": (-25, 40), "left_elbow": (30, 90), "right_elbow": (-30, 90),
        "left_wrist": (32, 140), "right_wrist": (-32, 140), "left_hip": (18, 140), "right_hip": (-18, 140),
        "left_knee": (20, 210), "right_knee": (-20, 210), "left_ankle": (20, 280), "right_ankle": (-20, 280),
    }
    kp = np.zeros((17, 3), np.float32)
    for name, (dx, dy) in pts.items():
        kp[_INDEX[name]] = (cx + dx * s, top + dy * s, 0.9)
    return kp
