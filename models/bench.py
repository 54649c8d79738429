"""Speed and agreement of the detector back-ends on the same frames, in the same process.

Answers the two questions that pick a deployment: how many frames per second each back-end
does on this machine (ultralytics' own PyTorch predict as the baseline, our OpenVINO FP32 and
INT8 runtimes), and whether INT8 still finds the same people as FP32. Every back-end gets the
same decoded frames, is warmed up first, and runs with the same thread count (recorded in the
result), so the numbers compare. torch/ultralytics are imported only if the baseline is asked for.

Example:
    >>> result = bench_detectors(frames, input_size=960, n_frames=32)  # doctest: +SKIP
    >>> result["openvino_int8"]["fps"], result["int8_vs_fp32"]["f1"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from models.detections import Detections
from models.registry import Precision, ir_path
from models.runtime import PoseDetector

T = TypeVar("T")
R = TypeVar("R")


def box_iou(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """(N, M) IoU matrix of xyxy boxes."""
    a = np.asarray(a, np.float32).reshape(-1, 1, 4)
    b = np.asarray(b, np.float32).reshape(1, -1, 4)
    w = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    h = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def match_boxes(
    reference: npt.NDArray[np.floating], candidate: npt.NDArray[np.floating], iou_threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, highest IoU first; returns (ref index, cand index, IoU) pairs."""
    iou = box_iou(reference, candidate)
    pairs = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < iou_threshold:
            break
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c, float(iou[r, c])))
    return pairs


def agreement(
    reference: Sequence[Detections], candidate: Sequence[Detections], iou_threshold: float = 0.5
) -> dict[str, float]:
    """Precision, recall and F1 of `candidate` against `reference` boxes, and mean IoU of matches.

    With reference=FP32 and candidate=INT8 this measures what quantisation changed, without
    needing ground truth. Two empty sides agree perfectly (F1 = 1).
    """
    matched, ious, n_ref, n_cand = 0, [], 0, 0
    for ref, cand in zip(reference, candidate, strict=True):
        pairs = match_boxes(ref.boxes, cand.boxes, iou_threshold)
        matched += len(pairs)
        ious += [p[2] for p in pairs]
        n_ref += len(ref)
        n_cand += len(cand)
    precision = matched / n_cand if n_cand else 1.0
    recall = matched / n_ref if n_ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
        "matched": matched,
        "reference_boxes": n_ref,
        "candidate_boxes": n_cand,
    }


def _timed(detect: Callable[[T], R], items: Sequence[T], warmup: int) -> tuple[list[R], float]:
    """Run `detect` on every item after `warmup` untimed calls; returns results and seconds."""
    for item in items[:warmup]:
        detect(item)
    t0 = time.perf_counter()
    out = [detect(item) for item in items]
    return out, time.perf_counter() - t0


