"""A synthetic store clip: plan + simulation + real person cut-outs -> frames, with exact ground truth.

`build_scene("store", seed=3)` is deterministic: the same name, seed and sprite bank give the same
frames and truth on any machine. Frames are rendered on demand (`render(i)`, ~3 ms), so a camera
source can play a scene without writing a video file.

How a frame is made: the empty store (`StoreLayout.render_background`), then people and shelf fronts
painted far-to-near (people behind a shelf are hidden by its front face), each person a real cut-out
of one vtest.avi pedestrian scaled to the perspective height at their feet, with a soft shadow,
mirrored to face where they walk, and cycling through that pedestrian's walking poses as they move.
Staff wear the uniform: the torso band of their cut-outs is recoloured to the vest colour, keeping
the shading. Light sensor noise is added per frame (seeded by frame index, so seeking is exact).

Example:
    >>> scene = build_scene("singles", seed=1)  # doctest: +SKIP
    >>> scene.render(0).shape, scene.truth.unique_visitors  # doctest: +SKIP
    ((576, 768, 3), 8)
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import cv2
import numpy as np
import numpy.typing as npt

from workloads.config import FleetConfig, TrackerConfig
from workloads.synthetic.layout import UNIFORM_HSV, StoreLayout, store_layout
from workloads.synthetic.scenario import SCENES, Plan, Role, Simulation, make_plan, simulate
from workloads.synthetic.sprites import Sprite, SpriteBank, load_sprite_bank
from workloads.synthetic.truth import GroundTruth, PersonTruth, compute_truth

#: Clip start used for event times and POS timestamps (any fixed, timezone-aware instant works).
EPOCH = datetime(2026, 3, 3, 10, 0, 0, tzinfo=UTC)
#: Body sample grid for visibility: columns over the middle of the box (people are narrower than
#: their box), rows over the full height.
_VIS_COLS = np.linspace(0.3, 0.7, 5)
_VIS_ROWS = np.linspace(0.02, 0.98, 25)
#: Pose changes every this many person-heights walked (a stride is ~0.4 heights).
_STRIDE_H = 0.22


def parse_scene_uri(uri: str) -> tuple[str, int]:
    """`"store?seed=3"` (or `"synthetic:store?seed=3"`) -> ("store", 3); seed defaults to 0."""
    body = uri.removeprefix("synthetic:")
    name, _, query = body.partition("?")
    params = parse_qs(query)
    unknown = set(params) - {"seed"}
    if unknown:
        raise ValueError(f"synthetic scene {uri!r}: unknown parameter(s) {sorted(unknown)}; only seed=N")
    try:
        seed = int(params.get("seed", ["0"])[0])
    except ValueError:
        raise ValueError(f"synthetic scene {uri!r}: seed must be an integer") from None
    return name, seed


def uniform_sprite(s: Sprite) -> Sprite:
    """The same person in the staff vest: torso band (below the head, above the hips) recoloured."""
    hsv = cv2.cvtColor(s.bgr, cv2.COLOR_BGR2HSV).astype(np.int16)
    h = s.height
    y1, y2 = int(0.17 * h), int(0.56 * h)
    band = hsv[y1:y2]
    mask = s.alpha[y1:y2] > 100
    band[..., 0] = np.where(mask, UNIFORM_HSV[0], band[..., 0])
    band[..., 1] = np.where(mask, UNIFORM_HSV[1], band[..., 1])
    band[..., 2] = np.where(mask, np.clip(band[..., 2] * 0.5 + 115, 0, 255), band[..., 2])
    hsv[y1:y2] = band
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    return Sprite(bgr, s.alpha, s.facing)


@dataclass
class Scene:
    """One synthetic clip: how to render each frame and what is true about it."""

    name: str
    seed: int
    layout: StoreLayout
    plan: Plan
    sim: Simulation
    sprites: list[list[Sprite]]  # per person: their walking poses (recoloured for staff)
    pose: npt.NDArray[np.int32]  # (F, P) index into the person's sprites
    flip: npt.NDArray[np.bool_]  # (F, P) mirror the sprite
    truth: GroundTruth
    background: npt.NDArray[np.uint8]

    @property
    def fps(self) -> float:
        return self.sim.fps

    @property
    def n_frames(self) -> int:
        return self.sim.n_frames

    @property
    def uri(self) -> str:
        return f"synthetic:{self.name}?seed={self.seed}"

    @property
    def fingerprint(self) -> str:
        """Short hash of what the frames show (trajectories, poses, sprites): keys caches of detector output,
        so a change to the generator or the sprite bank never reuses stale detections."""
        h = hashlib.sha1(self.truth.boxes.tobytes())
        h.update(self.pose.tobytes())
        h.update(self.flip.tobytes())
        for poses in self.sprites:
            h.update(poses[0].bgr.tobytes())
        return h.hexdigest()[:12]

    def fleet_config(self, store_id: str = "SYN", input_size: int | None = None) -> FleetConfig:
        """A one-camera fleet playing this scene once, as fast as the detector allows."""
        cam = self.layout.camera.model_copy(
            update={"source": self.uri, "loop": False, "realtime": False, "input_size": input_size}
        )
        store = self.layout.store_config(store_id).model_copy(update={"cameras": [cam]})
        return FleetConfig(name=f"synthetic-{self.name}-{self.seed}", stores=[store])

    def render(self, f: int) -> npt.NDArray[np.uint8]:
        """Frame `f` as BGR uint8 (deterministic)."""
        img = self.background.copy()
        feet = self.sim.feet[f]
        here = [i for i in range(feet.shape[0]) if not np.isnan(feet[i, 0])]
        for i in here:  # shadows first: they lie on the floor under everyone
            x, y = feet[i]
            h = self.truth.boxes[f, i, 3] - self.truth.boxes[f, i, 1]
            _shadow(img, x, y, h)
        drawables: list[tuple[float, int, int]] = [(float(feet[i, 1]), 1, i) for i in here]
        drawables += [(s.base_y, 0, k) for k, s in enumerate(self.layout.shelves)]
        for _, kind, k in sorted(drawables):
            if kind == 0:
                x1, y1, x2, y2 = self.layout.shelves[k].front
                img[max(y1, 0) : y2, max(x1, 0) : x2] = self.background[max(y1, 0) : y2, max(x1, 0) : x2]
            else:
                self._paste_person(img, f, k)
        rng = np.random.default_rng([self.seed, f, 99])
        noise = rng.normal(0.0, 2.5, img.shape).astype(np.float32)
        return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)

    def _paste_person(self, img: npt.NDArray[np.uint8], f: int, i: int) -> None:
        sprite = self.sprites[i][int(self.pose[f, i])]
        x1, y1, x2, y2 = self.truth.boxes[f, i]
        w, h = max(round(float(x2 - x1)), 1), max(round(float(y2 - y1)), 1)
        bgr = cv2.resize(sprite.bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(sprite.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.flip[f, i]:
            bgr, alpha = bgr[:, ::-1], alpha[:, ::-1]
        _blend(img, bgr, alpha, round(float(x1)), round(float(y1)))


def _blend(img: npt.NDArray[np.uint8], bgr: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8], x: int, y: int
           ) -> None:
    fh, fw = img.shape[:2]
    h, w = alpha.shape
    cx1, cy1 = max(x, 0), max(y, 0)
    cx2, cy2 = min(x + w, fw), min(y + h, fh)
    if cx1 >= cx2 or cy1 >= cy2:
        return
    a = alpha[cy1 - y : cy2 - y, cx1 - x : cx2 - x].astype(np.float32)[..., None] / 255.0
    src = bgr[cy1 - y : cy2 - y, cx1 - x : cx2 - x].astype(np.float32)
    dst = img[cy1:cy2, cx1:cx2].astype(np.float32)
    img[cy1:cy2, cx1:cx2] = (src * a + dst * (1.0 - a)).astype(np.uint8)


def _shadow(img: npt.NDArray[np.uint8], x: float, y: float, h: float) -> None:
    fh, fw = img.shape[:2]
    rx, ry = max(int(0.2 * h), 2), max(int(0.045 * h), 1)
    x1, y1, x2, y2 = int(x) - rx - 2, int(y) - ry - 2, int(x) + rx + 3, int(y) + ry + 3
    if x2 <= 0 or y2 <= 0 or x1 >= fw or y1 >= fh:
        return
    mask = np.zeros((y2 - y1, x2 - x1), np.float32)
    cv2.ellipse(mask, (int(x) - x1, int(y) - y1), (rx, ry), 0, 0, 360, 0.35, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(ry / 2, 1))
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, fw), min(y2, fh)
    m = mask[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1, None]
    img[cy1:cy2, cx1:cx2] = (img[cy1:cy2, cx1:cx2].astype(np.float32) * (1.0 - m)).astype(np.uint8)


def _animate(sim: Simulation, sprites: list[list[Sprite]], layout: StoreLayout, sizes: list[float]
             ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Pose index, mirroring and full-body box of every person on every frame."""
    n_f, n_p = sim.feet.shape[:2]
    pose = np.zeros((n_f, n_p), np.int32)
    flip = np.zeros((n_f, n_p), bool)
    boxes = np.full((n_f, n_p, 4), np.nan)
    for i in range(n_p):
        walked, k, facing = 0.0, 0, 0
        prev: npt.NDArray[np.float64] | None = None
        for f in range(n_f):
            p = sim.feet[f, i]
            if np.isnan(p[0]):
                prev = None
                continue
            h = layout.height_at(float(p[1])) * sizes[i]
            if prev is not None:
                walked += float(np.hypot(*(p - prev))) / h
                while walked >= _STRIDE_H:
                    walked -= _STRIDE_H
                    k = (k + 1) % len(sprites[i])
            prev = p
            if sim.facing[f, i] != 0:
                facing = int(sim.facing[f, i])
            s = sprites[i][k]
            pose[f, i] = k
            flip[f, i] = s.facing != 0 and facing != 0 and s.facing != facing
            w = s.alpha.shape[1] * h / s.height
            boxes[f, i] = (p[0] - w / 2, p[1] - h, p[0] + w / 2, p[1])
    return pose, flip, boxes


