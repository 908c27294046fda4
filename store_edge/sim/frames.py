"""Synthetic top-down ceiling-camera frames of a simulated store, for the vision path.

Everything is drawn through the camera's own calibration (`CameraModel.world_to_pixel` of 3D points,
lens distortion included), so a detector trained on these frames sees people where the store geometry
says they are. The static scene (tiled floor, walls, gondolas with their products, gates) is rendered
once per camera; every frame copies it and draws the shoppers on top, from the floor up: a soft
shadow, shoes, legs, a basket, arms (one reaching into the shelf during a contact), torso with
shoulders, a backpack or a hood, then the head with hair or a cap. Body build and clothing vary per
shopper and are fixed by the shopper id. A shopper behind a gondola (seen from the camera) is hidden
by it. Each frame then gets its own lighting jitter, a slight blur and sensor noise.

The same plan (same scenario seed) always gives the same images, byte for byte.

The truth box of a shopper is the image box of a 3D box around their body, floor to head top, clipped
to the image; `visible_fraction` is the share of that box inside the image (occlusion by people or
gondolas does not count). Shoppers with less than `MIN_VISIBLE_FRACTION` inside get no box.

Needs OpenCV (the `vision` extra).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from store_edge.layout.camera import CameraModel
from store_edge.layout.model import Camera, Gondola, Shelf, StoreLayout
from store_edge.sim.plan import Plan, PlannedShopper, rng_for

FloatArray = NDArray[np.float64]
Image = NDArray[np.uint8]

JPEG_QUALITY = 80
MIN_VISIBLE_FRACTION = 0.15
BOX_HALF_WIDTH_M = 0.06
"""The truth box reaches this far beyond the shoulders (sideways) and the chest and back."""
GONDOLA_TOP_ABOVE_SHELF_M = 0.2
"""A gondola's top: the products on its highest shelf."""

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_SCALE = float(1 << _SHIFT)
_RING = 20  # points per horizontal ellipse
_NOISE_PAD = 48
_LIGHT = np.array([0.6, 0.8])  # horizontal direction the side faces are lit from (unit vector)


@dataclass(frozen=True)
class RenderedBox:
    shopper_id: str
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 in pixels, clipped to the image."""
    visible_fraction: float
    """Clipped area over unclipped area."""


@dataclass(frozen=True)
class RenderedFrame:
    camera_id: str
    t_s: float
    jpeg: bytes
    boxes: list[RenderedBox]


# --------------------------------------------------------------------------------------------------
# small geometry and drawing helpers


def _rgb(r: float, g: float, b: float) -> FloatArray:
    """A colour given as RGB, stored as OpenCV's BGR."""
    return np.array([b, g, r], dtype=float)


def _scalar(colour: FloatArray) -> tuple[float, float, float]:
    c = np.clip(colour, 0.0, 255.0)
    return (float(c[0]), float(c[1]), float(c[2]))


def _fixed(px: FloatArray) -> NDArray[np.int32]:
    """Pixel coordinates as OpenCV fixed point (`_SHIFT` fractional bits), kept in a sane range."""
    return np.round(np.clip(px, -20000.0, 20000.0) * _SCALE).astype(np.int32)


def _fill(img: Image, px: FloatArray, colour: FloatArray) -> None:
    cv2.fillPoly(img, [_fixed(px)], _scalar(colour), cv2.LINE_AA, _SHIFT)


def _hull(px: FloatArray) -> FloatArray:
    hull = cv2.convexHull(px.astype(np.float32))
    return np.asarray(hull, dtype=float).reshape(-1, 2)


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([0.0, 1.0])


_THETA = np.linspace(0.0, 2.0 * np.pi, _RING, endpoint=False)
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)


def _ring(
    centre: FloatArray, z: float, f: FloatArray, lat: FloatArray, a: float, b: float, power: float = 2.0
) -> FloatArray:
    """A horizontal (super)ellipse at height z: half-axis `a` along `f`, `b` along `lat`; Nx3."""
    if power == 2.0:
        x, y = a * _COS, b * _SIN
    else:
        e = 2.0 / power
        x = a * np.sign(_COS) * np.abs(_COS) ** e
        y = b * np.sign(_SIN) * np.abs(_SIN) ** e
    xy = centre[None, :] + x[:, None] * f[None, :] + y[:, None] * lat[None, :]
    return np.hstack([xy, np.full((_RING, 1), z)])


def _segment(p: FloatArray, q: FloatArray, n: int) -> FloatArray:
    """n points from p towards q (q itself excluded)."""
    s = np.arange(n, dtype=float)[:, None] / n
    return p[None, :] + s * (q - p)[None, :]


def _polygon3(corners: FloatArray, subdivide: int) -> FloatArray:
    """A closed 3D polygon with every edge cut into `subdivide` pieces, so it bends with distortion."""
    return np.vstack([_segment(corners[i], corners[(i + 1) % len(corners)], subdivide) for i in range(len(corners))])


def _inside_polygon(x: FloatArray, y: FloatArray, poly: FloatArray) -> NDArray[np.bool_]:
    inside = np.zeros(x.shape, dtype=bool)
    for i in range(len(poly)):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < xc)
    return inside


def _ccw(poly: FloatArray) -> FloatArray:
    x, y = poly[:, 0], poly[:, 1]
    area = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return poly if area > 0 else poly[::-1].copy()


def _closest_on_polygon(p: FloatArray, poly: FloatArray) -> FloatArray:
    best, best_d = poly[0], math.inf
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        ab = b - a
        t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
        q = a + t * ab
        d = float(np.linalg.norm(p - q))
        if d < best_d:
            best, best_d = q, d
    return best


