"""OpenVINO person/pose detector: frames in, `Detections` in original pixels out.

This is the serving path, so it imports only numpy, OpenCV and OpenVINO (never torch or
ultralytics: they cost seconds of import time and hundreds of MB per Ray replica). One compiled
model serves batches of 1..N frames at a fixed square input size: the IR's input is reshaped to
`[-1, 3, S, S]` (dynamic batch, static spatial size, so the CPU plugin still plans its kernels for
one resolution). Colour conversion, layout change and /255 are compiled into the graph with
OpenVINO's PrePostProcessor, so callers pass the uint8 BGR frames OpenCV gives them.

Example:
    >>> det = PoseDetector(ir_path("yolo11n-pose", "INT8"), input_size=640)  # doctest: +SKIP
    >>> [len(d) for d in det.detect([frame1, frame2])]  # doctest: +SKIP
    [3, 4]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import openvino as ov
import openvino.properties as props
import openvino.properties.hint as hints
from openvino.preprocess import ColorFormat, PrePostProcessor

from models.detections import Detections
from models.postprocess import decode_pose_output
from models.preprocess import letterbox_batch

PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
_PRECISIONS = {"f32": ov.Type.f32, "bf16": ov.Type.bf16, "f16": ov.Type.f16}


class PoseDetector:
    """YOLO-pose OpenVINO IR compiled for one device and one square input size.

    Args:
        model_xml: Path of the IR (`model.xml`), FP32 or INT8, as written by `models.export`.
        device: OpenVINO device ("CPU", "GPU", "NPU", "AUTO").
        input_size: Square letterbox side in pixels, a multiple of 32. Small people need more:
            on vtest.avi (people 70-120 px tall) 960 finds far more than 640.
        conf_threshold: Minimum person score kept.
        iou_threshold: NMS overlap above which the weaker box is dropped.
        num_threads: CPU inference threads (None: OpenVINO's default, all cores).
        performance_hint: "LATENCY" (one stream, a batch runs as one request) or "THROUGHPUT"
            (several streams, a batch is split over parallel requests). On 2 cores LATENCY was as
            fast or faster for batches of 2-8 and twice as fast for single frames.
        inference_precision: CPU compute precision. "f32" by default because OpenVINO otherwise
            silently runs in bf16 on CPUs that have it (AVX512-BF16, AMX) and results then
            depend on the host; pass None for the plugin default.
        max_det: At most this many persons per frame.
    """

    def __init__(
        self,
        model_xml: Path | str,
        device: str = "CPU",
        input_size: int = 640,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        num_threads: int | None = None,
        *,
        performance_hint: PerformanceHint = "LATENCY",
        inference_precision: str | None = "f32",
        max_det: int = 300,
    ) -> None:
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 (the model stride), got {input_size}")
        model_xml = Path(model_xml)
        if not model_xml.is_file():
            raise FileNotFoundError(f"{model_xml} does not exist: export it with models.export.prepare()")
        self.model_xml = model_xml
        self.device = device
        self.input_size = input_size
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_det = max_det

        core = ov.Core()
        model = core.read_model(model_xml)
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"{model_xml}: expected 1 input and 1 output (YOLO-pose exported without NMS)")
        model.reshape({model.input(0): ov.PartialShape([-1, 3, input_size, input_size])})
        model = _embed_preprocessing(model)

        config: dict[str, object] = {hints.performance_mode: getattr(hints.PerformanceMode, performance_hint)}
        if device.upper().startswith("CPU"):
            if num_threads is not None:
                config[props.inference_num_threads] = int(num_threads)
            if inference_precision is not None:
                config[hints.inference_precision] = _PRECISIONS[inference_precision.lower()]
        self._compiled = core.compile_model(model, device, config)
        n_requests = max(1, int(self._compiled.get_property(props.optimal_number_of_infer_requests)))
        self._queue = ov.AsyncInferQueue(self._compiled, n_requests)
        self._lock = threading.Lock()  # one batch at a time: detect() is safe from several threads

    @property
    def num_requests(self) -> int:
        """Parallel infer requests a batch is split over (1 under the LATENCY hint)."""
        return len(self._queue)

    def compiled_property(self, name: str) -> object:
        """A property of the compiled model (e.g. "INFERENCE_NUM_THREADS"), for logs and benchmarks."""
        return self._compiled.get_property(name)

    def infer_raw(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Run (B, S, S, 3) uint8 BGR letterboxed frames; returns the raw (B, 56, A) output."""
        chunks = np.array_split(batch, min(len(batch), len(self._queue)))
        results: dict[int, npt.NDArray[np.float32]] = {}

        def done(request: ov.InferRequest, index: int) -> None:
            results[index] = request.get_output_tensor(0).data.copy()  # the request is reused

        with self._lock:
            self._queue.set_callback(done)
            for i, chunk in enumerate(chunks):
                self._queue.start_async({0: chunk}, userdata=i)
            self._queue.wait_all()
        if len(results) == 1:
            return results[0]
        return np.concatenate([results[i] for i in range(len(chunks))])

    def detect(self, frames: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect people in BGR frames of any sizes; one `Detections` per frame, in its own pixels."""
        if len(frames) == 0:
            return []
        batch, infos = letterbox_batch(frames, self.input_size)
        out = self.infer_raw(batch)
        return decode_pose_output(
            out,
            infos,
            [f.shape[:2] for f in frames],
            self.conf_threshold,
            self.iou_threshold,
            self.max_det,
        )


def _embed_preprocessing(model: ov.Model) -> ov.Model:
    """Accept (N, H, W, 3) uint8 BGR and do RGB, NCHW and /255 inside the compiled graph."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
    return ppp.build()