def _visibility(boxes: npt.NDArray[np.float64], layout: StoreLayout) -> npt.NDArray[np.float64]:
    """Share of each body not hidden by the frame edge, a shelf in front, or a nearer person.

    Sampled on a grid over the body (`_VIS_ROWS` x `_VIS_COLS`), per frame over the people present.
    """
    n_f, n_p = boxes.shape[:2]
    fw, fh = layout.size
    vis = np.zeros((n_f, n_p))
    shelves = [(s.base_y, *s.front) for s in layout.shelves]
    for f in range(n_f):
        idx = np.flatnonzero(~np.isnan(boxes[f, :, 0]))
        if not len(idx):
            continue
        b = boxes[f, idx]
        x1, y1, x2, y2 = b[:, 0:1, None], b[:, 1:2, None], b[:, 2:3, None], b[:, 3:4, None]  # (P, 1, 1)
        gx = x1 + _VIS_COLS[None, None, :] * (x2 - x1)  # (P, 1, C)
        gy = y1 + _VIS_ROWS[None, :, None] * (y2 - y1)  # (P, R, 1)
        seen = (gx >= 0) & (gx < fw) & (gy >= 0) & (gy < fh)
        for base_y, sx1, sy1, sx2, sy2 in shelves:
            behind = (y2 < base_y)
            seen &= ~(behind & (gx >= sx1) & (gx < sx2) & (gy >= sy1) & (gy < sy2))
        for j in range(len(idx)):
            nearer = b[j, 3] > b[:, 3]
            if not nearer.any():
                continue
            jx1, jy1, jx2, jy2 = b[j]
            jw = jx2 - jx1
            inside = (gx >= jx1 + 0.2 * jw) & (gx < jx2 - 0.2 * jw) & (gy >= jy1) & (gy < jy2)
            seen &= ~(nearer[:, None, None] & inside)
        vis[f, idx] = seen.mean(axis=(1, 2))
    return vis


