"""Turn the raw YOLO11-pose output tensor into per-frame `Detections` in original frame pixels.

The exported model (no NMS inside) returns (B, 56, A): for each of A anchors `cx, cy, w, h` in
letterboxed input pixels, the person score (sigmoid already applied), then 17 x `(x, y, conf)`.
We keep anchors above the confidence threshold, run NMS, cap at `max_det`, and undo the
letterbox. NMS is OpenCV's `cv2.dnn.NMSBoxes` (C++, same greedy rule as torchvision: a box is
dropped when its IoU with a higher-scored kept box is above the threshold), so the runtime needs
neither torch nor a hand-written loop.

Example:
    >>> import numpy as np
    >>> from models.preprocess import LetterboxInfo
    >>> out = np.zeros((1, 56, 2), np.float32)
    >>> out[0, :5, 0] = [320, 320, 40, 100, 0.9]  # one person in the middle
    >>> dets = decode_pose_output(out, [LetterboxInfo(1.0, 0.0, 0.0)], [(640, 640)])
    >>> dets[0].boxes
    array([[300., 270., 340., 370.]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from models.detections import NUM_KEYPOINTS, Detections
from models.preprocess import LetterboxInfo, unletterbox_boxes, unletterbox_keypoints

NUM_CHANNELS = 4 + 1 + NUM_KEYPOINTS * 3
"""56 rows per anchor: box, person score, keypoints."""


def xywh_to_xyxy(xywh: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """(N, 4) centre-size boxes -> corner boxes."""
    xywh = np.asarray(xywh, dtype=np.float32)
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, 0:2] - half, xywh[:, 0:2] + half], axis=1)


def nms(
    boxes: npt.NDArray[np.floating], scores: npt.NDArray[np.floating], iou_threshold: float, max_det: int = 0
) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression with OpenCV; returns kept indices, best score first.

    Args:
        boxes: (N, 4) xyxy boxes.
        scores: (N,) scores.
        iou_threshold: A box whose IoU with a better kept box exceeds this is dropped.
        max_det: Keep at most this many (0: no limit).
    """
    if len(boxes) == 0:
        return np.zeros((0,), np.intp)
    boxes = np.asarray(boxes, dtype=np.float64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh, np.asarray(scores, np.float32), 0.0, float(iou_threshold), top_k=int(max_det))
    return np.asarray(keep, dtype=np.intp).reshape(-1)


def decode_one(
    pred: npt.NDArray[np.float32],
    info: LetterboxInfo,
    frame_hw: tuple[int, int],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_det: int = 300,
) -> Detections:
    """Decode one image's (56, A) output into `Detections` in original frame pixels.

    Args:
        pred: (56, A) raw output of one image.
        info: How that frame was letterboxed.
        frame_hw: Original frame height and width (results are clipped to it).
        conf_threshold: Minimum person score kept (strictly greater, as ultralytics does).
        iou_threshold: NMS IoU threshold.
        max_det: At most this many persons per frame.
    """
    if pred.ndim != 2 or pred.shape[0] != NUM_CHANNELS:
        raise ValueError(f"expected ({NUM_CHANNELS}, A) pose output, got {pred.shape}")
    # Filter on the score row before transposing: usually only a few dozen of ~8400 anchors survive.
    cand = pred[:, pred[4] > conf_threshold].T
    if len(cand) == 0:
        return Detections.empty()
    boxes = xywh_to_xyxy(cand[:, :4])
    scores = cand[:, 4]
    keep = nms(boxes, scores, iou_threshold, max_det)
    kpts = cand[keep, 5:].reshape(-1, NUM_KEYPOINTS, 3)
    return Detections(
        boxes=unletterbox_boxes(boxes[keep], info, frame_hw),
        scores=scores[keep],
        keypoints=unletterbox_keypoints(kpts, info, frame_hw),
    )


def decode_pose_output(
    output: npt.NDArray[np.float32],
    infos: Sequence[LetterboxInfo],
    frame_hws: Sequence[tuple[int, int]],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_det: int = 300,
) -> list[Detections]:
    """Decode a (B, 56, A) batch output into one `Detections` per frame (see `decode_one`)."""
    if output.ndim != 3 or output.shape[1] != NUM_CHANNELS:
        raise ValueError(f"expected (B, {NUM_CHANNELS}, A) pose output, got {output.shape}")
    if not len(output) == len(infos) == len(frame_hws):
        raise ValueError(f"{len(output)} outputs, {len(infos)} letterbox infos, {len(frame_hws)} frames")
    return [
        decode_one(p, info, hw, conf_threshold, iou_threshold, max_det)
        for p, info, hw in zip(output, infos, frame_hws, strict=True)
    ]
