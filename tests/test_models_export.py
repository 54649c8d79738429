"""End-to-end: export the real YOLO11n-pose checkpoint to FP32 and INT8 IRs and run them on vtest.avi.

Slow (about a minute on 2 cores): exports into a fresh temp cache once per session, calibrates
INT8 on real footage, then checks that people are found, INT8 agrees with FP32, batching is
exact, and the serving path never imports torch. Needs `STOREFLEET_VTEST` pointing at vtest.avi.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.bench import agreement
from models.export import PreparedModel, export_fp32, prepare
from models.runtime import PoseDetector

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
MODEL = "yolo11n-pose"
# vtest.avi's people are 70-120 px tall: at 640 the pose model finds 0-2 per frame, at 960 3-5.
SIZE = 960


def _read_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, i, wanted = [], 0, set(indices)
    while len(frames) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


@pytest.fixture(scope="session")
def vtest() -> Path:
    env = os.environ.get("STOREFLEET_VTEST")
    if not env or not Path(env).is_file():
        pytest.skip(
            "set STOREFLEET_VTEST to a copy of vtest.avi (Debian opencv-doc, "
            "usr/share/doc/opencv-doc/examples/data/vtest.avi)"
        )
    return Path(env)


@pytest.fixture(scope="session")
def test_frames(vtest: Path) -> list[np.ndarray]:
    """8 frames spread over the clip, none of them used for calibration (those are even)."""
    return _read_frames(vtest, [1 + 100 * k for k in range(8)])


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sfcache")


@pytest.fixture(scope="session")
def prepared(vtest: Path, cache: Path) -> PreparedModel:
    calibration = _read_frames(vtest, list(range(0, 795, 8)))  # 100 even frames over the clip
    log: list[str] = []
    return prepare(MODEL, calibration, progress=log.append, input_size=SIZE, cache_dir=cache)


@pytest.fixture(scope="session")
def fp32_dets(prepared: PreparedModel, test_frames: list[np.ndarray]):
    return PoseDetector(prepared.fp32, input_size=SIZE).detect(test_frames)


def test_cache_layout_is_complete_and_clean(prepared: PreparedModel, cache: Path):
    root = cache / "models" / MODEL
    assert prepared.fp32 == root / "FP32" / "model.xml"
    assert prepared.int8 == root / "INT8" / "model.xml"
    for xml in prepared:
        assert xml.with_suffix(".bin").is_file()
        assert json.loads((xml.parent / "meta.json").read_text())["model"] == MODEL
    assert sorted(p.name for p in root.iterdir()) == ["FP32", "INT8"], "no temp folders left behind"
    meta = json.loads((prepared.int8.parent / "meta.json").read_text())
    assert meta["calibration"]["frames"] == 100 and meta["calibration"]["input_size"] == SIZE


def test_export_is_skipped_when_ir_exists(prepared: PreparedModel, cache: Path):
    before = prepared.fp32.stat().st_mtime_ns
    assert export_fp32(MODEL, cache_dir=cache) == prepared.fp32
    assert prepared.fp32.stat().st_mtime_ns == before


def test_fp32_finds_people(fp32_dets, test_frames):
    counts = [len(d) for d in fp32_dets]
    assert np.mean(counts) >= 2, counts
    for d, frame in zip(fp32_dets, test_frames, strict=True):
        h, w = frame.shape[:2]
        assert (d.boxes[:, [0, 2]] <= w).all() and (d.boxes[:, [1, 3]] <= h).all()
        assert (d.boxes[:, 2] > d.boxes[:, 0]).all() and (d.scores > 0.25).all()
        heights = d.boxes[:, 3] - d.boxes[:, 1]
        assert ((heights > 30) & (heights < 300)).all(), heights  # pedestrians, not the whole frame


def test_int8_agrees_with_fp32(prepared: PreparedModel, fp32_dets, test_frames):
    int8 = PoseDetector(prepared.int8, input_size=SIZE).detect(test_frames)
    a = agreement(fp32_dets, int8)
    assert a["f1"] >= 0.8, a
    assert a["mean_iou"] >= 0.85, a


def test_batch_equals_one_by_one_and_mixed_sizes(prepared: PreparedModel, fp32_dets, test_frames):
    det = PoseDetector(prepared.fp32, input_size=SIZE)
    batched = det.detect(test_frames[:4])
    for b, single in zip(batched, fp32_dets[:4], strict=True):
        np.testing.assert_allclose(b.boxes, single.boxes, atol=0.5)
    small = cv2.resize(test_frames[0], (384, 288))  # a lower-resolution camera in the same batch
    mixed = det.detect([small, test_frames[1]])
    assert (mixed[0].boxes[:, 2] <= 384).all() and len(mixed[1]) == len(fp32_dets[1])


def test_openvino_fp32_matches_ultralytics_predict(prepared: PreparedModel, fp32_dets, test_frames):
    """Our letterbox + decode + NMS reproduce what ultralytics' own predict finds."""
    from models.bench import bench_ultralytics

    torch_dets, _ = bench_ultralytics(test_frames, MODEL, SIZE, threads=2, conf=0.25, iou=0.6, warmup=0)
    a = agreement(torch_dets, fp32_dets)
    assert a["f1"] >= 0.8 and a["mean_iou"] >= 0.85, a


def test_runtime_path_does_not_import_torch(prepared: PreparedModel, test_frames):
    code = (
        "import sys, numpy as np\n"
        "from models.runtime import PoseDetector\n"
        f"det = PoseDetector({str(prepared.int8)!r}, input_size=640)\n"
        "det.detect([np.zeros((576, 768, 3), np.uint8)])\n"
        "bad = {'torch', 'ultralytics', 'nncf', 'torchvision'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
