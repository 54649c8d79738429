"""Bundled footage: the real pedestrian clip vtest.avi from Debian's `opencv-doc` package.

Nothing is downloaded from a hub: the clip comes out of the Debian package with `apt-get download`
and `dpkg-deb` (no install of the 274 MB package), and is cached under the StoreFleet cache folder.
`STOREFLEET_VTEST` points at a copy you already have.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

VTEST_IN_DEB = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
SYSTEM_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
BUNDLED_PREFIX = "bundled:"


class AssetError(RuntimeError):
    """A bundled asset could not be prepared; the message says what to install or set."""


def cache_dir() -> Path:
    """Where models and footage live: `$STOREFLEET_CACHE`, else `~/.cache/storefleet`."""
    return Path(os.environ.get("STOREFLEET_CACHE", Path.home() / ".cache" / "storefleet"))


def vtest_path() -> Path:
    """Path of vtest.avi, extracting it from Debian's opencv-doc package on first use."""
    env = os.environ.get("STOREFLEET_VTEST")
    if env:
        if not Path(env).is_file():
            raise AssetError(f"STOREFLEET_VTEST={env} does not exist")
        return Path(env)
    if SYSTEM_VTEST.is_file():
        return SYSTEM_VTEST
    target = cache_dir() / "footage" / "vtest.avi"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sf-vtest-") as tmp:
        log.info("fetching vtest.avi from Debian's opencv-doc package (about 96 MB download)")
        dl = _run(["apt-get", "download", "opencv-doc"], cwd=tmp)
        if dl.returncode != 0:
            # A fresh machine has empty package lists; refresh them once, then retry.
            _run(["apt-get", "update", "-qq"], cwd=tmp)
            dl = _run(["apt-get", "download", "opencv-doc"], cwd=tmp)
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if dl.returncode != 0 or not debs:
            raise AssetError(
                "could not download Debian's opencv-doc package for the demo footage "
                f"(apt-get said: {dl.stderr.strip()[-300:]}); install it or set STOREFLEET_VTEST"
            )
        out = Path(tmp) / "x"
        out.mkdir()
        tar = subprocess.run(
            f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x -C {out} {VTEST_IN_DEB}",
            shell=True,
            capture_output=True,
            text=True,
        )
        extracted = out / VTEST_IN_DEB
        if tar.returncode != 0 or not extracted.is_file():
            raise AssetError(f"vtest.avi not found in {debs[0].name}: {tar.stderr.strip()[-300:]}")
        tmp_target = target.with_suffix(".part")
        shutil.copyfile(extracted, tmp_target)
        tmp_target.replace(target)
    return target


def resolve_source(source: str) -> str:
    """Turn `bundled:NAME` into a local path; other sources pass through unchanged."""
    if not source.startswith(BUNDLED_PREFIX):
        return source
    name = source.removeprefix(BUNDLED_PREFIX)
    if name != "vtest.avi":
        raise AssetError(f"unknown bundled source {source!r}; the bundled footage is 'bundled:vtest.avi'")
    return str(vtest_path())


def _run(cmd: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as e:
        raise AssetError(f"{cmd[0]} is not available ({e}); set STOREFLEET_VTEST to a copy of vtest.avi") from None
