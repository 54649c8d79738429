"""Model preparation: ultralytics checkpoint -> OpenVINO FP32 IR -> NNCF INT8 IR, in the cache.

This is the only module (with `models.bench`) that imports torch and ultralytics, and only inside
functions: the serving path (`models.runtime`) never pays for them. Each IR is written to a temp
folder beside its final place and renamed in one step, so a crash or a concurrent `prepare`
never leaves a half-written model that a detector replica would load. An existing IR is reused.

Example:
    >>> fp32, int8 = prepare("yolo11n-pose", frames_from_my_cameras)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from models.preprocess import letterbox, to_chw_float
from models.registry import Precision, atomic_dir, ensure_checkpoint, ir_path
from models.torchvision_cpu_hook import declare_ops

Progress = Callable[[str], None]

DEFAULT_CALIBRATION_FRAMES = 300
"""NNCF's default subset size; ~100-300 real frames from the cameras are enough for a YOLO-n."""


class PreparedModel(NamedTuple):
    """The two IRs `prepare` guarantees exist."""

    fp32: Path
    int8: Path


# --------------------------------------------------------------------------------------------
# ultralytics on a CPU-only torch: the torchvision shim
# --------------------------------------------------------------------------------------------



def install_torchvision_cpu_shim() -> bool:
    """Make `import torchvision` work when its compiled ops do not match the installed torch.

    Why: PyPI's torchvision wheel is a CUDA build; next to the CPU torch wheel its `_C` library
    fails to load and `import torchvision` dies with `operator torchvision::nms does not exist`.
    ultralytics imports torchvision when it predicts (warm-up and NMS). The start-up hook's
    `declare_ops` (see `models.torchvision_cpu_hook`) declares the two operator schemas with a
    pure-torch `nms`; on top of that, ultralytics calls `torchvision.ops.nms`, which first asserts
    the compiled ops are present, so we tell it they are. Does nothing when torchvision's own ops load.

    Returns:
        True if the shim was installed by this call.
    """
    if "torchvision" in sys.modules:
        return False
    found = importlib.util.find_spec("torchvision")
    if found is None or not found.submodule_search_locations:
        return False  # no torchvision at all: ultralytics falls back to its own NMS
    if not declare_ops(Path(next(iter(found.submodule_search_locations)))):
        return False
    import torchvision.extension

    torchvision.extension._has_ops = lambda: True  # torchvision.ops.nms asserts this first
    return True


def import_ultralytics() -> Any:
    """Import ultralytics offline and without auto-installs; returns its `YOLO` class.

    ultralytics otherwise pip-installs packages and downloads assets at run time, which fails
    (or worse, changes the environment) on machines that only reach package registries.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    install_torchvision_cpu_shim()
    from ultralytics import YOLO

    return YOLO


# --------------------------------------------------------------------------------------------
# FP32 export
# --------------------------------------------------------------------------------------------


def export_fp32(name: str, *, cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Export the checkpoint to an FP32 OpenVINO IR with dynamic batch and size; returns model.xml.

    The IR has input [?, 3, ?, ?] (`PoseDetector` fixes the size at compile time) and output
    (B, 56, A) without NMS, so any input size and batch can be served from one file.
    """
    target = ir_path(name, Precision.FP32, cache_dir)
    if target.is_file():
        return target
    say = progress or (lambda _msg: None)
    pt = ensure_checkpoint(name)
    say(f"exporting {name} from {pt} to OpenVINO FP32")
    t0 = time.perf_counter()
    with atomic_dir(target.parent, "model.xml") as tmp:
        work = tmp / "work"
        work.mkdir()
        local_pt = work / f"{name}.pt"
        shutil.copyfile(pt, local_pt)  # ultralytics writes beside the .pt: keep site-packages clean
        yolo = import_ultralytics()
        out_dir = Path(
            yolo(str(local_pt)).export(format="openvino", dynamic=True, imgsz=640, batch=1, device="cpu", verbose=False)
        )
        import openvino as ov

        # Re-save under fixed names and with FP32 weights (ultralytics names files after the .pt).
        exported = ov.Core().read_model(out_dir / f"{name}.xml")
        ov.save_model(exported, tmp / "model.xml", compress_to_fp16=False)
        if (out_dir / "metadata.yaml").is_file():
            shutil.copyfile(out_dir / "metadata.yaml", tmp / "metadata.yaml")
        shutil.rmtree(work)
        _write_meta(tmp, name, Precision.FP32, source=pt, seconds=time.perf_counter() - t0)
    say(f"FP32 IR ready at {target} ({time.perf_counter() - t0:.1f} s)")
    return target


# --------------------------------------------------------------------------------------------
# INT8 post-training quantisation
# --------------------------------------------------------------------------------------------