def build_scene(
    name: str,
    seed: int = 0,
    *,
    bank: SpriteBank | None = None,
    layout: StoreLayout | None = None,
    tracker: TrackerConfig | None = None,
) -> Scene:
    """Plan, simulate, animate and derive the truth of a named scene (see `scenario.SCENES`)."""
    layout = layout or store_layout()
    bank = bank or load_sprite_bank()
    plan = make_plan(name, seed, layout, len(bank.identities))
    sim = simulate(plan, layout)
    sprites = []
    for a in plan.agents:
        own = bank.identities[a.identity % len(bank.identities)]
        sprites.append([uniform_sprite(s) for s in own] if a.role == Role.STAFF else own)
    sizes = [a.size for a in plan.agents]
    pose, flip, boxes = _animate(sim, sprites, layout, sizes)
    visibility = _visibility(boxes, layout)
    persons = [
        PersonTruth(
            pid=a.pid,
            role=a.role.value,
            identity=a.identity,
            group=a.leader if a.leader is not None else (
                a.pid if any(b.leader == a.pid for b in plan.agents) else None),
        )
        for a in plan.agents
    ]
    amounts_rng = np.random.default_rng([seed, 7])
    truth = compute_truth(
        fps=sim.fps,
        camera=layout.camera,
        tracker=tracker or TrackerConfig(),
        persons=persons,
        feet=sim.feet,
        boxes=boxes,
        visibility=visibility,
        transactions=sim.transactions,
        queue_outcomes=sim.queue_outcomes,
        amounts=[round(float(v), 2) for v in amounts_rng.uniform(150, 4000, 64)],
    )
    return Scene(name, seed, layout, plan, sim, sprites, pose, flip, truth, layout.render_background())


def write_transactions(scene: Scene, path: Path, epoch: datetime = EPOCH) -> None:
    """The scene's POS transactions as CSV (`transaction_id, timestamp, amount`), the columns
    `storefleet pos import` reads."""
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["transaction_id", "timestamp", "amount"])
        for tx in scene.truth.transactions:
            ts = (epoch + timedelta(seconds=tx.t)).isoformat().replace("+00:00", "Z")
            out.writerow([tx.transaction_id, ts, f"{tx.amount:.2f}"])


def write_video(scene: Scene, path: Path) -> None:
    """Render every frame into a video file (MJPG .avi plays everywhere OpenCV does)."""
    w, h = scene.layout.size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), scene.fps, (w, h))
    try:
        for f in range(scene.n_frames):
            vw.write(scene.render(f))
    finally:
        vw.release()


__all__ = ["EPOCH", "SCENES", "Scene", "build_scene", "parse_scene_uri", "write_transactions", "write_video"]
