"""Letterboxing: fit any camera frame into the detector's square input, and map results back.

YOLO models were trained on letterboxed images (aspect kept, grey 114 padding, centred), so we
do exactly what ultralytics' `LetterBox(auto=False, center=True)` does; any other resize costs
accuracy. Frames stay uint8 BGR (as OpenCV decodes them): `runtime.PoseDetector` embeds the
BGR->RGB, HWC->CHW and /255 steps in the compiled OpenVINO graph, which is faster than numpy and
keeps arrays 4x smaller when frames travel between Ray actors. `to_chw_float` does those steps in
numpy for models without that embedded preprocessing (INT8 calibration, reference checks).

Example:
    >>> import numpy as np
    >>> img, info = letterbox(np.zeros((576, 768, 3), np.uint8), 640)
    >>> img.shape, info
    ((640, 640, 3), LetterboxInfo(scale=0.8333333333333334, pad_x=0.0, pad_y=80.0))
    >>> unletterbox_boxes(np.array([[0.0, 80.0, 640.0, 560.0]]), info)
    array([[  0.,   0., 768., 576.]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

PAD_VALUE = 114
"""Grey used by ultralytics for letterbox borders; the model saw it in training."""


class LetterboxInfo(NamedTuple):
    """How a frame was fitted: `letterboxed = original * scale + (pad_x, pad_y)`."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox_info(frame_hw: tuple[int, int], size: int) -> LetterboxInfo:
    """Scale and padding for a `(height, width)` frame in a `size` x `size` input, ultralytics-exact.

    Args:
        frame_hw: Original frame height and width.
        size: Square model input side in pixels.

    Returns:
        The scale and the left/top padding in input pixels.
    """
    h, w = frame_hw
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    # ultralytics splits odd padding with round(d/2 -+ 0.1): the extra pixel goes right/bottom.
    return LetterboxInfo(
        scale=r, pad_x=float(round((size - new_w) / 2 - 0.1)), pad_y=float(round((size - new_h) / 2 - 0.1))
    )


def letterbox(
    img: npt.NDArray[np.uint8], size: int, out: npt.NDArray[np.uint8] | None = None
) -> tuple[npt.NDArray[np.uint8], LetterboxInfo]:
    """Resize keeping aspect ratio and pad to a centred `size` x `size` uint8 image.

    Args:
        img: (H, W, 3) uint8 frame, BGR as OpenCV decodes it (channel order is kept).
        size: Square model input side in pixels.
        out: Optional (size, size, 3) uint8 buffer to write into (saves a copy in batches).

    Returns:
        The (size, size, 3) uint8 letterboxed image and its `LetterboxInfo`.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) frame, got shape {img.shape}")
    h, w = img.shape[:2]
    info = letterbox_info((h, w), size)
    new_w, new_h = max(round(w * info.scale), 1), max(round(h * info.scale), 1)
    if out is None:
        out = np.empty((size, size, 3), np.uint8)
    out.fill(PAD_VALUE)
    x0, y0 = int(info.pad_x), int(info.pad_y)
    roi = out[y0 : y0 + new_h, x0 : x0 + new_w]
    if (new_h, new_w) == (h, w):
        roi[...] = img
    else:
        resized = cv2.resize(img, (new_w, new_h), dst=roi, interpolation=cv2.INTER_LINEAR)
        if not np.shares_memory(resized, out):  # an OpenCV build that refused the strided view
            roi[...] = resized
    return out, info


def letterbox_batch(
    frames: Sequence[npt.NDArray[np.uint8]], size: int
) -> tuple[npt.NDArray[np.uint8], list[LetterboxInfo]]:
    """Letterbox frames of any (mixed) sizes into one contiguous (B, size, size, 3) uint8 batch."""
    batch = np.empty((len(frames), size, size, 3), np.uint8)
    infos = [letterbox(f, size, out=batch[i])[1] for i, f in enumerate(frames)]
    return batch, infos


def to_chw_float(batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(B, H, W, 3) uint8 BGR -> (B, 3, H, W) float32 RGB in [0, 1], the raw model input."""
    chw = batch[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(chw, dtype=np.float32) * np.float32(1.0 / 255.0)


def unletterbox_boxes(
    boxes: npt.NDArray[np.floating],
    info: LetterboxInfo,
    frame_hw: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """Map (N, 4) xyxy boxes from model-input pixels back to original frame pixels.

    Args:
        boxes: (N, 4) boxes in letterboxed coordinates.
        info: The `LetterboxInfo` the frame was fitted with.
        frame_hw: If given, clip to the frame so no box hangs off the picture.

    Returns:
        (N, 4) float32 boxes in original frame pixels.
    """
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    out[:, 0::2] -= info.pad_x
    out[:, 1::2] -= info.pad_y
    out /= info.scale
    if frame_hw is not None:
        h, w = frame_hw
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out


def unletterbox_keypoints(
    keypoints: npt.NDArray[np.floating],
    info: LetterboxInfo,
    frame_hw: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """Map (N, K, 2 or 3) keypoints back to original frame pixels; a third (confidence) column is kept."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] - info.pad_x) / info.scale
    out[..., 1] = (out[..., 1] - info.pad_y) / info.scale
    if frame_hw is not None:
        h, w = frame_hw
        np.clip(out[..., 0], 0, w, out=out[..., 0])
        np.clip(out[..., 1], 0, h, out=out[..., 1])
    return out
