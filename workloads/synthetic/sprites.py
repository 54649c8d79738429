"""Real person cut-outs for synthetic scenes, cut from vtest.avi with our detector and a median background.

Why real cut-outs: a detector that scores coloured boxes tells us nothing about how it scores people.
vtest.avi is a static camera, so the median of frames spread over the clip is an empty background;
`|frame - background|` inside a confidently detected, isolated person box is that person's mask.

Cut-outs are grouped by *identity* (linked over time with our own tracker): a synthetic person is
one real pedestrian, shown in that pedestrian's successive walking poses, so appearance (clothes)
stays consistent over a track the way it does in a real store, and differs between people.

The bank is deterministic given vtest.avi and the detector IR, and cached outside the repository
(`<cache>/synthetic/sprites-v<N>.npz`); `cluster.cli_eval.ensure_sprite_bank()` builds it once (~40 s).

Example:
    >>> bank = load_sprite_bank()  # doctest: +SKIP
    >>> len(bank.identities) > 20, bank.identities[0][0].alpha.dtype  # doctest: +SKIP
    (True, dtype('uint8'))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from workloads.config import TrackerConfig
from workloads.tracking import PersonTracker

#: Bump when the extraction changes: the cache file name carries it, so old banks are rebuilt.
BANK_VERSION = 2
#: vtest.avi's static occluders (lamp post, its sign, the tripod): a person behind them has a hole
#: in the mask, so boxes touching these rectangles are never cut out. `x1, y1, x2, y2` pixels.
VTEST_OCCLUDERS = ((418, 20, 442, 395), (408, 198, 450, 248), (452, 330, 530, 485))
#: Detector settings for extraction: FP32 at 960 finds vtest's 70-120 px people reliably.
EXTRACT_INPUT_SIZE = 960
EXTRACT_FRAME_STEP = 2
MIN_SCORE = 0.55
MIN_HEIGHT_PX = 60
MAX_SPRITES_PER_IDENTITY = 24
MIN_SPRITES_PER_IDENTITY = 5
DIFF_THRESHOLD = 30

BoxesFn = Callable[[Sequence[npt.NDArray[np.uint8]]], list[npt.NDArray[np.float32]]]
"""Frames in, one (N, 5) array `x1, y1, x2, y2, score` per frame out."""


@dataclass(frozen=True)
class Sprite:
    """One cut-out: BGR pixels and alpha, cropped tight to the person (feet = bottom centre).

    Attributes:
        bgr: (h, w, 3) uint8.
        alpha: (h, w) uint8, 255 = person.
        facing: +1 walking right, -1 walking left, 0 unknown (the renderer mirrors to match motion).
    """

    bgr: npt.NDArray[np.uint8]
    alpha: npt.NDArray[np.uint8]
    facing: int = 0

    @property
    def height(self) -> int:
        return int(self.alpha.shape[0])


@dataclass(frozen=True)
class SpriteBank:
    """Cut-outs per real pedestrian, each identity's sprites in walking order."""

    identities: list[list[Sprite]]

    def save(self, path: Path) -> None:
        """Write atomically (npz, no pickle): a concurrent reader sees the old file or the new one."""
        arrays: dict[str, npt.NDArray[np.generic]] = {}
        for i, sprites in enumerate(self.identities):
            for k, s in enumerate(sprites):
                arrays[f"s_{i:04d}_{k:03d}"] = np.dstack([s.bgr, s.alpha])
                arrays[f"f_{i:04d}_{k:03d}"] = np.array([s.facing], np.int8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sprites-", suffix=".npz", dir=path.parent)
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> SpriteBank:
        with np.load(path, allow_pickle=False) as z:
            keys = sorted(k for k in z.files if k.startswith("s_"))
            by_id: dict[int, list[Sprite]] = {}
            for key in keys:
                _, i, k = key.split("_")
                rgba = z[key]
                facing = int(z[f"f_{i}_{k}"][0])
                by_id.setdefault(int(i), []).append(Sprite(rgba[:, :, :3].copy(), rgba[:, :, 3].copy(), facing))
        return cls([by_id[i] for i in sorted(by_id)])


def median_background(frames: Sequence[npt.NDArray[np.uint8]], samples: int = 100) -> npt.NDArray[np.uint8]:
    """Per-pixel median of `samples` frames spread over the clip: the empty scene of a static camera."""
    step = max(1, len(frames) // samples)
    return np.median(np.stack(frames[::step]), axis=0).astype(np.uint8)


def person_mask(
    frame: npt.NDArray[np.uint8], background: npt.NDArray[np.uint8], box: npt.ArrayLike, pad: int = 6
) -> tuple[npt.NDArray[np.uint8], tuple[int, int]] | None:
    """Foreground mask of the person in `box`: the component of |frame - background| at the box centre.

    Returns:
        (mask cropped tight to the person, its top-left corner in the frame), or None when no
        plausible person-shaped foreground is there.
    """
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    cx1, cy1 = max(int(x1) - pad, 0), max(int(y1) - pad, 0)
    cx2, cy2 = min(int(np.ceil(x2)) + pad, fw), min(int(np.ceil(y2)) + pad, fh)
    crop = frame[cy1:cy2, cx1:cx2].astype(np.int16)
    diff = np.abs(crop - background[cy1:cy2, cx1:cx2].astype(np.int16)).max(axis=2)
    fg = (diff > DIFF_THRESHOLD).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return None
    # The person is the largest component overlapping the middle of the detection box.
    my1, my2 = int((y1 - cy1) + 0.3 * (y2 - y1)), int((y1 - cy1) + 0.7 * (y2 - y1))
    mx1, mx2 = int((x1 - cx1) + 0.3 * (x2 - x1)), int((x1 - cx1) + 0.7 * (x2 - x1))
    centre = labels[my1:my2, mx1:mx2]
    counts = np.bincount(centre.reshape(-1), minlength=n)
    counts[0] = 0
    if counts.max() == 0:
        return None
    lab = int(counts.argmax())
    mask = (labels == lab).astype(np.uint8)
    # Fill holes (same-colour-as-background patches inside the body).
    flood = np.pad(mask, 1)
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    mask[holes] = 1
    sx, sy, sw, sh = (int(v) for v in stats[lab, :4])
    tight = mask[sy : sy + sh, sx : sx + sw]
    box_h, box_w = y2 - y1, x2 - x1
    fill = float(tight.mean())
    plausible = 0.85 * box_h <= sh <= 1.15 * box_h and 0.55 * box_w <= sw <= 1.4 * box_w and 0.35 <= fill <= 0.85
    if not plausible or sy == 0 or sx == 0 or sy + sh >= crop.shape[0] or sx + sw >= crop.shape[1]:
        return None  # touches the padded crop: the blob runs into something else
    return tight * 255, (cx1 + sx, cy1 + sy)


def _overlaps(box: npt.NDArray[np.floating], rects: Sequence[Sequence[float]], grow: float = 0.0) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    x1, y1, x2, y2 = box[0] - grow * w, box[1] - grow * h, box[2] + grow * w, box[3] + grow * h
    return any(x1 < r[2] and r[0] < x2 and y1 < r[3] and r[1] < y2 for r in rects)


def extract_sprites(
    frames: Sequence[npt.NDArray[np.uint8]],
    detections: Sequence[npt.NDArray[np.float32]],
    background: npt.NDArray[np.uint8],
    fps: float,
    occluders: Sequence[Sequence[float]] = VTEST_OCCLUDERS,
) -> SpriteBank:
    """Cut isolated, confidently detected people out of frames and group them by identity.

    Args:
        frames: BGR frames of one static camera, in time order, equally spaced.
        detections: per frame, (N, 5) `x1, y1, x2, y2, score` person boxes.
        background: the empty scene (see `median_background`).
        fps: rate of `frames` (the tracker links identities in seconds).
        occluders: static things in front of people (boxes touching them are skipped).
    """
    tracker = PersonTracker(TrackerConfig(lost_track_buffer_s=1.0, minimum_consecutive_frames=2), fps=fps)
    per_track: dict[int, list[tuple[float, Sprite]]] = {}
    last_cx: dict[int, float] = {}
    fh, fw = background.shape[:2]
    for i, (frame, det) in enumerate(zip(frames, detections, strict=True)):
        det = np.asarray(det, dtype=np.float32).reshape(-1, 5)
        upd = tracker.update(det[:, :4], det[:, 4], timestamp=i / fps)
        for tid, box, score in zip(upd.track_ids.tolist(), upd.boxes, upd.scores.tolist(), strict=True):
            cx = float(box[0] + box[2]) / 2
            facing = 0 if tid not in last_cx else int(np.sign(cx - last_cx[tid]))
            last_cx[tid] = cx
            others = [d[:4] for d in det if not np.allclose(d[:4], box)]
            if (
                score < MIN_SCORE
                or box[3] - box[1] < MIN_HEIGHT_PX
                or box[0] < 4
                or box[1] < 4
                or box[2] > fw - 4
                or box[3] > fh - 4
                or _overlaps(box, occluders, 0.05)
                or _overlaps(box, others, 0.15)
            ):
                continue
            cut = person_mask(frame, background, box)
            if cut is None:
                continue
            mask, (ox, oy) = cut
            h, w = mask.shape
            alpha = cv2.GaussianBlur(mask, (3, 3), 0)
            sprite = Sprite(frame[oy : oy + h, ox : ox + w].copy(), alpha, facing)
            per_track.setdefault(tid, []).append((score, sprite))
    identities = []
    for tid in sorted(per_track):
        sprites = [s for _, s in per_track[tid]]
        if len(sprites) < MIN_SPRITES_PER_IDENTITY:
            continue
        keep = np.linspace(0, len(sprites) - 1, min(len(sprites), MAX_SPRITES_PER_IDENTITY)).round().astype(int)
        identities.append([sprites[k] for k in sorted(set(keep.tolist()))])
    return SpriteBank(identities)


def bank_path(cache_dir: Path | None = None) -> Path:
    """Where the sprite bank is cached (`$STOREFLEET_CACHE` or `~/.cache/storefleet`)."""
    root = cache_dir or Path(os.environ.get("STOREFLEET_CACHE") or Path.home() / ".cache" / "storefleet")
    return Path(root) / "synthetic" / f"sprites-v{BANK_VERSION}.npz"


class SpriteBankMissingError(FileNotFoundError):
    """The sprite bank is not built yet; the message says how to build it."""


def build_sprite_bank(video: Path, detect: BoxesFn) -> SpriteBank:
    """Read a static-camera clip, detect people every EXTRACT_FRAME_STEP frames and cut them out.

    Args:
        video: a static-camera clip (vtest.avi).
        detect: the person detector (`cluster.cli_eval.ensure_sprite_bank` passes our FP32 YOLO11n-pose
            at EXTRACT_INPUT_SIZE; kept as an argument so this package never imports the model runtime).
    """
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames: list[npt.NDArray[np.uint8]] = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not frames:
        raise FileNotFoundError(f"no frames in {video}")
    background = median_background(frames)
    sampled = frames[::EXTRACT_FRAME_STEP]
    dets: list[npt.NDArray[np.float32]] = []
    for k in range(0, len(sampled), 8):
        dets += detect(sampled[k : k + 8])
    return extract_sprites(sampled, dets, background, fps / EXTRACT_FRAME_STEP)


def load_sprite_bank(cache_dir: Path | None = None) -> SpriteBank:
    """The cached sprite bank.

    Raises:
        SpriteBankMissingError: not built yet (`storefleet prepare` with a synthetic camera, or
            `storefleet eval` builds it).
    """
    path = bank_path(cache_dir)
    if not path.is_file():
        raise SpriteBankMissingError(
            f"{path} is missing: run `storefleet eval prepare` (or `storefleet prepare` for a fleet with a "
            "synthetic camera) to cut the person sprites out of vtest.avi once"
        )
    return SpriteBank.load(path)