def _hash_colour(*names: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(str(n) for n in names).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# --------------------------------------------------------------------------------------------------
# how things look


@dataclass
class _StoreLook:
    floor: FloatArray
    tile_m: float
    tile_contrast: float
    grout: float
    wall: FloatArray
    accent: FloatArray
    shelf: FloatArray
    panel: FloatArray
    waves: list[tuple[float, float, float, float]]
    """Floor mottling: (kx, ky, phase, amplitude) sinusoids in store coordinates."""


def _store_look(plan: Plan) -> _StoreLook:
    rng = rng_for(plan.scenario.seed, "frames", "store", plan.store.store_id)
    floors = [
        _rgb(200, 200, 196),
        _rgb(206, 196, 178),
        _rgb(218, 216, 210),
        _rgb(176, 178, 176),
        _rgb(196, 188, 176),
        _rgb(188, 196, 200),
    ]
    walls = [_rgb(226, 224, 216), _rgb(210, 216, 222), _rgb(232, 226, 210), _rgb(200, 200, 200)]
    accents = [_rgb(190, 40, 40), _rgb(30, 110, 70), _rgb(40, 80, 160), _rgb(230, 160, 30)]
    shelves = [_rgb(215, 215, 212), _rgb(60, 62, 66), _rgb(190, 192, 196), _rgb(235, 235, 230)]
    waves = []
    for _ in range(4):
        k = 2 * np.pi * float(rng.uniform(0.15, 1.2))
        ang = float(rng.uniform(0, 2 * np.pi))
        waves.append(
            (
                k * math.cos(ang),
                k * math.sin(ang),
                float(rng.uniform(0, 2 * np.pi)),
                float(rng.uniform(0.01, 0.03)),
            )
        )
    return _StoreLook(
        floor=floors[int(rng.integers(len(floors)))] + rng.normal(0, 6, 3),
        tile_m=float(rng.choice([0.3, 0.4, 0.5, 0.6])),
        tile_contrast=float(rng.uniform(0.01, 0.04)),
        grout=float(rng.uniform(0.6, 0.8)),
        wall=walls[int(rng.integers(len(walls)))] + rng.normal(0, 5, 3),
        accent=accents[int(rng.integers(len(accents)))],
        shelf=shelves[int(rng.integers(len(shelves)))] + rng.normal(0, 4, 3),
        panel=shelves[int(rng.integers(len(shelves)))] * 0.9 + rng.normal(0, 4, 3),
        waves=waves,
    )


@dataclass
class _ProductLook:
    colour: FloatArray
    cap: FloatArray
    round: bool


def _product_look(sku: str) -> _ProductLook:
    rng = _hash_colour("product", sku)
    h, s, v = float(rng.uniform(0, 1)), float(rng.uniform(0.45, 0.95)), float(rng.uniform(0.45, 0.95))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    caps = [_rgb(240, 240, 240), _rgb(30, 30, 30), _rgb(200, 30, 30), _rgb(40, 90, 200), _rgb(230, 200, 40)]
    return _ProductLook(_rgb(r * 255, g * 255, b * 255), caps[int(rng.integers(len(caps)))], bool(rng.random() < 0.7))


_SKIN = [
    _rgb(255, 222, 196),
    _rgb(241, 194, 160),
    _rgb(224, 172, 130),
    _rgb(198, 134, 97),
    _rgb(160, 104, 70),
    _rgb(120, 78, 52),
    _rgb(88, 58, 40),
]
_HAIR = [
    (_rgb(24, 20, 18), 0.3),
    (_rgb(52, 36, 26), 0.22),
    (_rgb(92, 62, 38), 0.15),
    (_rgb(140, 100, 62), 0.08),
    (_rgb(205, 172, 112), 0.08),
    (_rgb(128, 58, 32), 0.05),
    (_rgb(140, 138, 134), 0.07),
    (_rgb(205, 203, 198), 0.05),
]
_TROUSERS = [
    (_rgb(48, 66, 104), 0.3),
    (_rgb(26, 26, 30), 0.22),
    (_rgb(92, 92, 96), 0.12),
    (_rgb(170, 150, 110), 0.1),
    (_rgb(30, 38, 62), 0.12),
    (_rgb(110, 96, 70), 0.06),
    (_rgb(120, 140, 170), 0.08),
]
_SHOES = [_rgb(235, 235, 232), _rgb(28, 28, 30), _rgb(90, 88, 86), _rgb(96, 62, 38), _rgb(40, 60, 120)]
_BASKETS = [_rgb(200, 32, 36), _rgb(30, 80, 180), _rgb(40, 140, 60), _rgb(30, 30, 32), _rgb(230, 140, 20)]


def _pick(rng: np.random.Generator, options: list[tuple[FloatArray, float]]) -> FloatArray:
    w = np.array([p for _, p in options])
    return options[int(rng.choice(len(options), p=w / w.sum()))][0]


def _clothing(rng: np.random.Generator) -> FloatArray:
    if rng.random() < 0.45:  # neutrals: black, greys, white, beige
        v = float(rng.choice([25, 40, 60, 90, 130, 170, 210, 235]))
        tint = rng.normal(0, 6, 3)
        if rng.random() < 0.25:
            return _rgb(v, v * 0.92, v * 0.8) + tint
        return np.full(3, v) + tint
    h = float(rng.uniform(0, 1))
    s = float(rng.uniform(0.3, 0.85))
    v = float(rng.uniform(0.25, 0.9))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return _rgb(r * 255, g * 255, b * 255)


@dataclass
class _Look:
    scale: float
    shoulder_w: float
    depth: float
    head_r: float
    skin: FloatArray
    hair: FloatArray
    shirt: FloatArray
    trousers: FloatArray
    shoes: FloatArray
    short_sleeves: bool
    long_hair: bool
    bald: bool
    hat: FloatArray | None
    hood: bool
    backpack: FloatArray | None
    basket: FloatArray | None
    basket_side: float
    basket_items: list[tuple[float, float, FloatArray]]
    gait_phase: float
    default_heading: FloatArray


def _look_for(seed: int, shopper_id: str) -> _Look:
    rng = rng_for(seed, "look", shopper_id)
    scale = float(np.clip(rng.normal(1.0, 0.045), 0.9, 1.1))
    skin = _SKIN[int(rng.integers(len(_SKIN)))] + rng.normal(0, 6, 3)
    hair = _pick(rng, _HAIR) + rng.normal(0, 4, 3)
    shirt = _clothing(rng)
    basket = _BASKETS[int(rng.integers(len(_BASKETS)))] if rng.random() < 0.3 else None
    items = [
        (
            float(rng.uniform(-0.12, 0.12)),
            float(rng.uniform(-0.07, 0.07)),
            _product_look(str(rng.integers(1_000_000))).colour,
        )
        for _ in range(int(rng.integers(0, 4)))
    ]
    ang = float(rng.uniform(0, 2 * np.pi))
    return _Look(
        scale=scale,
        shoulder_w=float(rng.uniform(0.40, 0.50)) * scale,
        depth=float(rng.uniform(0.22, 0.28)) * scale,
        head_r=float(rng.uniform(0.092, 0.105)) * scale,
        skin=skin,
        hair=hair,
        shirt=shirt,
        trousers=_pick(rng, _TROUSERS) + rng.normal(0, 5, 3),
        shoes=_SHOES[int(rng.integers(len(_SHOES)))],
        short_sleeves=bool(rng.random() < 0.4),
        long_hair=bool(rng.random() < 0.35),
        bald=bool(rng.random() < 0.06),
        hat=_clothing(rng) if rng.random() < 0.15 else None,
        hood=bool(rng.random() < 0.2),
        backpack=_clothing(rng) * 0.8 if rng.random() < 0.2 else None,
        basket=basket,
        basket_side=1.0 if rng.random() < 0.5 else -1.0,
        basket_items=items,
        gait_phase=float(rng.uniform(0, 2 * np.pi)),
        default_heading=np.array([math.cos(ang), math.sin(ang)]),
    )


# --------------------------------------------------------------------------------------------------
# the static scene of one camera


@dataclass
class _Occluder:
    footprint: FloatArray
    x0: int
    y0: int
    mask: NDArray[np.bool_]
    """Where the gondola covers the image, cropped to its box starting at (x0, y0)."""


@dataclass
class _Scene:
    model: CameraModel
    width: int
    height: int
    background: Image
    occluders: list[_Occluder]
    cam_xy: FloatArray
    tint: FloatArray
    vignette: float
    noise: Image
    contrast: float
    brightness: float
    blur_sigma: float

    def light_at(self, px: FloatArray) -> FloatArray:
        """What the camera's colour cast and lens falloff do to a colour at this pixel."""
        cx, cy = self.width / 2, self.height / 2
        r2 = ((px[0] - cx) ** 2 + (px[1] - cy) ** 2) / (cx * cx + cy * cy)
        return self.tint * (1.0 - self.vignette * min(float(r2), 1.5))


class _SceneBuilder:
    def __init__(self, plan: Plan, look: _StoreLook, camera: Camera) -> None:
        self.plan = plan
        self.store: StoreLayout = plan.store
        self.look = look
        self.camera = camera
        self.model = CameraModel(camera)
        self.w, self.h = camera.resolution
        self.cam_pos = self.model.position
        self.cam_xy = self.cam_pos[:2].copy()

    def project(self, pts: FloatArray) -> FloatArray | None:
        uv, ok = self.model.world_to_pixel(pts)
        return uv if bool(np.all(ok)) else None

    def build(self) -> _Scene:
        rng = rng_for(self.plan.scenario.seed, "frames", "camera", self.camera.id)
        base = self.floor_and_walls(rng)
        img = np.ascontiguousarray(np.clip(base, 0, 255).astype(np.uint8))
        for gate in self.store.gates:
            self.draw_gate_marking(img, gate.line)
        statics: list[tuple[float, str, int]] = []
        for i, g in enumerate(self.store.gondolas):
            d = float(np.linalg.norm(g.footprint().mean(axis=0) - self.cam_xy))
            statics.append((d, "gondola", i))
        for i, gate in enumerate(self.store.gates):
            d = float(np.linalg.norm(np.mean(np.array(gate.line), axis=0) - self.cam_xy))
            statics.append((d, "gate", i))
        occluders: list[_Occluder] = []
        for _, kind, i in sorted(statics, reverse=True):  # far to near
            if kind == "gondola":
                occ = self.draw_gondola(img, self.store.gondolas[i])
                if occ is not None:
                    occluders.append(occ)
            else:
                gate = self.store.gates[i]
                self.draw_gate_posts(img, gate.line, gate.scanner_id is not None)
        # colour cast of this camera and lens falloff, over everything static
        tint = 1.0 + rng.normal(0, 0.035, 3)
        vignette = float(rng.uniform(0.08, 0.25))
        yy, xx = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)
        cx, cy = self.w / 2, self.h / 2
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (cx * cx + cy * cy)
        gain = (1.0 - vignette * np.minimum(r2, 1.5))[..., None] * tint.astype(np.float32)[None, None, :]
        graded = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        noise_std = float(rng.uniform(2.0, 4.5))
        noise = np.clip(rng.normal(128.0, noise_std, (self.h + _NOISE_PAD, self.w + _NOISE_PAD, 3)), 0, 255)
        return _Scene(
            model=self.model,
            width=self.w,
            height=self.h,
            background=np.ascontiguousarray(graded),
            occluders=occluders,
            cam_xy=self.cam_xy,
            tint=tint,
            vignette=vignette,
            noise=noise.astype(np.uint8),
            contrast=float(rng.uniform(0.92, 1.06)),
            brightness=float(rng.normal(0, 6)),
            blur_sigma=float(rng.uniform(0.5, 1.0)),
        )

    # --- floor and walls, per pixel ---------------------------------------------------------------
    def floor_and_walls(self, rng: np.random.Generator) -> NDArray[np.float32]:
        w, h, look = self.w, self.h, self.look
        uu, vv = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
        hit = self.model.pixel_to_floor(np.stack([uu.ravel(), vv.ravel()], axis=1))
        x = hit[:, 0].reshape(h, w)
        y = hit[:, 1].reshape(h, w)
        valid = np.isfinite(x) & np.isfinite(y)
        x = np.where(valid, x, 0.0)
        y = np.where(valid, y, 0.0)
        outline = np.array(self.store.floor.outline, dtype=float)
        on_floor = valid & _inside_polygon(x, y, outline)

        # tiles: per-tile tone, grout lines antialiased by the local floor size of a pixel
        ts = look.tile_m
        fx, fy = x / ts, y / ts
        ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        tile_hash = ((ix * 73856093) ^ (iy * 19349663)) & 0xFFFF
        tone = 1.0 + look.tile_contrast * (tile_hash / 65535.0 * 2.0 - 1.0)
        dist = np.minimum(np.abs(fx - np.round(fx)), np.abs(fy - np.round(fy))) * ts
        gx = np.gradient(x, axis=1)
        gy = np.gradient(y, axis=1)
        m_per_px = np.maximum(np.hypot(gx, gy), 1e-4)
        cover = np.clip((0.003 + 0.5 * m_per_px - dist) / m_per_px, 0.0, 1.0)
        light = np.ones_like(x)
        for kx, ky, phase, amp in look.waves:
            light += amp * np.sin(kx * x + ky * y + phase)
        shade = tone * light * (1.0 - (1.0 - look.grout) * cover)
        img = shade[..., None] * look.floor[None, None, :]
        img += rng.normal(0.0, 2.0, (h, w, 1))  # fine grain of the floor finish

        # walls: where the ray leaves the floor polygon, at what height it meets the wall
        o = self.cam_pos
        dx, dy = x - o[0], y - o[1]
        best = np.full(x.shape, np.inf)
        for i in range(len(outline)):
            a, b = outline[i], outline[(i + 1) % len(outline)]
            ex, ey = b - a
            det = -dx * ey + dy * ex
            ax, ay = a[0] - o[0], a[1] - o[1]
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (ax * -ey - ay * -ex) / det
                u = (dx * ay - dy * ax) / det
            ok = (np.abs(det) > 1e-12) & (s > 0) & (s <= 1.0) & (u >= 0) & (u <= 1)
            best = np.where(ok & (s < best), s, best)
        z = np.where(np.isfinite(best), o[2] * (1.0 - best), o[2])
        wall_shade = 0.78 + 0.22 * np.clip(z / max(o[2], 1e-6), 0, 1)
        wall = wall_shade[..., None] * look.wall[None, None, :]
        wall = np.where((z < 0.12)[..., None], np.array([62.0, 62.0, 66.0])[None, None, :], wall)
        band = (z > 1.0) & (z < 1.12)
        wall = np.where(band[..., None], look.accent[None, None, :] * wall_shade[..., None], wall)
        img = np.where(on_floor[..., None], img, wall)
        return img.astype(np.float32)

    # --- gates --------------------------------------------------------------------------------------
    def draw_gate_marking(self, img: Image, line: tuple[tuple[float, float], tuple[float, float]]) -> None:
        a, b = np.array(line[0], dtype=float), np.array(line[1], dtype=float)
        n = _unit(np.array([-(b - a)[1], (b - a)[0]])) * 0.03
        quad = np.array([[*(a - n), 0.0], [*(b - n), 0.0], [*(b + n), 0.0], [*(a + n), 0.0]])
        px = self.project(_polygon3(quad, 8))
        if px is not None:
            _fill(img, px, _rgb(235, 190, 30))

    def draw_gate_posts(self, img: Image, line: tuple[tuple[float, float], tuple[float, float]], scanner: bool) -> None:
        a, b = np.array(line[0], dtype=float), np.array(line[1], dtype=float)
        d = _unit(b - a)
        n = np.array([-d[1], d[0]])
        metal = _rgb(186, 188, 192)
        for end, inward in ((a, d), (b, -d)):
            fp = np.array(
                [
                    end - 0.06 * d - 0.2 * n,
                    end + 0.06 * d - 0.2 * n,
                    end + 0.06 * d + 0.2 * n,
                    end - 0.06 * d + 0.2 * n,
                ]
            )
            self.draw_box(img, fp, 0.0, 1.0, metal, metal * 1.05)
            arm = end + inward * 0.06
            fp_arm = np.array(
                [
                    arm - 0.015 * n,
                    arm + 0.28 * inward - 0.015 * n,
                    arm + 0.28 * inward + 0.015 * n,
                    arm + 0.015 * n,
                ]
            )
            self.draw_box(img, fp_arm, 0.55, 0.95, _rgb(150, 170, 180), _rgb(200, 215, 222))
        if scanner:
            fp = np.array(
                [
                    a - 0.05 * d - 0.05 * n,
                    a + 0.05 * d - 0.05 * n,
                    a + 0.05 * d + 0.05 * n,
                    a - 0.05 * d + 0.05 * n,
                ]
            )
            self.draw_box(img, fp, 1.0, 1.12, _rgb(30, 30, 34), _rgb(40, 44, 60))

    # --- boxes and gondolas --------------------------------------------------------------------------
    def visible_sides(self, fp: FloatArray) -> list[tuple[int, FloatArray]]:
        """Indices and outward normals of the side faces of a prism on `fp` (CCW) facing the camera."""
        out = []
        for i in range(len(fp)):
            a, b = fp[i], fp[(i + 1) % len(fp)]
            e = b - a
            normal = _unit(np.array([e[1], -e[0]]))
            if float(np.dot(self.cam_xy - a, normal)) > 1e-6:
                out.append((i, normal))
        return out

    def side_quad(self, fp: FloatArray, i: int, z0: float, z1: float) -> FloatArray:
        a, b = fp[i], fp[(i + 1) % len(fp)]
        return np.array([[*a, z0], [*b, z0], [*b, z1], [*a, z1]])

    def draw_box(
        self,
        img: Image,
        fp: FloatArray,
        z0: float,
        z1: float,
        side: FloatArray,
        top: FloatArray,
        mask: Image | None = None,
    ) -> None:
        fp = _ccw(fp)
        for i, normal in self.visible_sides(fp):
            px = self.project(_polygon3(self.side_quad(fp, i, z0, z1), 6))
            if px is not None:
                _fill(img, px, side * (0.62 + 0.12 * float(np.dot(normal, _LIGHT))))
                if mask is not None:
                    _fill(mask, px, np.full(3, 255.0))
        px = self.project(_polygon3(np.hstack([fp, np.full((len(fp), 1), z1)]), 6))
        if px is not None:
            _fill(img, px, top)
            if mask is not None:
                _fill(mask, px, np.full(3, 255.0))

    def draw_gondola(self, img: Image, g: Gondola) -> _Occluder | None:
        look = self.look
        fp = _ccw(g.footprint())
        shelves = sorted(g.shelves, key=lambda s: s.z_m)
        z_top = shelves[-1].z_m + GONDOLA_TOP_ABOVE_SHELF_M
        mask = np.zeros((self.h, self.w), dtype=np.uint8)
        self.draw_box(img, fp, 0.0, z_top, look.panel, look.shelf * 0.55, mask)
        front = np.array(g.front, dtype=float)
        front_visible = float(np.dot(self.cam_xy - front[0], g.aisle_normal)) > 1e-6
        if front_visible:
            self.draw_front(img, g, shelves, z_top)
        self.draw_top(img, g, shelves[-1].id, z_top)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return None
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        return _Occluder(fp, x0, y0, mask[y0:y1, x0:x1] > 127)

    def draw_front(self, img: Image, g: Gondola, shelves: list[Shelf], z_top: float) -> None:
        """The open shelf front: dark inside, shelf edges, product facings standing on each shelf."""
        store = self.store
        front = np.array(g.front, dtype=float)
        interior = _rgb(38, 38, 42)
        quad = np.array([[*front[0], 0.0], [*front[1], 0.0], [*front[1], z_top], [*front[0], z_top]])
        px = self.project(_polygon3(quad, 6))
        if px is not None:
            _fill(img, px, interior)
        for k, shelf in enumerate(shelves):
            z_next = shelves[k + 1].z_m if k + 1 < len(shelves) else z_top + 0.03
            height = min(0.26, 0.85 * (z_next - shelf.z_m))
            for plate in shelf.plates:
                geo = store.plate_geometry[plate.id]
                facings = store.facings_on_plate.get(plate.id, [])
                if not facings:
                    continue
                prod = _product_look(facings[0].sku)
                left, right = np.array(geo.front_left), np.array(geo.front_right)
                cols = max(1, round(plate.width_m / 0.07))
                for c in range(cols):
                    p0 = left + (right - left) * (c + 0.06) / cols
                    p1 = left + (right - left) * (c + 0.94) / cols
                    tone = 0.55 + 0.08 * ((c * 7 + k * 3) % 3)
                    q = np.array(
                        [
                            [*p0, shelf.z_m],
                            [*p1, shelf.z_m],
                            [*p1, shelf.z_m + height],
                            [*p0, shelf.z_m + height],
                        ]
                    )
                    pq = self.project(q)
                    if pq is not None:
                        _fill(img, pq, prod.colour * tone)
            edge = np.array(
                [
                    [*front[0], shelf.z_m - 0.04],
                    [*front[1], shelf.z_m - 0.04],
                    [*front[1], shelf.z_m],
                    [*front[0], shelf.z_m],
                ]
            )
            pe = self.project(_polygon3(edge, 6))
            if pe is not None:
                _fill(img, pe, self.look.shelf * 0.85)

    def draw_top(self, img: Image, g: Gondola, shelf_id: str, z: float) -> None:
        """Products on the highest shelf seen from above: rows of caps or box tops."""
        store = self.store
        shelf = store.shelves_by_id[shelf_id]
        inward = -g.aisle_normal
        for plate in shelf.plates:
            geo = store.plate_geometry[plate.id]
            facings = store.facings_on_plate.get(plate.id, [])
            if not facings:
                continue
            units = sum(f.plates.get(plate.id, 0) for f in facings)
            prod = _product_look(facings[0].sku)
            width, depth = plate.width_m, shelf.depth_m
            cell = float(np.clip(math.sqrt(width * depth / max(units, 1)), 0.05, 0.12))
            cols = max(1, int(width / cell))
            rows = max(1, min(math.ceil(units / cols), int(depth / cell)))
            left, right = np.array(geo.front_left), np.array(geo.front_right)
            cw, rd = width / cols, depth / rows
            for r in range(rows):
                for c in range(cols):
                    if r * cols + c >= units:
                        break
                    centre2 = left + (right - left) * (c + 0.5) / cols + inward * (r + 0.5) * rd
                    centre = np.array([*centre2, z])
                    rad = 0.42 * min(cw, rd)
                    d = _unit(right - left)
                    if prod.round:
                        ring = _ring(centre2, z, d, inward, rad, rad)
                        px = self.project(ring)
                        if px is not None:
                            _fill(img, px, prod.colour)
                        cap = self.project(_ring(centre2, z, d, inward, rad * 0.5, rad * 0.5))
                        if cap is not None:
                            _fill(img, cap, prod.cap)
                    else:
                        hw, hd = 0.47 * cw, 0.47 * rd
                        q = np.array(
                            [
                                centre[:2] - hw * d - hd * inward,
                                centre[:2] + hw * d - hd * inward,
                                centre[:2] + hw * d + hd * inward,
                                centre[:2] - hw * d + hd * inward,
                            ]
                        )
                        px = self.project(np.hstack([q, np.full((4, 1), z)]))
                        if px is not None:
                            _fill(img, px, prod.colour * (0.9 + 0.1 * ((r + c) % 2)))


