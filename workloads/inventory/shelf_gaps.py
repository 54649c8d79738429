"""Shelf-gap detection: which facings of each planogram segment are empty, and the gap ratio.

Detectors are pluggable (`GapDetector`): the shipped one is classical (OpenCV, no weights), and
`BoxCoverageGapDetector` turns any product-box detector (a YOLO shelf model, when a store has
weights) into a gap detector by measuring which facings no product box covers.

The classical method looks at columns of each segment's lower band (where products stand; the top
is often in the shadow of the shelf above). An empty facing shows the shelf's back panel: smooth
(little gradient relative to its brightness, after a blur that removes sensor noise) and of the
back panel's chromaticity (colour without brightness, so shadows do not matter). Product fronts
have edges, print and labels, and usually another colour. So a column is *bare* when its texture
is low and its chromaticity is close to the back panel's (given in the config, or estimated per
frame from the headroom strips just below the shelf above, which show the panel even on a fully
stocked shelf). A facing is empty when at least `min_gap_fraction` of its columns are bare.
Measured on generated shelves in docs/inventory.md.

Example:
    >>> from workloads.inventory.shelf_synth import make_shelf
    >>> scene = make_shelf(seed=5)
    >>> found = ClassicalGapDetector().detect(scene.image, scene.segments)
    >>> len(found) == len(scene.segments)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from workloads.inventory.settings import ClassicalGapDetectorConfig, ShelfSegment

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SegmentGaps:
    segment_id: str
    sku: str
    facings: int
    empty_facings: tuple[int, ...]  #: indices of empty facings, left to right
    bare_fraction: float  #: share of the segment's width that looks empty (continuous)
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def gap_ratio(self) -> float:
        """Share of the segment's facings that are empty (what alerts and heatmaps use)."""
        return len(self.empty_facings) / self.facings


class GapDetector(Protocol):
    name: str

    def detect(self, image: Image, segments: Sequence[ShelfSegment]) -> list[SegmentGaps]:
        """Gaps of every segment of one frame (segments in frame pixels)."""


def _facing_flags(bare: npt.NDArray[np.bool_], facings: int, min_fraction: float) -> tuple[int, ...]:
    """Indices of facings whose share of bare columns reaches `min_fraction`."""
    edges = np.linspace(0, len(bare), facings + 1).round().astype(int)
    return tuple(f for f in range(facings) if edges[f + 1] > edges[f]
                 and bare[edges[f]:edges[f + 1]].mean() >= min_fraction)


