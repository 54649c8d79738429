"""The store a synthetic camera looks at: floor, storefront and door, shelves, zones, perspective.

The zones and the door tripwire are a real `CameraConfig` (the same one the pipeline is evaluated
with), and the renderer draws them as floor tape, so a scene is "a fleet config made visible".
Scenery that matters for accuracy is explicit: `Shelf` units are drawn in front of anyone standing
behind them (partial occlusion), and `height_at` gives a person's height in pixels from where their
feet are (a ceiling camera: people near the top of the frame are further away and smaller).

Standard layout (768x576, like vtest.avi): a mall corridor across the top (outside), the storefront
with a door at y ~ 200 (the tripwire), product shelves along the back wall, a gondola in the middle
whose back aisle (MAKEUP) hides people's legs, the billing queue and till on the right, a stock room
door on the left (staff-only).

Example:
    >>> lay = store_layout()
    >>> [z.id for z in lay.camera.zones][:3], round(lay.height_at(200.0))
    (['DOORMAT', 'SKINCARE', 'ELECTRONICS'], 84)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from workloads.config import (
    CameraConfig,
    CameraRole,
    StaffRule,
    StaffZoneRule,
    StoreConfig,
    TripwireConfig,
    UniformColourRule,
    ZoneConfig,
    ZoneType,
)

Point = tuple[float, float]

#: Staff wear a lime-green vest: a hue no pedestrian of vtest.avi wears (checked on the sprite bank).
UNIFORM_HSV = (60, 210)  # hue, saturation of the vest (OpenCV scale)
UNIFORM_RULE = UniformColourRule(hsv_low=(45, 110, 70), hsv_high=(75, 255, 255), min_fraction=0.35)


@dataclass(frozen=True)
class Shelf:
    """A shelf unit: a box standing on the floor with its front face at `base_y`.

    Anyone whose feet are above `base_y` (further away) and who overlaps it in x is hidden behind
    its front face, from `base_y - height` down.
    """

    x1: float
    x2: float
    base_y: float
    height: float
    depth: float = 30.0  # top face, drawn above the front face

    @property
    def front(self) -> tuple[int, int, int, int]:
        return int(self.x1), int(self.base_y - self.height), int(self.x2), int(self.base_y)

    def footprint(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """Floor rectangle a walker must go around: `x1, y1, x2, y2`."""
        return self.x1 - margin, self.base_y - self.depth * 1.2 - margin, self.x2 + margin, self.base_y + margin


@dataclass(frozen=True)
class StoreLayout:
    """Geometry of one synthetic store camera. All coordinates are frame pixels."""

    size: tuple[int, int]
    camera: CameraConfig
    staff_rules: list[StaffRule]
    storefront_y: float
    door_x: tuple[float, float]
    corridor_y: tuple[float, float]  # feet band of passers-by outside
    shelves: list[Shelf]
    till: Point  # where the paying customer stands
    queue_slots: list[Point]  # slot 0 is next to the till, then backwards
    stockroom: Point
    after_till: Point  # where a customer who paid (or gave up) steps to, clear of the queue
    heights: tuple[float, float, float, float] = (150.0, 72.0, 570.0, 172.0)  # y0, h0, y1, h1
    seed: int = 7
    wander_points: list[Point] = field(default_factory=list)

    # ------------------------------------------------------------------ geometry
    def height_at(self, y: float) -> float:
        """Person height in pixels for feet at row `y` (linear perspective, clamped)."""
        y0, h0, y1, h1 = self.heights
        return min(max(h0 + (float(y) - y0) * (h1 - h0) / (y1 - y0), 0.6 * h0), 1.2 * h1)

    def zone(self, zone_id: str) -> ZoneConfig:
        for z in self.camera.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)

    def zones_of(self, ztype: ZoneType) -> list[ZoneConfig]:
        return [z for z in self.camera.zones if z.type == ztype]

    @property
    def door_outside(self) -> Point:
        """A point just outside the door, on the corridor."""
        return (sum(self.door_x) / 2, self.storefront_y - 38.0)

    @property
    def door_inside(self) -> Point:
        """A point just inside the door."""
        return (sum(self.door_x) / 2, self.storefront_y + 45.0)

    def store_config(self, store_id: str = "SYN") -> StoreConfig:
        return StoreConfig(id=store_id, name="Synthetic store", cameras=[self.camera], staff=list(self.staff_rules))

    # ------------------------------------------------------------------ rendering
    def render_background(self) -> npt.NDArray[np.uint8]:
        """The empty store, deterministic: walls, floor tiles, shelves with products, zone tape."""
        w, h = self.size
        rng = np.random.default_rng(self.seed)
        img = np.zeros((h, w, 3), np.uint8)
        sy = int(self.storefront_y)
        cy0 = int(self.corridor_y[0]) - 45
        img[:cy0] = (150, 160, 170)  # mall back wall
        for x in range(20, w, 190):  # other shops' signs on the mall wall
            colour = tuple(int(c) for c in rng.integers(60, 200, 3))
            cv2.rectangle(img, (x, 12), (x + 120, 40), colour, -1)
        img[cy0:sy] = (175, 182, 188)  # corridor floor
        for y in range(cy0, sy, 22):
            cv2.line(img, (0, y), (w, y), (160, 168, 176), 1)
        # store floor: perspective tiles
        img[sy:] = (196, 206, 214)
        vx = w / 2
        for x in range(-w, 2 * w, 64):
            cv2.line(img, (int(vx + (x - vx) * 0.35), sy), (x, h), (178, 188, 198), 1)
        y = float(sy)
        step = 14.0
        while y < h:
            cv2.line(img, (0, int(y)), (w, int(y)), (178, 188, 198), 1)
            step *= 1.18
            y += step
        # storefront: low wall with glass on both sides of the door
        d1, d2 = (int(v) for v in self.door_x)
        for x1, x2 in ((0, d1), (d2, w)):
            cv2.rectangle(img, (x1, sy - 70), (x2, sy - 55), (110, 110, 115), -1)
            glass = img[sy - 55 : sy, x1:x2].astype(np.int16) + np.array([25, 18, 5], np.int16)
            img[sy - 55 : sy, x1:x2] = np.clip(glass, 0, 255).astype(np.uint8)
            cv2.rectangle(img, (x1, sy - 4), (x2, sy + 4), (90, 90, 95), -1)
        cv2.rectangle(img, (d1 - 8, sy - 75), (d1, sy + 4), (70, 70, 75), -1)
        cv2.rectangle(img, (d2, sy - 75), (d2 + 8, sy + 4), (70, 70, 75), -1)
        # stock room door on the left wall
        _, syy = self.stockroom
        cv2.rectangle(img, (0, int(syy) - 120), (22, int(syy) + 10), (60, 80, 110), -1)
        # zones as floor tape
        for z in self.camera.zones:
            pts = np.array(z.polygon, np.int32).reshape(-1, 1, 2)
            colour = _ZONE_TAPE.get(z.type, (60, 160, 220))
            tint = img.copy()
            cv2.fillPoly(tint, [pts], colour)
            img = cv2.addWeighted(img, 0.9, tint, 0.1, 0)
            cv2.polylines(img, [pts], True, colour, 2, cv2.LINE_AA)
        # till counter
        tx, ty = self.till
        cv2.rectangle(img, (int(tx) + 40, int(ty) - 90), (w, int(ty) + 20), (80, 70, 60), -1)
        cv2.rectangle(img, (int(tx) + 50, int(ty) - 110), (int(tx) + 90, int(ty) - 90), (40, 40, 40), -1)
        for shelf in sorted(self.shelves, key=lambda s: s.base_y):
            self._draw_shelf(img, shelf, rng)
        return img

    def shelf_layers(
        self, background: npt.NDArray[np.uint8]
    ) -> list[tuple[Shelf, npt.NDArray[np.uint8], tuple[int, int, int, int]]]:
        """Each shelf's front face pixels (from the background), to paint over people behind it."""
        out = []
        for s in self.shelves:
            x1, y1, x2, y2 = s.front
            x1, y1 = max(x1, 0), max(y1, 0)
            out.append((s, background[y1:y2, x1:x2].copy(), (x1, y1, x2, y2)))
        return out

    @staticmethod
    def _draw_shelf(img: npt.NDArray[np.uint8], s: Shelf, rng: np.random.Generator) -> None:
        x1, y1, x2, y2 = s.front
        top = int(y1 - s.depth)
        cv2.rectangle(img, (x1, top), (x2, y1), (120, 125, 130), -1)  # top face
        cv2.rectangle(img, (x1, y1), (x2, y2), (95, 100, 105), -1)  # front face
        rows = max(1, int(s.height // 24))
        for r in range(rows):
            ry1 = y1 + 4 + r * (y2 - y1 - 4) // rows
            ry2 = y1 + (r + 1) * (y2 - y1 - 4) // rows
            x = x1 + 4
            while x < x2 - 8:
                bw = int(rng.integers(8, 20))
                # products in any colour but the uniform's green band
                hue = int(rng.choice([int(rng.integers(0, 35)), int(rng.integers(95, 179))]))
                hsv = np.uint8([[[hue, int(rng.integers(80, 230)), int(rng.integers(90, 230))]]])
                colour = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
                cv2.rectangle(img, (x, ry1), (min(x + bw, x2 - 4), ry2 - 2), colour, -1)
                x += bw + 2
            cv2.line(img, (x1, ry2), (x2, ry2), (70, 72, 75), 2)


_ZONE_TAPE = {
    ZoneType.BILLING_QUEUE: (40, 170, 240),
    ZoneType.CHECKOUT: (40, 120, 240),
    ZoneType.RESTRICTED: (50, 50, 220),
    ZoneType.ENTRY: (150, 150, 150),
}


def _rect(x1: float, y1: float, x2: float, y2: float) -> list[Point]:
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def store_layout(camera_id: str = "SYN_CAM", source: str = "synthetic:store") -> StoreLayout:
    """The standard synthetic store camera (entrance + floor + billing in one view)."""
    storefront_y = 200.0
    door = (300.0, 468.0)
    zones = [
        ZoneConfig(id="DOORMAT", type=ZoneType.ENTRY, polygon=_rect(door[0], 206, door[1], 262)),
        ZoneConfig(id="SKINCARE", type=ZoneType.PRODUCT, sku_zone="SKINCARE", polygon=_rect(20, 262, 262, 352)),
        ZoneConfig(
            id="ELECTRONICS",
            type=ZoneType.HIGH_VALUE,
            sku_zone="ELECTRONICS",
            polygon=_rect(506, 262, 748, 352),
        ),
        ZoneConfig(id="MAKEUP", type=ZoneType.PRODUCT, sku_zone="MAKEUP", polygon=_rect(250, 372, 520, 414)),
        ZoneConfig(id="QUEUE", type=ZoneType.BILLING_QUEUE, polygon=_rect(540, 376, 768, 488), min_inside_s=1.5),
        ZoneConfig(id="TILL", type=ZoneType.CHECKOUT, polygon=_rect(560, 490, 768, 576)),
        ZoneConfig(id="STOCKROOM", type=ZoneType.RESTRICTED, polygon=_rect(0, 430, 90, 540)),
    ]
    camera = CameraConfig(
        id=camera_id,
        role=CameraRole.ENTRANCE,
        source=source,
        target_fps=5.0,
        zones=zones,
        tripwires=[
            TripwireConfig(id="door", points=((door[0], storefront_y + 6), (door[1], storefront_y + 6)),
                           inside_point=(384.0, 320.0))
        ],
    )
    return StoreLayout(
        size=(768, 576),
        camera=camera,
        staff_rules=[UNIFORM_RULE, StaffZoneRule(zone_id="STOCKROOM")],
        storefront_y=storefront_y,
        door_x=door,
        corridor_y=(120.0, 178.0),
        shelves=[
            Shelf(12, 272, 250, 80),  # back wall, left (SKINCARE in front)
            Shelf(498, 760, 250, 80),  # back wall, right (ELECTRONICS in front)
            Shelf(262, 508, 456, 78, depth=26),  # the gondola: hides the legs of people in MAKEUP
        ],
        till=(640.0, 528.0),
        queue_slots=[(650.0, 536.0), (705.0, 470.0), (595.0, 452.0), (705.0, 418.0), (595.0, 400.0)],
        stockroom=(40.0, 480.0),
        after_till=(520.0, 545.0),
        wander_points=[(140.0, 300.0), (620.0, 300.0), (380.0, 330.0), (160.0, 420.0), (200.0, 520.0),
                       (470.0, 520.0), (560.0, 360.0), (100.0, 360.0)],
    )
