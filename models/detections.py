"""People found in one frame: boxes, scores and 17 COCO keypoints, in original frame pixels.

This is the only thing the detector hands to the rest of StoreFleet, so it is plain numpy (it
pickles cheaply between Ray actors) and always in the coordinates of the frame that went in:
no caller ever needs to know about letterboxing.

Example:
    >>> import numpy as np
    >>> d = Detections(boxes=np.array([[10, 20, 50, 120]]), scores=np.array([0.9]),
    ...                keypoints=np.zeros((1, 17, 3)))
    >>> len(d), d.boxes.dtype
    (1, dtype('float32'))
    >>> len(Detections.empty())
    0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NUM_KEYPOINTS = 17
"""COCO keypoints: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles."""


@dataclass(frozen=True)
class Detections:
    """Persons detected in one frame.

    Attributes:
        boxes: (N, 4) float32 `x1, y1, x2, y2` in original frame pixels.
        scores: (N,) float32 person confidence in [0, 1].
        keypoints: (N, 17, 3) float32 `x, y, confidence` in original frame pixels.
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    keypoints: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on dtype and shape without re-checking.
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 3)
        if not len(boxes) == len(scores) == len(keypoints):
            raise ValueError(
                f"boxes, scores and keypoints disagree on N: {len(boxes)}, {len(scores)}, {len(keypoints)}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "keypoints", keypoints)

    @classmethod
    def empty(cls) -> Detections:
        """No person: the well-typed answer for a frame with nothing in it."""
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            keypoints=np.zeros((0, NUM_KEYPOINTS, 3), np.float32),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])
