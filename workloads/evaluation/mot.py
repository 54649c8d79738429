"""Our tracker on real MOT ground truth: TUD-Campus and TUD-Stadtmitte, as shipped inside motmetrics.

motmetrics 1.4.0 carries, per sequence, the ground truth (`gt.txt`) and the output of a reference
tracker (`test.txt`, MOT15 format). There are no images, so the reference tracker's boxes stand in
for detections: we drop its ids, feed the boxes frame by frame to `PersonTracker` (the same wrapper
the cameras use), and score both with motmetrics against the same ground truth. The difference is
then purely the association (who is who over time), which is what our tracker decides.

TUD sequences are 640x480 at 25 fps; detections carry no score, so each gets `DETECTION_SCORE`.

Example:
    >>> rows = evaluate_tud()  # doctest: +SKIP
    >>> rows[0].sequence, rows[0].idf1 >= rows[0].reference_idf1  # doctest: +SKIP
    ('TUD-Campus', True)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt

from workloads.config import TrackerConfig
from workloads.tracking import PersonTracker

SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
TUD_FPS = 25.0
DETECTION_SCORE = 0.9
METRICS = ("mota", "idf1", "num_switches", "num_false_positives", "num_misses", "mostly_tracked")


def motmetrics() -> ModuleType:
    """Import motmetrics 1.4.0 under numpy 2.

    motmetrics 1.4.0 (the latest release) calls `np.asfarray`, which numpy 2 removed; the shim puts
    back exactly that function (`asarray` with a float dtype) before the import.
    """
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    return importlib.import_module("motmetrics")


def data_dir() -> Path:
    return Path(motmetrics().__file__).parent / "data"


@dataclass(frozen=True)
class MotResult:
    """Our tracker and the reference tracker on one sequence (same boxes, same ground truth)."""

    sequence: str
    frames: int
    mota: float
    idf1: float
    id_switches: int
    reference_mota: float
    reference_idf1: float
    reference_id_switches: int


def load_mot(path: Path) -> npt.NDArray[np.float64]:
    """MOT15 rows `frame, id, x, y, w, h, conf, ...` as a float array."""
    return np.loadtxt(path, delimiter=",", ndmin=2)


def track_boxes(rows: npt.NDArray[np.float64], cfg: TrackerConfig, fps: float = TUD_FPS) -> npt.NDArray[np.float64]:
    """Run PersonTracker on the boxes of `rows` (ids ignored); returns MOT rows with our ids."""
    tracker = PersonTracker(cfg, fps=fps)
    out: list[tuple[float, ...]] = []
    last = int(rows[:, 0].max()) if len(rows) else 0
    for f in range(1, last + 1):
        r = rows[rows[:, 0] == f]
        xyxy = np.c_[r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]]
        upd = tracker.update(xyxy, np.full(len(r), DETECTION_SCORE), timestamp=f / fps)
        for tid, b in zip(upd.track_ids.tolist(), upd.boxes, strict=True):
            out.append((f, tid + 1, b[0], b[1], b[2] - b[0], b[3] - b[1]))
    return np.array(out, dtype=np.float64).reshape(-1, 6)


def score(gt: npt.NDArray[np.float64], hyp: npt.NDArray[np.float64], name: str) -> dict[str, float]:
    """motmetrics' MOTA / IDF1 / switches of hypothesis rows vs ground-truth rows (IoU >= 0.5)."""
    mm = motmetrics()
    acc = mm.MOTAccumulator(auto_id=False)
    frames = sorted(set(gt[:, 0].astype(int).tolist()) | set(hyp[:, 0].astype(int).tolist()))
    for f in frames:
        g = gt[gt[:, 0] == f]
        h = hyp[hyp[:, 0] == f]
        dist = mm.distances.iou_matrix(g[:, 2:6], h[:, 2:6], max_iou=0.5)
        acc.update(g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), dist, frameid=f)
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name=name)
    return {k: float(summary[k].iloc[0]) for k in METRICS}


def evaluate_sequence(name: str, cfg: TrackerConfig | None = None) -> MotResult:
    """Score our tracker and the reference tracker on one TUD sequence."""
    folder = data_dir() / name
    gt = load_mot(folder / "gt.txt")
    gt = gt[gt[:, 6] >= 1]  # MOT15: confidence 0 rows are ignored regions
    ref = load_mot(folder / "test.txt")
    ours = score(gt, track_boxes(ref, cfg or TrackerConfig()), name)
    theirs = score(gt, ref[:, :6], name)
    return MotResult(
        sequence=name,
        frames=int(gt[:, 0].max()),
        mota=ours["mota"],
        idf1=ours["idf1"],
        id_switches=int(ours["num_switches"]),
        reference_mota=theirs["mota"],
        reference_idf1=theirs["idf1"],
        reference_id_switches=int(theirs["num_switches"]),
    )


def evaluate_tud(cfg: TrackerConfig | None = None) -> list[MotResult]:
    """Both TUD sequences."""
    return [evaluate_sequence(s, cfg) for s in SEQUENCES]
