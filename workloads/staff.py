"""Staff recognition from the store's staff rules, so analytics can leave employees out.

Two rules exist (see `StoreConfig.staff`):
    * `uniform_colour`: the share of torso pixels whose HSV lies in the uniform's range. One frame
      is one vote; a track is staff while it has >= `MIN_VOTES` votes and a strict majority of its
      last `VOTE_WINDOW` votes says uniform. Voting over frames rides out bad crops (motion blur,
      shadows); the caller skips frames where someone stands in front of the person.
    * `staff_zone`: a track whose *first* observed feet position is inside that zone (a staff-only
      area such as the stock room door) is staff. A rule naming a zone that is on another camera
      of the store does nothing here (cross-camera identity is later work).

A staff zone makes a track staff for good. Uniform recognition follows the recent votes instead of
sticking: on synthetic clips a staff member's track sometimes jumps onto a shopper walking past,
and a sticky flag then excluded that shopper's entry and purchase (staff precision 0.89); with the
window the flag leaves with the uniform.

Example:
    >>> import numpy as np
    >>> frame = np.zeros((100, 100, 3), np.uint8); frame[:, :] = (0, 0, 255)  # BGR red
    >>> rule = UniformColourRule(hsv_low=(0, 120, 70), hsv_high=(10, 255, 255))
    >>> matches_uniform(frame, np.array([10, 10, 60, 90]), rule)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from workloads.config import StaffRule, StaffZoneRule, UniformColourRule, ZoneConfig
from workloads.geometry import points_in_polygon

#: Torso band of a person box, as fractions of its height (from the top) and width: below the
#: head and above the hips, inside the arms, so most pixels are shirt.
TORSO_Y = (0.20, 0.55)
TORSO_X = (0.25, 0.75)
#: Votes needed before a uniform majority counts, and how many recent votes are kept.
MIN_VOTES = 3
VOTE_WINDOW = 8
#: Crops with fewer pixels than this say nothing (person too small or mostly off-frame).
MIN_CROP_PIXELS = 16


def torso_crop(frame: npt.NDArray[np.uint8], box: npt.ArrayLike) -> npt.NDArray[np.uint8] | None:
    """The middle band of an `x1, y1, x2, y2` box, clipped to the frame; None if too small."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    w, h = x2 - x1, y2 - y1
    fh, fw = frame.shape[:2]
    cx1 = int(np.clip(round(x1 + TORSO_X[0] * w), 0, fw))
    cx2 = int(np.clip(round(x1 + TORSO_X[1] * w), 0, fw))
    cy1 = int(np.clip(round(y1 + TORSO_Y[0] * h), 0, fh))
    cy2 = int(np.clip(round(y1 + TORSO_Y[1] * h), 0, fh))
    if (cx2 - cx1) * (cy2 - cy1) < MIN_CROP_PIXELS:
        return None
    return frame[cy1:cy2, cx1:cx2]


def uniform_fraction(
    crop_bgr: npt.NDArray[np.uint8], hsv_low: Sequence[int], hsv_high: Sequence[int]
) -> float:
    """Share of pixels whose HSV (OpenCV scale) is within [low, high].

    A hue range with low > high wraps around 180 (reds: e.g. low H 170, high H 10).
    """
    hsv = cv2.cvtColor(np.ascontiguousarray(crop_bgr), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    if len(hsv) == 0:
        return 0.0
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    ok = (s >= hsv_low[1]) & (s <= hsv_high[1]) & (v >= hsv_low[2]) & (v <= hsv_high[2])
    if hsv_low[0] <= hsv_high[0]:
        ok &= (h >= hsv_low[0]) & (h <= hsv_high[0])
    else:
        ok &= (h >= hsv_low[0]) | (h <= hsv_high[0])
    return float(np.count_nonzero(ok)) / len(hsv)


def matches_uniform(frame: npt.NDArray[np.uint8], box: npt.ArrayLike, rule: UniformColourRule) -> bool | None:
    """One vote: does this box's torso look like the uniform? None when the crop is unusable."""
    crop = torso_crop(frame, box)
    if crop is None:
        return None
    return uniform_fraction(crop, rule.hsv_low, rule.hsv_high) >= rule.min_fraction


@dataclass
class StaffVote:
    """The recent votes of one track for one uniform rule (at most `VOTE_WINDOW`)."""

    recent: list[bool] = field(default_factory=list)

    def add(self, hit: bool) -> None:
        self.recent = [*self.recent[-(VOTE_WINDOW - 1) :], bool(hit)]

    @property
    def samples(self) -> int:
        return len(self.recent)

    @property
    def hits(self) -> int:
        return sum(self.recent)

    @property
    def is_staff(self) -> bool:
        return self.samples >= MIN_VOTES and 2 * self.hits > self.samples


@dataclass
class _TrackStaff:
    votes: list[StaffVote] = field(default_factory=list)
    staff: bool = False
    by_zone: bool = False


class StaffClassifier:
    """Applies a store's staff rules to the tracks of one camera. Picklable."""

    def __init__(self, rules: Sequence[StaffRule], camera_zones: Sequence[ZoneConfig]) -> None:
        self.uniform_rules = [r for r in rules if isinstance(r, UniformColourRule)]
        zones = {z.id: z for z in camera_zones}
        self._staff_polygons = [
            np.asarray(zones[r.zone_id].polygon, dtype=np.float64)
            for r in rules
            if isinstance(r, StaffZoneRule) and r.zone_id in zones
        ]
        self._tracks: dict[int, _TrackStaff] = {}

    @property
    def needs_frames(self) -> bool:
        """Whether `observe` uses the image (only uniform rules do)."""
        return bool(self.uniform_rules)

    def is_staff(self, track_id: int) -> bool:
        st = self._tracks.get(track_id)
        return bool(st and st.staff)

    def observe(
        self,
        track_id: int,
        box: npt.ArrayLike,
        feet: npt.ArrayLike,
        frame: npt.NDArray[np.uint8] | None = None,
    ) -> bool:
        """Feed one observation of a track; returns whether it is (now) recognised as staff."""
        st = self._tracks.get(track_id)
        if st is None:
            st = self._tracks[track_id] = _TrackStaff(votes=[StaffVote() for _ in self.uniform_rules])
            pt = np.asarray(feet, dtype=np.float64).reshape(1, 2)
            st.by_zone = any(bool(points_in_polygon(pt, poly)[0]) for poly in self._staff_polygons)
        if st.by_zone or frame is None:
            st.staff = st.by_zone or any(v.is_staff for v in st.votes)
            return st.staff
        for rule, vote in zip(self.uniform_rules, st.votes, strict=True):
            hit = matches_uniform(frame, box, rule)
            if hit is not None:
                vote.add(hit)
        st.staff = any(v.is_staff for v in st.votes)
        return st.staff

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)
