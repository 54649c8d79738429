"""Startup hook: let `import torchvision` succeed in *every* process of a CPU-torch venv.

Why a startup hook: PyPI's torchvision is a CUDA build. Next to `torch==2.13.0+cpu` its compiled ops
cannot load, and `import torchvision` dies (`operator torchvision::nms does not exist`: it registers
fake kernels for `nms`/`qnms` unconditionally). transformers imports torchvision whenever it is
installed (image utilities), and vLLM imports transformers in processes it starts itself
(`python -m vllm.model_executor.models.registry`, the engine core), so a fix inside our own code
cannot reach them. `sf` copies this file into the venv's site-packages as
`_storefleet_torchvision_cpu.py` with a `.pth` line importing it; Python runs it at start-up.

What it does: installs a meta-path finder (stdlib only, no torch import at start-up). When anything
imports torchvision, its loader first declares the `nms`/`qnms` schemas (with a pure-torch `nms`),
only if torchvision's own ops fail to load, then the import continues. Other torchvision ops stay
unavailable; the image transforms transformers uses are plain torch. Where the
ops load (a CUDA torch, or a matching CPU torchvision) it changes nothing. `models.export`'s shim
calls `declare_ops` itself before importing torchvision; this hook then finds them declared.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path
from typing import Any

_LIB: Any = None  # the torch.library.Library; its registrations vanish if it is garbage collected


def _nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy NMS with torchvision's semantics (drop boxes with IoU > threshold against a kept box)."""
    import torch

    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.numel():
        i, order = order[0], order[1:]
        keep.append(i)
        w = (torch.minimum(x2[i], x2[order]) - torch.maximum(x1[i], x1[order])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[order]) - torch.maximum(y1[i], y1[order])).clamp(min=0)
        inter = w * h
        order = order[inter / (areas[i] + areas[order] - inter) <= iou_threshold]
    return torch.stack(keep) if keep else torch.zeros((0,), dtype=torch.int64)


def declare_ops(package_dir: Path) -> bool:
    """Declare torchvision's `nms`/`qnms` when its compiled library cannot load. True if declared."""
    global _LIB
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 (already there: real ops, or another shim)
        return False
    except (AttributeError, RuntimeError):
        pass
    libs = sorted(package_dir.glob("_C*.so"))
    try:
        for lib in libs:
            torch.ops.load_library(str(lib))
        if libs:
            return False
    except (OSError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CompositeExplicitAutograd")
    _LIB = lib
    return True


class _DeclaringLoader(importlib.abc.Loader):
    """Wraps torchvision's loader: declare the ops, then run the real module code."""

    def __init__(self, loader: Any, package_dir: Path) -> None:
        self.loader, self.package_dir = loader, package_dir

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        try:
            declare_ops(self.package_dir)
        except Exception as e:  # never break an import that might have worked
            print(f"storefleet torchvision hook: {e!r}", file=sys.stderr)
        self.loader.exec_module(module)


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Finds torchvision like the other finders do, with a loader that declares the ops first.

    Acting at load time, not at `find_spec` time, keeps `importlib.util.find_spec("torchvision")`
    free of side effects (`models.export`'s shim calls it, then `declare_ops` itself).
    """

    #: Marks every copy of this finder (the site-packages copy and `models.torchvision_cpu_hook`).
    storefleet_torchvision_hook = True

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "torchvision":
            return None
        for finder in sys.meta_path:
            if getattr(finder, "storefleet_torchvision_hook", False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not spec.submodule_search_locations:
            return spec
        spec.loader = _DeclaringLoader(spec.loader, Path(next(iter(spec.submodule_search_locations))))
        return spec


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if "torchvision" not in sys.modules and not any(
        getattr(f, "storefleet_torchvision_hook", False) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _TorchvisionFinder())