def bench_detectors(
    frames: Sequence[npt.NDArray[np.uint8]],
    input_size: int = 640,
    n_frames: int | None = None,
    *,
    name: str = "yolo11n-pose",
    fp32_xml: Path | None = None,
    int8_xml: Path | None = None,
    cache_dir: Path | None = None,
    num_threads: int | None = None,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    warmup: int = 3,
    batch_size: int = 4,
    include_torch: bool = True,
) -> dict[str, Any]:
    """Frames/s of PyTorch predict, OpenVINO FP32 and INT8, plus INT8-vs-FP32 agreement.

    Frames are processed one at a time (a camera's view of latency), and for OpenVINO also
    `batch_size` at a time (what the batched Serve deployment does); all timings include
    letterboxing, inference, decode and NMS.

    Args:
        frames: BGR frames; the first `n_frames` are used.
        input_size: Letterbox size for every back-end.
        n_frames: Frames timed per back-end (default: all of them).
        name: Registry model name (for the checkpoint and the default IR paths).
        fp32_xml: FP32 IR (default: the cache's).
        int8_xml: INT8 IR (default: the cache's).
        cache_dir: Cache root for the default IR paths.
        num_threads: Threads for every back-end (default: all cores).
        conf_threshold: Person score threshold for every back-end.
        iou_threshold: NMS threshold for every back-end.
        warmup: Untimed frames before timing each back-end.
        batch_size: Frames per call for the batched OpenVINO timing (`batched_fps`).
        include_torch: Also time ultralytics' PyTorch predict (imports torch).

    Returns:
        One entry per back-end ("openvino_fp32", "openvino_int8", "pytorch") with `fps`,
        `ms_per_frame` and `persons_per_frame` (OpenVINO also `batched_fps`), the agreements
        `int8_vs_fp32` and `fp32_vs_pytorch` (see `agreement`), and the settings used.
    """
    frames = list(frames[:n_frames])
    if not frames:
        raise ValueError("bench_detectors needs at least one frame")
    threads = num_threads or os.cpu_count() or 1
    xmls = {
        "openvino_fp32": fp32_xml or ir_path(name, Precision.FP32, cache_dir),
        "openvino_int8": int8_xml or ir_path(name, Precision.INT8, cache_dir),
    }
    results: dict[str, list[Detections]] = {}
    out: dict[str, Any] = {
        "input_size": input_size,
        "frames": len(frames),
        "num_threads": threads,
        "batch_size": batch_size,
        "conf_threshold": conf_threshold,
        "iou_threshold": iou_threshold,
        "notes": [
            "OpenVINO: LATENCY hint, f32 inference precision, square letterbox.",
        ],
    }
    for key, xml in xmls.items():
        det = PoseDetector(
            xml, input_size=input_size, conf_threshold=conf_threshold, iou_threshold=iou_threshold, num_threads=threads
        )
        results[key], seconds = _timed(lambda f, d=det: d.detect([f])[0], frames, warmup)
        batches = [frames[i : i + batch_size] for i in range(0, len(frames), batch_size)]
        _, batched_seconds = _timed(det.detect, batches, min(warmup, 1))
        out[key] = _entry(results[key], seconds) | {"batched_fps": len(frames) / batched_seconds}
    out["int8_vs_fp32"] = agreement(results["openvino_fp32"], results["openvino_int8"])
    if include_torch:
        results["pytorch"], seconds = bench_ultralytics(
            frames, name, input_size, threads, conf_threshold, iou_threshold, warmup
        )
        out["pytorch"] = _entry(results["pytorch"], seconds)
        out["fp32_vs_pytorch"] = agreement(results["pytorch"], results["openvino_fp32"])
        out["notes"].append(
            "PyTorch: ultralytics YOLO.predict per frame; it letterboxes to the minimal "
            "stride-32 rectangle (e.g. 640x480 for 4:3), not a square."
        )
    return out


def _entry(results: list[Detections], seconds: float) -> dict[str, float]:
    return {
        "fps": len(results) / seconds,
        "ms_per_frame": 1000 * seconds / len(results),
        "persons_per_frame": float(np.mean([len(d) for d in results])),
    }


def bench_ultralytics(
    frames: Sequence[npt.NDArray[np.uint8]],
    name: str = "yolo11n-pose",
    input_size: int = 640,
    threads: int = 1,
    conf: float = 0.25,
    iou: float = 0.6,
    warmup: int = 3,
) -> tuple[list[Detections], float]:
    """Ultralytics' PyTorch `predict` the usual way, one frame per call; returns results and seconds.

    The baseline, and a cross-check that our letterbox/decode/NMS find what ultralytics finds.
    """
    import torch

    from models.export import import_ultralytics
    from models.registry import ensure_checkpoint

    yolo = import_ultralytics()
    torch.set_num_threads(threads)
    model = yolo(str(ensure_checkpoint(name)), task="pose")

    def detect(frame: npt.NDArray[np.uint8]) -> Detections:
        r = model.predict(frame, imgsz=input_size, conf=conf, iou=iou, device="cpu", verbose=False)[0]
        if r.boxes is None or len(r.boxes) == 0:
            return Detections.empty()
        return Detections(
            boxes=r.boxes.xyxy.numpy(),
            scores=r.boxes.conf.numpy(),
            keypoints=r.keypoints.data.numpy(),
        )

    return _timed(detect, frames, warmup)