def _clip_box(seg: ShelfSegment, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    h, w = shape[:2]
    x0, y0, x1, y1 = (round(v) for v in seg.box)
    x0, x1 = max(0, x0), min(w, x1)
    y0, y1 = max(0, y0), min(h, y1)
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


class ClassicalGapDetector:
    """Texture + back-panel chromaticity per column (see the module doc)."""

    name = "classical"

    def __init__(self, cfg: ClassicalGapDetectorConfig | None = None, band: tuple[float, float] = (0.35, 0.95),
                 headroom: tuple[float, float] = (0.02, 0.10), smooth_px: int = 9, denoise_sigma: float = 2.0) -> None:
        self.cfg = cfg or ClassicalGapDetectorConfig()
        self.band, self.headroom = band, headroom
        self.smooth_px, self.denoise_sigma = smooth_px, denoise_sigma

    @staticmethod
    def _rows(box: tuple[int, int, int, int], span: tuple[float, float]) -> tuple[int, int]:
        y0, y1 = box[1], box[3]
        hb = y1 - y0
        r0 = y0 + int(hb * span[0])
        return r0, max(y0 + int(hb * span[1]), r0 + 2)

    def detect(self, image: Image, segments: Sequence[ShelfSegment]) -> list[SegmentGaps]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self.denoise_sigma > 0:  # sensor noise and JPEG blocks are texture too; product print survives a blur
            gray = cv2.GaussianBlur(gray, (0, 0), self.denoise_sigma)
        gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
        mag = gx + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
        rel = 1.0 / (gray + 16.0)  # texture relative to brightness: the same shelf under dim or bright light
        f = image.astype(np.float32) + 1.0
        chroma = f / f.sum(axis=2, keepdims=True)  # brightness-free colour: shadows keep it
        boxes = [(seg, _clip_box(seg, image.shape)) for seg in segments]
        bg = self._background(boxes, chroma, gx * rel)
        out = []
        for seg, box in boxes:
            if box is None:
                out.append(SegmentGaps(seg.id, seg.sku, seg.facings, (), 0.0, {"visible": 0.0}))
                continue
            x0, _, x1, _ = box
            r0, r1 = self._rows(box, self.band)
            tex = (mag[r0:r1, x0:x1] * rel[r0:r1, x0:x1]).mean(axis=0)
            tex = cv2.blur(tex[None, :].astype(np.float32), (max(1, self.smooth_px), 1))[0]
            bare = tex < self.cfg.texture_threshold
            if bg is not None:
                col = chroma[r0:r1, x0:x1].mean(axis=0)
                bare &= np.linalg.norm(col - bg, axis=1) < self.cfg.chroma_distance
            empty = _facing_flags(bare, seg.facings, self.cfg.min_gap_fraction)
            out.append(SegmentGaps(seg.id, seg.sku, seg.facings, empty, float(bare.mean()),
                                   {"texture_median": float(np.median(tex))}))
        return out

    def _background(self, boxes: list[tuple[ShelfSegment, tuple[int, int, int, int] | None]],
                    chroma: npt.NDArray[np.float32], htex: npt.NDArray[np.float32]) -> npt.NDArray[np.float32] | None:
        """Back-panel chromaticity: configured, else the median over the segments' headroom strips.

        The headroom (just below the shelf above) shows the back panel over most segments even when
        every facing is stocked, so the estimate does not depend on an empty facing being in view. Only
        the horizontal gradient filters it: the shelf's shadow makes a vertical one there.
        """
        if self.cfg.background_bgr is not None:
            b = np.array(self.cfg.background_bgr, np.float32) + 1.0
            return b / b.sum()
        samples = []
        for _, box in boxes:
            if box is None:
                continue
            r0, r1 = self._rows(box, self.headroom)
            x0, x1 = box[0], box[2]
            smooth = htex[r0:r1, x0:x1] < self.cfg.texture_threshold
            samples.append(chroma[r0:r1, x0:x1][smooth])
        pix = np.concatenate(samples) if samples else np.empty((0, 3), np.float32)
        return np.median(pix, axis=0) if len(pix) >= 50 else None


class BoxCoverageGapDetector:
    """Gaps from product boxes: a facing is empty when boxes cover less than (1 - min_gap_fraction) of it.

    `boxes` is any product detector: a frame in, product boxes (x0, y0, x1, y1) in frame pixels out.
    """

    name = "box_coverage"

    def __init__(self, boxes: Callable[[Image], Sequence[Box]], min_gap_fraction: float = 0.5) -> None:
        self.boxes, self.min_gap_fraction = boxes, min_gap_fraction

    def detect(self, image: Image, segments: Sequence[ShelfSegment]) -> list[SegmentGaps]:
        found = list(self.boxes(image))
        out = []
        for seg in segments:
            x0, y0, x1, y1 = seg.box
            width = max(round(x1 - x0), 1)
            covered = np.zeros(width, dtype=bool)
            for bx0, by0, bx1, by1 in found:
                cy = (by0 + by1) / 2
                if not (y0 <= cy <= y1):  # a box belongs to the segment whose band holds its centre
                    continue
                a, b = round(max(bx0, x0) - x0), round(min(bx1, x1) - x0)
                if b > a:
                    covered[a:b] = True
            bare = ~covered
            out.append(SegmentGaps(seg.id, seg.sku, seg.facings,
                                   _facing_flags(bare, seg.facings, self.min_gap_fraction), float(bare.mean())))
        return out