# --------------------------------------------------------------------------------------------------
# shoppers


@dataclass
class _Shape:
    z: float
    dist: float
    seq: int
    poly: FloatArray
    colour: FloatArray


@dataclass
class _Person:
    shopper_id: str
    box: tuple[float, float, float, float]
    visible_fraction: float
    bbox: tuple[float, float, float, float]
    """Unclipped image box of the body."""
    shapes: list[_Shape]
    shadow: FloatArray
    pos: FloatArray
    behind: list[int] = field(default_factory=list)
    """Occluders (by index) that hide this person."""


class _RingSet:
    """Collects horizontal rings and 3D points to project them in one call."""

    def __init__(self) -> None:
        self.parts: list[FloatArray] = []
        self.n = 0

    def add(self, pts: FloatArray) -> slice:
        self.parts.append(pts)
        s = slice(self.n, self.n + len(pts))
        self.n += len(pts)
        return s


def _pose(
    p: PlannedShopper, look: _Look, t: float
) -> tuple[FloatArray, FloatArray, float, tuple[FloatArray, float] | None]:
    """Position, heading (unit), walking speed and the reaching hand (target, extension 0..1)."""
    offsets = np.array([0.0, 0.2, 0.6, 1.5, 4.0, 10.0, -0.3, -1.0, -3.0])
    pts = p.trajectory.at(t - offsets)
    pos = pts[0]
    speed = float(np.linalg.norm(pos - pts[1])) / 0.2
    heading = look.default_heading
    for k in range(1, len(offsets)):
        d = pos - pts[k] if offsets[k] > 0 else pts[k] - pos
        if float(np.linalg.norm(d)) > (0.01 if k == 1 else 0.05):
            heading = _unit(d)
            break
    reach: tuple[FloatArray, float] | None = None
    for t0, t1, hand in p.reaches:
        if t0 - 0.9 <= t <= t1 + 0.6:
            ext = float(np.clip((t - (t0 - 0.35)) / 0.35, 0, 1) * np.clip((t1 + 0.35 - t) / 0.35, 0, 1))
            target = np.array(hand, dtype=float)
            turn = float(np.clip((t - (t0 - 0.9)) / 0.45, 0, 1) * np.clip((t1 + 0.6 - t) / 0.45, 0, 1))
            to_shelf = target[:2] - pos
            if float(np.linalg.norm(to_shelf)) > 1e-3:
                heading = _unit((1 - turn) * heading + turn * _unit(to_shelf))
            reach = (target, ext)
            break
    return pos, heading, speed, reach


