"""Synthetic shelf images with known empty facings, to measure gap detectors.

No shelf or product images with labels ship in any registry we reach, so the detector is measured
on generated shelves whose truth is exact: rows of shelf boards, each row split into planogram
segments of N facings, each facing stocked (a product front with a label band, print marks, side
shading and a random colour, sometimes close to the back panel's) or empty (the back panel shows,
darker under the shelf above). Images vary in back-panel colour, light level and gradient, colour
cast, blur, sensor noise and JPEG compression; optional occluders (shoppers) cover parts of the
shelf. The planogram comes with the image, as a store would configure it.

Example:
    >>> scene = make_shelf(seed=3)
    >>> scene.image.shape[2], len(scene.segments) > 0
    (3, True)
    >>> all(len(scene.empty[s.id]) == s.facings for s in scene.segments)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from workloads.inventory.settings import ShelfSegment

Image = npt.NDArray[np.uint8]


@dataclass
class ShelfScene:
    image: Image  #: BGR
    segments: list[ShelfSegment]  #: the planogram of this view
    empty: dict[str, list[bool]]  #: segment id -> per facing, left to right: True when empty
    product_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  #: stocked facings
    background_bgr: tuple[int, int, int] = (0, 0, 0)  #: the back panel's base colour

    def gap_ratio(self, segment_id: str) -> float:
        flags = self.empty[segment_id]
        return sum(flags) / len(flags)


def _rand_colour(rng: np.random.Generator, near: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    if near is not None:  # hard case: a product almost the colour of the back panel
        return tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in near)  # type: ignore[return-value]
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(60, 256)]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _draw_product(img: Image, x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int],
                  rng: np.random.Generator, plain: bool) -> None:
    cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
    w, h = x1 - x0, y1 - y0
    # side shading: fronts of cans and bottles are darker at the edges
    ramp = np.abs(np.linspace(-1, 1, max(w, 1)))[None, :, None] ** 2
    patch = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.clip(patch * (1 - 0.35 * ramp), 0, 255).astype(np.uint8)
    cv2.rectangle(img, (x0, y0), (x1, y1), tuple(int(c * 0.5) for c in colour), 1)
    if plain:
        return
    band_y0 = y0 + int(h * rng.uniform(0.3, 0.5))
    band_y1 = band_y0 + int(h * rng.uniform(0.2, 0.35))
    band = _rand_colour(rng)
    cv2.rectangle(img, (x0 + 2, band_y0), (x1 - 2, band_y1), band, -1)
    ink = (20, 20, 20) if sum(band) > 380 else (235, 235, 235)
    for _ in range(int(rng.integers(2, 5))):  # print: brand name and small text as bars
        ty = int(rng.integers(band_y0 + 2, max(band_y0 + 3, band_y1 - 3)))
        tx0 = x0 + int(rng.integers(3, max(4, w // 3)))
        tx1 = min(x1 - 3, tx0 + int(rng.integers(max(4, w // 4), max(5, w - 6))))
        cv2.line(img, (tx0, ty), (tx1, ty), ink, int(rng.integers(1, 3)))
    if rng.random() < 0.6:  # a logo
        cx, cy = x0 + w // 2, y0 + int(h * rng.uniform(0.12, 0.25))
        cv2.circle(img, (cx, cy), max(2, w // 6), _rand_colour(rng), -1)


def make_shelf(
    seed: int = 0,
    size: tuple[int, int] = (1280, 720),
    rows: int = 4,
    segments_per_row: tuple[int, int] = (2, 4),
    facings: tuple[int, int] = (3, 7),
    empty_prob: float = 0.25,
    occluders: int = 0,
    camera_id: str = "SHELF",
) -> ShelfScene:
    """One shelf-camera frame and its planogram; each facing is empty with `empty_prob`."""
    rng = np.random.default_rng(seed)
    w, h = size
    panel = tuple(int(c) for c in rng.integers(60, 220, 3))
    if rng.random() < 0.5:  # shelves are often neutral: grey, white, black
        v = int(rng.integers(40, 230))
        panel = (v, v, v)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = panel
    board = tuple(int(c) for c in rng.integers(150, 256, 3))
    top = int(h * 0.04)
    row_h = (h - top) // rows
    segments: list[ShelfSegment] = []
    empty: dict[str, list[bool]] = {}
    boxes: list[tuple[float, float, float, float]] = []
    edge_h = max(8, int(row_h * 0.12))
    for r in range(rows):
        ry0 = top + r * row_h
        ry1 = ry0 + row_h - edge_h  # products stand on the board at ry1
        # shadow under the board above: the back of an empty facing is darker at the top
        shade = np.linspace(0.55, 1.0, max(1, int((ry1 - ry0) * 0.35)))[:, None, None]
        band = img[ry0:ry0 + len(shade)].astype(np.float32)
        img[ry0:ry0 + len(shade)] = np.clip(band * shade, 0, 255).astype(np.uint8)
        n_seg = int(rng.integers(segments_per_row[0], segments_per_row[1] + 1))
        shares = 0.1 + rng.dirichlet(np.ones(n_seg)) * (1 - 0.1 * n_seg)  # every segment >= 10% wide
        cuts = np.cumsum(shares)[:-1]
        xs = [int(w * 0.02)] + [int(w * 0.02 + c * w * 0.96) for c in cuts] + [int(w * 0.98)]
        for s in range(n_seg):
            sx0, sx1 = xs[s], xs[s + 1]
            n_f = int(rng.integers(facings[0], facings[1] + 1))
            n_f = max(n_f, int(np.ceil((sx1 - sx0) / 170)))  # facings are 28-170 px wide
            while n_f > 1 and (sx1 - sx0) / n_f < 28:
                n_f -= 1
            seg_id = f"R{r}S{s}"
            prod_h = int((ry1 - ry0) * rng.uniform(0.55, 0.92))
            colour = _rand_colour(rng, panel if rng.random() < 0.15 else None)  # type: ignore[arg-type]
            plain = rng.random() < 0.1
            flags = []
            slot = (sx1 - sx0) / n_f
            for f in range(n_f):
                is_empty = bool(rng.random() < empty_prob)
                flags.append(is_empty)
                if is_empty:
                    continue
                px0 = int(sx0 + f * slot + rng.integers(1, 4))
                px1 = int(sx0 + (f + 1) * slot - rng.integers(1, 4))
                py0 = ry1 - prod_h + int(rng.integers(-3, 4))
                _draw_product(img, px0, max(py0, ry0 + 2), px1, ry1, colour, rng, plain)
                boxes.append((px0, max(py0, ry0 + 2), px1, ry1))
            segments.append(ShelfSegment(id=seg_id, camera_id=camera_id, sku=f"SKU-{seg_id}",
                                         box=(sx0, ry0 + 2, sx1, ry1), facings=n_f))
            empty[seg_id] = flags
        # the shelf edge with price tags
        cv2.rectangle(img, (0, ry1), (w, ry1 + edge_h), board, -1)
        for s in range(n_seg):
            tx = xs[s] + 6
            cv2.rectangle(img, (tx, ry1 + 2), (tx + 40, ry1 + edge_h - 2), (250, 250, 250), -1)
            cv2.line(img, (tx + 4, ry1 + edge_h // 2), (tx + 30, ry1 + edge_h // 2), (30, 30, 30), 1)
    for _ in range(occluders):  # a shopper in front of the shelf
        cx, cy = int(rng.integers(0, w)), int(rng.integers(h // 3, h))
        cv2.ellipse(img, (cx, cy), (int(rng.integers(50, 110)), int(rng.integers(150, 300))), 0, 0, 360,
                    _rand_colour(rng), -1)
    return ShelfScene(_camera_effects(img, rng), segments, empty, boxes, panel)  # type: ignore[arg-type]


def _camera_effects(img: Image, rng: np.random.Generator) -> Image:
    """Light level and gradient, colour cast, blur, noise and JPEG, as a real camera adds them."""
    _h, w = img.shape[:2]
    f = img.astype(np.float32)
    gain = rng.uniform(0.6, 1.2)
    grad = np.linspace(1 - rng.uniform(0, 0.3), 1, w)[None, :, None]
    if rng.random() < 0.5:
        grad = grad[:, ::-1]
    cast = rng.uniform(0.9, 1.1, 3)[None, None, :]
    f = f * gain * grad * cast
    f += rng.normal(0, rng.uniform(1.0, 5.0), f.shape)
    out = np.clip(f, 0, 255).astype(np.uint8)
    sigma = rng.uniform(0, 1.2)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 92))])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else out