def decode_ignored_scope(model: Any) -> Any:
    """NNCF ignored scope for YOLO's box/keypoint decode ops (what ultralytics itself ignores).

    The decode multiplies grid offsets by strides and applies sigmoids: quantising those to 256
    levels moves every box and keypoint by pixels and costs agreement, while saving almost no
    time. The head's convolutions stay quantised. Finds the head scope from the last Sigmoid.
    """
    import nncf

    ops = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    if not sigmoids:
        return None
    head = sigmoids[-1].split("/", 1)[0]  # e.g. "__module.model.23"
    names = [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))
    ]
    return nncf.IgnoredScope(names=names, validate=False)


def quantize_int8(
    name: str,
    calibration_frames: Iterable[npt.NDArray[np.uint8]],
    input_size: int = 640,
    *,
    cache_dir: Path | None = None,
    max_frames: int = DEFAULT_CALIBRATION_FRAMES,
    preset: str = "mixed",
    ignore_decode: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Quantise the FP32 IR to INT8 with NNCF on our own frames; returns the INT8 model.xml.

    Args:
        name: Registry model name (the FP32 IR is exported first if missing).
        calibration_frames: BGR frames from the cameras it will serve (the first `max_frames`
            are used; ~100-300 spread over time and scenes are enough).
        input_size: Letterbox size used for calibration. Use the size the detector runs at:
            calibrated at 640, INT8 agreed with FP32 at 960 with F1 0.92; calibrated at 960, 0.95.
        cache_dir: Cache root (default: `$STOREFLEET_CACHE` or `~/.cache/storefleet`).
        max_frames: Most frames used for calibration.
        preset: NNCF preset, "mixed" (asymmetric activations) or "performance". On vtest.avi at
            640, mixed agreed better with FP32 (F1 0.96 vs 0.86) at the same speed.
        ignore_decode: Keep the decode ops in float (see `decode_ignored_scope`); without it the
            mean IoU of INT8 vs FP32 boxes fell from 0.99 to 0.86 and INT8 got slower.
        progress: Called with human-readable status lines.

    Raises:
        ValueError: No calibration frame was given.
    """
    target = ir_path(name, Precision.INT8, cache_dir)
    if target.is_file():
        return target
    say = progress or (lambda _msg: None)
    fp32 = export_fp32(name, cache_dir=cache_dir, progress=progress)
    # Keep letterboxed frames as uint8 (1.2 MB each at 640) and convert per item: 300 float
    # tensors at 960 would hold 3 GB.
    items = [letterbox(f, input_size)[0] for f in itertools.islice(calibration_frames, max_frames)]
    if not items:
        raise ValueError("quantize_int8 needs at least one calibration frame")
    say(f"quantising {name} to INT8 on {len(items)} frames at {input_size}")
    t0 = time.perf_counter()
    import nncf
    import openvino as ov

    model = ov.Core().read_model(fp32)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items, lambda img: to_chw_float(img[None])),
        preset=nncf.QuantizationPreset(preset),
        subset_size=len(items),
        ignored_scope=decode_ignored_scope(model) if ignore_decode else None,
    )
    with atomic_dir(target.parent, "model.xml") as tmp:
        ov.save_model(quantized, tmp / "model.xml", compress_to_fp16=False)
        if (fp32.parent / "metadata.yaml").is_file():
            shutil.copyfile(fp32.parent / "metadata.yaml", tmp / "metadata.yaml")
        _write_meta(
            tmp,
            name,
            Precision.INT8,
            source=fp32,
            seconds=time.perf_counter() - t0,
            calibration={
                "frames": len(items),
                "input_size": input_size,
                "preset": preset,
                "ignore_decode": ignore_decode,
            },
        )
    say(f"INT8 IR ready at {target} ({time.perf_counter() - t0:.1f} s)")
    return target


def prepare(
    name: str,
    calibration_frames: Iterable[npt.NDArray[np.uint8]],
    progress: Progress | None = None,
    *,
    input_size: int = 640,
    cache_dir: Path | None = None,
) -> PreparedModel:
    """Make sure both the FP32 and the INT8 IR of `name` exist; returns their model.xml paths."""
    fp32 = export_fp32(name, cache_dir=cache_dir, progress=progress)
    int8 = quantize_int8(name, calibration_frames, input_size, cache_dir=cache_dir, progress=progress)
    return PreparedModel(fp32=fp32, int8=int8)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _write_meta(folder: Path, name: str, precision: Precision, source: Path, seconds: float, **extra: Any) -> None:
    """Record how an IR was made, so a cache folder explains itself."""
    versions = {}
    for dist in ("ultralytics", "torch", "openvino", "nncf"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    meta = {
        "model": name,
        "precision": str(precision),
        "source": str(source),
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions,
        **extra,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