def _person(scene: _Scene, p: PlannedShopper, look: _Look, t: float, order: int) -> _Person | None:
    pos, f, speed, reach = _pose(p, look, t)
    lat = np.array([-f[1], f[0]])  # to the shopper's left
    s = look.scale
    hw, hd = look.shoulder_w / 2, look.depth / 2
    # crouch and lean towards low shelves
    crouch, lean = 0.0, 0.0
    if reach is not None:
        target, ext = reach
        crouch = ext * float(np.clip((0.95 - target[2]) / 0.8, 0, 1)) * 0.45 * s
        lean = ext * 0.1
    z_hip = 0.88 * s - crouch * 0.6
    z_sh = 1.40 * s - crouch
    z_head = 1.63 * s - crouch
    head_top = z_head + look.head_r + 0.01
    upper = pos + f * lean

    # truth: the 3D box floor to head top, projected
    ex_l, ex_f = hw + BOX_HALF_WIDTH_M, hd + BOX_HALF_WIDTH_M
    corners = []
    for c, z in ((pos, 0.0), (upper, head_top)):
        for sf in (-1, 1):
            for sl in (-1, 1):
                corners.append([*(c + sf * ex_f * f + sl * ex_l * lat), z])
    uv, ok = scene.model.world_to_pixel(np.array(corners))
    if not bool(np.all(ok)):
        return None
    bx1, by1 = float(uv[:, 0].min()), float(uv[:, 1].min())
    bx2, by2 = float(uv[:, 0].max()), float(uv[:, 1].max())
    area = max((bx2 - bx1) * (by2 - by1), 1e-9)
    cx1, cy1 = min(max(bx1, 0.0), scene.width), min(max(by1, 0.0), scene.height)
    cx2, cy2 = min(max(bx2, 0.0), scene.width), min(max(by2, 0.0), scene.height)
    visible = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0) / area
    if visible <= 0.0:
        return None

    phase = 2 * np.pi * 0.95 * t + look.gait_phase
    stride = float(np.clip(speed / 1.1, 0, 1)) * 0.16 * s
    swing = math.sin(phase) * stride

    rs = _RingSet()
    shapes: list[tuple[float, str, slice, slice | None, FloatArray, FloatArray | None]] = []
    # (z order, kind, ring a, ring b, colour, top colour): "hull" = prism between two rings

    def prism(z_order: float, a: FloatArray, b: FloatArray, side: FloatArray, top: FloatArray | None) -> None:
        shapes.append((z_order, "hull", rs.add(a), rs.add(b), side, top))

    def flat(z_order: float, a: FloatArray, colour: FloatArray) -> None:
        shapes.append((z_order, "flat", rs.add(a), None, colour, None))

    def capsule(z_order: float, p0: FloatArray, p1: FloatArray, r: float, colour: FloatArray) -> None:
        ra = _ring(p0[:2], float(p0[2]), f, lat, r, r)
        rb = _ring(p1[:2], float(p1[2]), f, lat, r, r)
        shapes.append((z_order, "hull", rs.add(ra), rs.add(rb), colour, None))

    shadow = rs.add(_ring(pos + np.array([0.04, -0.03]), 0.0, f, lat, hd + 0.14, hw + 0.08))

    # feet and legs
    for k in (-1.0, 1.0):
        foot = pos + lat * k * 0.1 + f * (k * swing)
        prism(
            0.07,
            _ring(foot + f * 0.04, 0.0, f, lat, 0.13 * s, 0.05 * s),
            _ring(foot + f * 0.04, 0.07, f, lat, 0.12 * s, 0.045 * s),
            look.shoes * 0.7,
            look.shoes,
        )
        hip = pos + lat * k * 0.09 + f * lean * 0.3
        prism(
            z_hip,
            _ring(foot, 0.07, f, lat, 0.055, 0.05),
            _ring(hip, z_hip, f, lat, 0.085, 0.08),
            look.trousers * 0.7,
            look.trousers,
        )

    # arms: one may reach; the basket hangs from the other
    reach_side = 0.0
    if reach is not None:
        to_hand = reach[0][:2] - pos
        reach_side = 1.0 if float(np.dot(to_hand, lat)) >= 0 else -1.0
    basket_side = look.basket_side if reach_side != look.basket_side else -look.basket_side
    sleeve = look.shirt
    forearm = look.skin if look.short_sleeves else look.shirt
    for k in (-1.0, 1.0):
        shoulder = np.array([*(upper + lat * k * (hw - 0.05)), z_sh - 0.04])
        rest_hand = np.array([*(pos + lat * k * (hw - 0.01) - f * (k * swing * 0.8) + f * 0.03), 0.80 * s - crouch])
        if look.basket is not None and k == basket_side:
            rest_hand = np.array([*(pos + lat * k * (hw + 0.02) + f * 0.04), 0.78 * s - crouch])
        hand = rest_hand
        if reach is not None and k == reach_side:
            hand = rest_hand + (reach[0] - rest_hand) * reach[1]
        elbow = (shoulder + hand) / 2 + np.array([0.0, 0.0, -0.06])
        if reach is None or k != reach_side:
            elbow = np.array([*(pos + lat * k * (hw - 0.02) - f * (k * swing * 0.4)), z_sh - 0.3 * s])
        capsule(z_sh - 0.04, shoulder, elbow, 0.05 * s, sleeve * 0.8)
        capsule(z_sh - 0.05, elbow, hand, 0.042 * s, forearm * 0.8)
        flat(z_sh - 0.05, _ring(hand[:2], float(hand[2]), f, lat, 0.05 * s, 0.04 * s), look.skin * 0.9)

    if look.basket is not None:
        bc = pos + lat * basket_side * (hw + 0.14)
        z_b = 0.72 * s - crouch
        prism(
            z_b,
            _ring(bc, max(z_b - 0.26, 0.02), f, lat, 0.2, 0.13, 6.0),
            _ring(bc, z_b, f, lat, 0.2, 0.13, 6.0),
            look.basket * 0.6,
            look.basket,
        )
        flat(z_b + 0.001, _ring(bc, z_b, f, lat, 0.18, 0.11, 6.0), look.basket * 0.35)
        for dx, dy, colour in look.basket_items:
            flat(z_b + 0.002, _ring(bc + f * dx + lat * dy, z_b - 0.05, f, lat, 0.05, 0.035, 5.0), colour)

    if look.backpack is not None:
        bp = upper - f * (hd + 0.05)
        prism(
            z_sh - 0.05,
            _ring(bp, z_hip + 0.12, f, lat, 0.08, 0.15, 3.0),
            _ring(bp, z_sh - 0.05, f, lat, 0.08, 0.15, 3.0),
            look.backpack * 0.6,
            look.backpack,
        )

    # torso: hips to boxy shoulders, a lit top
    prism(
        z_sh,
        _ring(pos + f * lean * 0.3, z_hip, f, lat, hd * 0.9, hw * 0.78, 2.5),
        _ring(upper, z_sh, f, lat, hd, hw, 3.2),
        look.shirt * 0.62,
        look.shirt * 0.92,
    )
    flat(z_sh + 0.002, _ring(upper - f * 0.01, z_sh + 0.01, f, lat, hd * 0.6, hw * 0.62, 2.5), look.shirt)
    if look.hood:
        flat(z_sh + 0.004, _ring(upper - f * (hd * 0.55), z_sh + 0.03, f, lat, 0.07, 0.12), look.shirt * 0.78)
    flat(z_sh + 0.006, _ring(upper + f * 0.02, z_sh + 0.02, f, lat, 0.06, 0.06), look.skin * 0.8)
    if look.long_hair and not look.bald:
        prism(
            z_sh + 0.008,
            _ring(upper - f * 0.06, z_sh - 0.12, f, lat, 0.05, 0.09),
            _ring(upper - f * 0.05, z_head - 0.02, f, lat, 0.06, 0.1),
            look.hair * 0.75,
            look.hair * 0.9,
        )

    # head: skin, ears and nose, hair (or a cap) over the crown, a highlight from the ceiling lights
    hc = upper + f * 0.02
    ra, rb = look.head_r * 1.08, look.head_r * 0.88
    shapes.append(
        (
            z_head,
            "hull3",
            rs.add(_ring(hc, z_head - 0.06, f, lat, ra * 0.85, rb * 0.85)),
            rs.add(_ring(hc, z_head + 0.05, f, lat, ra * 0.85, rb * 0.85)),
            look.skin * 0.75,
            None,
        )
    )
    flat(z_head + 0.001, _ring(hc, z_head, f, lat, ra, rb), look.skin * 0.8)
    for k in (-1.0, 1.0):
        flat(z_head + 0.002, _ring(hc + lat * k * rb, z_head - 0.01, f, lat, 0.025, 0.018), look.skin * 0.72)
    flat(z_head + 0.003, _ring(hc + f * ra * 0.95, z_head - 0.01, f, lat, 0.022, 0.016), look.skin * 0.85)
    flat(z_head + 0.004, _ring(hc + f * 0.01, z_head + 0.06, f, lat, ra * 0.8, rb * 0.8), look.skin)
    hair = look.skin * 0.85 if look.bald else look.hair
    if look.hat is not None:
        flat(z_head + 0.01, _ring(hc + f * ra * 0.85, z_head + 0.04, f, lat, 0.075, 0.085), look.hat * 0.8)
        prism(
            z_head + 0.02,
            _ring(hc - f * 0.01, z_head, f, lat, ra * 0.98, rb * 1.02),
            _ring(hc - f * 0.01, z_head + look.head_r * 0.9, f, lat, ra * 0.8, rb * 0.82),
            look.hat * 0.75,
            look.hat,
        )
    else:
        prism(
            z_head + 0.01,
            _ring(hc - f * 0.04, z_head - 0.04, f, lat, ra * 0.92, rb * 1.03),
            _ring(hc - f * 0.025, z_head + look.head_r * 0.75, f, lat, ra * 0.82, rb * 0.86),
            hair * 0.8,
            hair,
        )
        flat(
            z_head + 0.02,
            _ring(hc - f * 0.02 + lat * 0.015, z_head + look.head_r, f, lat, 0.035, 0.03),
            hair * 1.2 + 14.0,
        )

    uvr, okr = scene.model.world_to_pixel(np.vstack(rs.parts))
    if not bool(np.all(okr)):
        return None
    centre_px = np.array([(bx1 + bx2) / 2, (by1 + by2) / 2])
    light = scene.light_at(centre_px)
    dist = float(np.linalg.norm(pos - scene.cam_xy))
    out: list[_Shape] = []
    seq = order * 1000
    for z_order, kind, a, b, side, top in shapes:
        seq += 1
        if kind == "flat":
            out.append(_Shape(z_order, dist, seq, uvr[a], side * light))
            continue
        assert b is not None
        out.append(_Shape(z_order, dist, seq, _hull(np.vstack([uvr[a], uvr[b]])), side * light))
        if kind == "hull" and top is not None:
            seq += 1
            out.append(_Shape(z_order + 0.0005, dist, seq, uvr[b], top * light))
    return _Person(
        shopper_id=p.shopper.id,
        box=(round(cx1, 2), round(cy1, 2), round(cx2, 2), round(cy2, 2)),
        visible_fraction=round(min(visible, 1.0), 4),
        bbox=(bx1, by1, bx2, by2),
        shapes=out,
        shadow=uvr[shadow],
        pos=pos,
    )


