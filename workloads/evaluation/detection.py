"""Person detection quality: recall and precision against truth boxes, per input size and with tiling.

Matching: one-to-one (Hungarian) at IoU >= 0.5. People less than `MIN_VISIBILITY` visible (mostly
behind a shelf or another person, or off-frame) are "don't care": finding them is no true positive,
missing them no false negative, and a detection on them is no false positive.

Tiling cuts the frame into overlapping tiles (plus the whole frame), runs the detector on each at its
input size, maps boxes back and merges: non-maximum suppression, then dropping boxes mostly inside a
higher-scored one (a person cut by a tile edge is found whole in the neighbouring tile or the full frame).

Example:
    >>> import numpy as np
    >>> count_matches(np.array([[0, 0, 10, 20]]), np.array([[1, 0, 10, 20], [50, 0, 60, 20]]), np.array([1.0, 1.0]))
    (1, 0, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workloads.evaluation.scene_metrics import iou_matrix, match_boxes

MIN_VISIBILITY = 0.5
MATCH_IOU = 0.5

Boxes = npt.NDArray[np.float32]
DetectOne = Callable[[Sequence[npt.NDArray[np.uint8]]], list[tuple[Boxes, npt.NDArray[np.float32]]]]


def count_matches(
    pred: npt.ArrayLike, truth: npt.ArrayLike, visibility: npt.ArrayLike, min_visibility: float = MIN_VISIBILITY
) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one frame, low-visibility people don't care.

    `truth` may hold NaN rows (people not in the scene on this frame); they are ignored.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    vis = np.asarray(visibility, dtype=np.float64).reshape(-1)
    present = ~np.isnan(truth[:, 0])  # rows of people not in the scene (NaN boxes) are skipped
    truth, vis = truth[present], vis[present]
    care = vis >= min_visibility
    matches = match_boxes(pred, truth, MATCH_IOU)
    tp = sum(1 for _, t in matches if care[t])
    on_dont_care = {p for p, t in matches if not care[t]}
    unmatched = [p for p in range(len(pred)) if p not in {m[0] for m in matches}]
    if unmatched and (~care).any():  # a loose box on a half-hidden person is not a false alarm either
        ious = iou_matrix(pred[unmatched], truth[~care])
        on_dont_care |= {unmatched[k] for k in range(len(unmatched)) if ious[k].max(initial=0.0) >= 0.3}
    fp = len(pred) - tp - len(on_dont_care)
    fn = int(care.sum()) - tp
    return tp, fp, fn


@dataclass
class DetectionScore:
    """Pooled counts over frames."""

    name: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    seconds: float = 0.0

    def add(self, counts: tuple[int, int, int]) -> None:
        self.tp += counts[0]
        self.fp += counts[1]
        self.fn += counts[2]
        self.frames += 1

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / self.frames if self.frames else float("nan")


def tiles(
    width: int, height: int, grid: tuple[int, int] = (2, 2), overlap: float = 0.2
) -> list[tuple[int, int, int, int]]:
    """Overlapping tile rectangles `x1, y1, x2, y2` covering the frame."""
    cols, rows = grid
    tw = int(np.ceil(width / (cols - (cols - 1) * overlap)))
    th = int(np.ceil(height / (rows - (rows - 1) * overlap)))
    out = []
    for r in range(rows):
        for c in range(cols):
            x1 = min(round(c * tw * (1 - overlap)), width - tw)
            y1 = min(round(r * th * (1 - overlap)), height - th)
            out.append((max(x1, 0), max(y1, 0), min(x1 + tw, width), min(y1 + th, height)))
    return out


def merge(boxes: Boxes, scores: npt.NDArray[np.float32], iou: float = 0.5, contain: float = 0.75
          ) -> tuple[Boxes, npt.NDArray[np.float32]]:
    """Greedy merge: drop a box overlapping a better one (IoU >= iou) or mostly inside it (>= contain)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order.tolist():
        b = boxes[i]
        area = max(float((b[2] - b[0]) * (b[3] - b[1])), 1e-9)
        ok = True
        for k in keep:
            o = boxes[k]
            ix = max(0.0, min(b[2], o[2]) - max(b[0], o[0]))
            iy = max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
            inter = ix * iy
            union = area + (o[2] - o[0]) * (o[3] - o[1]) - inter
            if inter / union >= iou or inter / area >= contain:
                ok = False
                break
        if ok:
            keep.append(i)
    return boxes[keep], scores[keep]


def tiled(detect: DetectOne, grid: tuple[int, int] = (2, 2), overlap: float = 0.2, full_frame: bool = True
          ) -> DetectOne:
    """A detector that also looks at overlapping tiles (each at the detector's own input size)."""

    def run(frames: Sequence[npt.NDArray[np.uint8]]) -> list[tuple[Boxes, npt.NDArray[np.float32]]]:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            rects = tiles(w, h, grid, overlap)
            crops = [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in rects] + ([frame] if full_frame else [])
            offsets = [(x1, y1) for x1, y1, _, _ in rects] + ([(0, 0)] if full_frame else [])
            boxes, scores = [], []
            for (b, s), (ox, oy) in zip(detect(crops), offsets, strict=True):
                b = np.asarray(b, dtype=np.float32).reshape(-1, 4).copy()
                b[:, [0, 2]] += ox
                b[:, [1, 3]] += oy
                boxes.append(b)
                scores.append(np.asarray(s, dtype=np.float32).reshape(-1))
            out.append(merge(np.concatenate(boxes), np.concatenate(scores)))
        return out

    return run


def score_frames(
    name: str,
    frames: Sequence[npt.NDArray[np.uint8]],
    truths: Sequence[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    detect: DetectOne,
    batch: int = 4,
) -> DetectionScore:
    """Run `detect` over frames and count against (truth boxes, visibility) per frame; times the detector."""
    import time

    score = DetectionScore(name)
    for k in range(0, len(frames), batch):
        t0 = time.perf_counter()
        dets = detect(frames[k : k + batch])
        score.seconds += time.perf_counter() - t0
        for (boxes, _), (tb, tv) in zip(dets, truths[k : k + batch], strict=True):
            score.add(count_matches(boxes, tb, tv))
    return score


def reference_labels(
    frames: Sequence[npt.NDArray[np.uint8]], detectors: Sequence[DetectOne], sure: float = 0.5
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """A reference labelling for footage without annotations: the merged boxes of stronger settings.

    Boxes scored >= `sure` are people (visibility 1); weaker ones are "don't care" (visibility 0), so a
    configuration is neither rewarded nor punished for them.
    """
    outputs = [d(frames) for d in detectors]
    out = []
    for per_frame in zip(*outputs, strict=True):
        boxes, scores = merge(
            np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b, _ in per_frame]),
            np.concatenate([np.asarray(s, np.float32).reshape(-1) for _, s in per_frame]),
        )
        out.append((boxes.astype(np.float64), (scores >= sure).astype(np.float64)))
    return out
