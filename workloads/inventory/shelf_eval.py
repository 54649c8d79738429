"""How good is a gap detector: facing-level precision / recall of empty facings, and gap-ratio error.

An empty facing found empty is a true positive; a stocked facing called empty a false positive; an
empty facing missed a false negative. The gap-ratio error is the mean absolute difference between
the detected and the true share of empty facings per segment.

Example:
    >>> from workloads.inventory.shelf_gaps import ClassicalGapDetector
    >>> r = evaluate(ClassicalGapDetector(), scenes(range(3)))
    >>> 0 <= r.precision <= 1 and r.images == 3
    True
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from workloads.inventory.shelf_gaps import GapDetector
from workloads.inventory.shelf_synth import ShelfScene, make_shelf


@dataclass(frozen=True)
class GapScore:
    images: int
    segments: int
    facings: int
    tp: int
    fp: int
    fn: int
    gap_ratio_mae: float
    ms_per_image: float

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def scenes(seeds: Iterable[int], **kwargs: Any) -> Iterator[ShelfScene]:
    for s in seeds:
        yield make_shelf(seed=s, **kwargs)


def evaluate(detector: GapDetector, shelf_scenes: Iterable[ShelfScene]) -> GapScore:
    tp = fp = fn = n_img = n_seg = n_fac = 0
    abs_err = 0.0
    spent = 0.0
    for scene in shelf_scenes:
        t0 = time.perf_counter()
        found = {g.segment_id: g for g in detector.detect(scene.image, scene.segments)}
        spent += time.perf_counter() - t0
        n_img += 1
        for seg in scene.segments:
            truth = scene.empty[seg.id]
            got = set(found[seg.id].empty_facings)
            for i, is_empty in enumerate(truth):
                tp += is_empty and i in got
                fp += (not is_empty) and i in got
                fn += is_empty and i not in got
            abs_err += abs(found[seg.id].gap_ratio - scene.gap_ratio(seg.id))
            n_seg += 1
            n_fac += len(truth)
    return GapScore(n_img, n_seg, n_fac, tp, fp, fn, abs_err / max(n_seg, 1), 1000 * spent / max(n_img, 1))