def _draw_shadow(img: Image, px: FloatArray, strength: float = 0.35) -> None:
    h, w = img.shape[:2]
    pad = 14
    x0, y0 = int(max(px[:, 0].min() - pad, 0)), int(max(px[:, 1].min() - pad, 0))
    x1, y1 = int(min(px[:, 0].max() + pad, w)), int(min(px[:, 1].max() + pad, h))
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(mask, [_fixed(px - np.array([x0, y0]))], 255, cv2.LINE_AA, _SHIFT)
    soft = np.asarray(cv2.GaussianBlur(mask, (0, 0), 5.0), dtype=np.float32)
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi.astype(np.float32) * (1.0 - strength / 255.0 * soft)[..., None]).astype(np.uint8)


def _overlaps(a: tuple[float, float, float, float], occ: _Occluder) -> bool:
    h, w = occ.mask.shape
    return a[0] < occ.x0 + w and a[2] > occ.x0 and a[1] < occ.y0 + h and a[3] > occ.y0


def _behind(scene: _Scene, person: _Person, occ: _Occluder) -> bool:
    """True when the gondola is between the camera and the shopper (their floor plans are separated by a
    vertical plane; the camera on the gondola's side of it means the gondola is in front)."""
    q = _closest_on_polygon(person.pos, occ.footprint)
    n = person.pos - q
    if float(np.linalg.norm(n)) < 1e-6:
        return True
    return float(np.dot(scene.cam_xy - q, n)) < 0.0


# --------------------------------------------------------------------------------------------------
# per-plan cache of scenes and looks


class _PlanState:
    def __init__(self, plan: Plan) -> None:
        self.look = _store_look(plan)
        self.scenes: dict[Camera, _Scene] = {}
        self.people: dict[str, _Look] = {}
        self.seed = plan.scenario.seed
        self.plan_ref = weakref.ref(plan)

    def scene(self, plan: Plan, camera: Camera) -> _Scene:
        if camera not in self.scenes:
            self.scenes[camera] = _SceneBuilder(plan, self.look, camera).build()
        return self.scenes[camera]

    def look_of(self, shopper_id: str) -> _Look:
        if shopper_id not in self.people:
            self.people[shopper_id] = _look_for(self.seed, shopper_id)
        return self.people[shopper_id]


_STATES: dict[int, _PlanState] = {}


def _state(plan: Plan) -> _PlanState:
    key = id(plan)
    st = _STATES.get(key)
    if st is None or st.plan_ref() is not plan:
        st = _PlanState(plan)
        _STATES[key] = st
        weakref.finalize(plan, _STATES.pop, key, None)
    return st


# --------------------------------------------------------------------------------------------------
# public API


def render_frame(plan: Plan, camera: Camera, t_s: float, rng: np.random.Generator) -> tuple[Image, list[RenderedBox]]:
    """One BGR image of `camera` at time `t_s` and the truth boxes of the shoppers in it. `rng` drives
    this frame's lighting jitter and noise."""
    state = _state(plan)
    scene = state.scene(plan, camera)
    img = scene.background.copy()
    people: list[_Person] = []
    for i, p in enumerate(plan.shoppers):
        if not (p.enter_s <= t_s <= p.exit_s):
            continue
        person = _person(scene, p, state.look_of(p.shopper.id), t_s, i)
        if person is None:
            continue
        person.behind = [
            k for k, occ in enumerate(scene.occluders) if _overlaps(person.bbox, occ) and _behind(scene, person, occ)
        ]
        people.append(person)

    hidden = [q for q in people if q.behind]
    shown = [q for q in people if not q.behind]
    for group in (hidden, shown):
        if not group:
            continue
        for q in group:
            _draw_shadow(img, q.shadow)
        shapes = sorted((s for q in group for s in q.shapes), key=lambda s: (s.z, -s.dist, s.seq))
        for s in shapes:
            _fill(img, s.poly, s.colour)
        if group is hidden:
            for k in sorted({k for q in hidden for k in q.behind}):
                occ = scene.occluders[k]
                mh, mw = occ.mask.shape
                win = img[occ.y0 : occ.y0 + mh, occ.x0 : occ.x0 + mw]
                win[occ.mask] = scene.background[occ.y0 : occ.y0 + mh, occ.x0 : occ.x0 + mw][occ.mask]

    # camera: slight blur, this frame's exposure and contrast, sensor noise
    sigma = float(np.clip(scene.blur_sigma + rng.normal(0, 0.08), 0.3, 1.3))
    img = np.asarray(cv2.GaussianBlur(img, (5, 5), sigma), dtype=np.uint8)
    contrast = scene.contrast * (1.0 + float(rng.normal(0, 0.025)))
    brightness = scene.brightness + float(rng.normal(0, 3.5))
    ox, oy = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
    noise = scene.noise[oy : oy + scene.height, ox : ox + scene.width]
    out = np.asarray(
        cv2.addWeighted(img, contrast, noise, 1.0, brightness + (1.0 - contrast) * 128.0 - 128.0),
        dtype=np.uint8,
    )
    boxes = [
        RenderedBox(q.shopper_id, q.box, q.visible_fraction)
        for q in people
        if q.visible_fraction >= MIN_VISIBLE_FRACTION
    ]
    boxes.sort(key=lambda b: b.shopper_id)
    return out, boxes


def encode_jpeg(img: Image, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def frame_times(duration_s: float, fps: float) -> list[float]:
    """Frame times from 0 (included) up to `duration_s` (excluded), like the tracker's ticks."""
    n = max(0, math.ceil(duration_s * fps - 1e-9))
    return [k / fps for k in range(n)]


def render_frames(
    plan: Plan, duration_s: float, fps: float | None = None, progress: bool = False
) -> Iterator[RenderedFrame]:
    """Every camera's frames from 0 to `duration_s` at `fps` (default: each camera's own), in time order
    across cameras."""
    jobs: list[tuple[float, str, int, Camera]] = []
    for cam in plan.store.cameras:
        for k, t in enumerate(frame_times(duration_s, fps if fps is not None else cam.fps)):
            jobs.append((t, cam.id, k, cam))
    jobs.sort(key=lambda j: (j[0], j[1], j[2]))
    seed = plan.scenario.seed
    for t, cam_id, k, cam in tqdm(jobs, desc="frames", unit="frame", disable=not progress, leave=False):
        img, boxes = render_frame(plan, cam, t, rng_for(seed, "frame", cam_id, k))
        yield RenderedFrame(cam_id, t, encode_jpeg(img), boxes)
