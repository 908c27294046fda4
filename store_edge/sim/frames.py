"""Synthetic top-down ceiling-camera frames of a simulated store, for the vision path.

Everything is drawn through the camera's own calibration (`CameraModel.world_to_pixel` of 3D points,
lens distortion included), so a detector trained on these frames sees people where the store geometry
says they are. The static scene (tiled floor, walls, gondolas with their products, gates) is rendered
once per camera; every frame copies it and draws the shoppers on top, from the floor up: a soft
shadow, shoes, legs, a basket, arms (one reaching into the shelf during a contact), torso and
shoulders, a backpack or a hood, then the head with hair or a cap. Body build and clothing vary per
shopper and are fixed by the shopper id. A shopper behind a gondola (seen from the camera) is hidden
by it. Each frame then gets its own lighting jitter, a slight blur and sensor noise.

The same plan (same scenario seed) always gives the same images, byte for byte.

The truth box of a shopper is the image box of a 3D box around their body, floor to head top, clipped
to the image; `visible_fraction` is the share of that box inside the image. Shoppers with less than
`MIN_VISIBLE_FRACTION` of it inside, or hidden almost entirely behind gondolas, get no box.

Needs OpenCV (the `vision` extra).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from store_edge.layout.camera import CameraModel
from store_edge.layout.model import Camera, Gondola, Shelf, StoreLayout
from store_edge.sim.plan import Plan, PlannedShopper, rng_for

FloatArray = NDArray[np.float64]
Image = NDArray[np.uint8]
Fixed = NDArray[np.int32]

JPEG_QUALITY = 80
MIN_VISIBLE_FRACTION = 0.15
"""Shoppers with less of their box inside the image (or less of their body unhidden) get no box."""
BOX_MARGIN_M = 0.06
"""The truth box reaches this far beyond the shoulders, chest and back."""
GONDOLA_TOP_ABOVE_SHELF_M = 0.2
"""A gondola's top: the products standing on its highest shelf."""

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_SCALE = float(1 << _SHIFT)
_RING = 20  # points per horizontal ellipse
_NOISE_PAD = 48
_NOISE_STD = 3.0  # grey levels, before each camera's own gain
_COARSE = 4  # the floor map is computed every _COARSE pixels and interpolated
_LIGHT = np.array([0.6, 0.8])  # horizontal direction side faces are lit from (unit vector)


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
    """A colour given as RGB, kept in OpenCV's BGR order."""
    return np.array([b, g, r], dtype=float)


def _scalar(colour: FloatArray) -> tuple[float, float, float]:
    b, g, r = colour.tolist()
    return (min(max(b, 0.0), 255.0), min(max(g, 0.0), 255.0), min(max(r, 0.0), 255.0))


def _fixed(px: FloatArray) -> Fixed:
    """Pixel coordinates as OpenCV fixed point (`_SHIFT` fractional bits), kept in a sane range."""
    return np.round(np.clip(px, -20000.0, 20000.0) * _SCALE).astype(np.int32)


def _fill(img: Image, poly: Fixed, colour: FloatArray) -> None:
    cv2.fillPoly(img, [poly], _scalar(colour), cv2.LINE_AA, _SHIFT)


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-9 else np.array([0.0, 1.0])


_THETA = np.linspace(0.0, 2.0 * np.pi, _RING, endpoint=False)
_POWERS = (2.0, 2.5, 3.0, 4.0, 6.0)
_UNIT_RINGS = np.stack(
    [
        np.stack(
            [
                np.sign(np.cos(_THETA)) * np.abs(np.cos(_THETA)) ** (2.0 / p),
                np.sign(np.sin(_THETA)) * np.abs(np.sin(_THETA)) ** (2.0 / p),
            ],
            axis=1,
        )
        for p in _POWERS
    ]
)
"""Unit superellipses, one per exponent in _POWERS: (len(_POWERS), _RING, 2)."""


def _ring(
    centre: FloatArray, z: float, f: FloatArray, lat: FloatArray, a: float, b: float, power: int = 0
) -> FloatArray:
    """A horizontal (super)ellipse at height z: half-axis `a` along `f`, `b` along `lat`; _RING x 3."""
    return np.asarray(_rings(centre[None, :], z, f, lat, a, b, power)[0], dtype=float)


def _rings(
    centres: FloatArray, z: float, f: FloatArray, lat: FloatArray, a: float, b: float, power: int = 0
) -> FloatArray:
    """`_ring` around each of N centres: N x _RING x 3."""
    u = _UNIT_RINGS[power]
    out = np.empty((len(centres), _RING, 3))
    out[..., :2] = centres[:, None, :] + ((a * u[:, :1]) * f + (b * u[:, 1:]) * lat)[None, :, :]
    out[..., 2] = z
    return out


def _segment(p: FloatArray, q: FloatArray, n: int) -> FloatArray:
    """n points from p towards q (q itself excluded)."""
    s = np.arange(n, dtype=float)[:, None] / n
    return p[None, :] + s * (q - p)[None, :]


def _polygon3(corners: FloatArray, subdivide: int) -> FloatArray:
    """A closed 3D polygon with every edge cut into `subdivide` pieces, so it bends with distortion."""
    return np.vstack([_segment(corners[i], corners[(i + 1) % len(corners)], subdivide) for i in range(len(corners))])


def _inside_polygon(x: NDArray[np.float32], y: NDArray[np.float32], poly: FloatArray) -> NDArray[np.bool_]:
    inside = np.zeros(x.shape, dtype=bool)
    for i in range(len(poly)):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
        if y1 == y2:
            continue
        crosses = (y1 > y) != (y2 > y)
        xc = x1 + (y - y1) * ((x2 - x1) / (y2 - y1))
        inside ^= crosses & (x < xc)
    return inside


def _ccw(poly: FloatArray) -> FloatArray:
    x, y = poly[:, 0], poly[:, 1]
    area = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return poly if area > 0 else poly[::-1].copy()


def _closest_on_polygon(p: FloatArray, poly: FloatArray) -> FloatArray:
    best: FloatArray = poly[0]
    best_d = math.inf
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        ab = b - a
        t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
        q = a + t * ab
        d = float(np.hypot(*(p - q)))
        if d < best_d:
            best, best_d = q, d
    return best


class _Projector:
    """`CameraModel.world_to_pixel`, also refusing points beyond where the lens model stops being
    one-to-one (a polynomial distortion folds back far outside the calibrated field of view)."""

    def __init__(self, model: CameraModel) -> None:
        self.model = model
        k1, k2, _, _, k3 = (float(v) for v in model.dist)
        r = np.linspace(0.0, 5.0, 5001)
        radial = r * (1 + k1 * r**2 + k2 * r**4 + k3 * r**6)
        folds = np.nonzero(np.diff(radial) <= 0)[0]
        self.r2_max = float((r[folds[0]] * 0.97) ** 2) if len(folds) else math.inf

    def __call__(self, pts: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
        uv, ok = self.model.world_to_pixel(pts)
        if self.r2_max < math.inf:
            cam = pts @ self.model.rot.T + self.model.tvec
            z = np.where(ok, cam[:, 2], 1.0)
            ok = ok & ((cam[:, 0] ** 2 + cam[:, 1] ** 2) / (z * z) < self.r2_max)
        return uv, ok


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
    """Floor mottling and light pools: (kx, ky, phase, amplitude) sinusoids in store coordinates."""


def _store_look(plan: Plan) -> _StoreLook:
    rng = rng_for(plan.scenario.seed, "frames", "store", plan.store.store_id)
    floors = [
        _rgb(200, 200, 196),
        _rgb(206, 196, 178),
        _rgb(218, 216, 210),
        _rgb(176, 178, 176),
        _rgb(196, 188, 176),
        _rgb(188, 196, 200),
        _rgb(150, 152, 150),
    ]
    walls = [_rgb(226, 224, 216), _rgb(210, 216, 222), _rgb(232, 226, 210), _rgb(200, 200, 200)]
    accents = [_rgb(190, 40, 40), _rgb(30, 110, 70), _rgb(40, 80, 160), _rgb(230, 160, 30)]
    metals = [_rgb(215, 215, 212), _rgb(60, 62, 66), _rgb(190, 192, 196), _rgb(235, 235, 230)]
    waves = []
    for _ in range(4):
        k = 2 * np.pi * float(rng.uniform(0.15, 1.2))
        ang = float(rng.uniform(0, 2 * np.pi))
        waves.append(
            (k * math.cos(ang), k * math.sin(ang), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.01, 0.03)))
        )
    return _StoreLook(
        floor=floors[int(rng.integers(len(floors)))] * float(rng.uniform(0.9, 1.05)) + rng.normal(0, 2.5, 3),
        tile_m=float(rng.choice([0.3, 0.4, 0.5, 0.6])),
        tile_contrast=float(rng.uniform(0.01, 0.04)),
        grout=float(rng.uniform(0.6, 0.8)),
        wall=walls[int(rng.integers(len(walls)))] + rng.normal(0, 3, 3),
        accent=accents[int(rng.integers(len(accents)))],
        shelf=metals[int(rng.integers(len(metals)))] + rng.normal(0, 4, 3),
        panel=metals[int(rng.integers(len(metals)))] * 0.9 + rng.normal(0, 4, 3),
        waves=waves,
    )


@dataclass(frozen=True)
class _ProductLook:
    colour: tuple[float, float, float]
    cap: tuple[float, float, float]
    round: bool


@lru_cache(maxsize=4096)
def _product_look(sku: str) -> _ProductLook:
    digest = hashlib.sha256(f"product/{sku}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    h, s, v = float(rng.uniform(0, 1)), float(rng.uniform(0.45, 0.95)), float(rng.uniform(0.45, 0.95))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    caps = [(240.0, 240.0, 240.0), (30.0, 30.0, 30.0), (30.0, 30.0, 200.0), (200.0, 90.0, 40.0), (40.0, 200.0, 230.0)]
    return _ProductLook((b * 255, g * 255, r * 255), caps[int(rng.integers(len(caps)))], bool(rng.random() < 0.7))


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
    basket = _BASKETS[int(rng.integers(len(_BASKETS)))] if rng.random() < 0.3 else None
    items = [
        (float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.06, 0.06)), _clothing(rng))
        for _ in range(int(rng.integers(0, 4)))
    ]
    ang = float(rng.uniform(0, 2 * np.pi))
    return _Look(
        scale=scale,
        shoulder_w=float(rng.uniform(0.40, 0.50)) * scale,
        depth=float(rng.uniform(0.22, 0.28)) * scale,
        head_r=float(rng.uniform(0.092, 0.105)) * scale,
        skin=_SKIN[int(rng.integers(len(_SKIN)))] + rng.normal(0, 6, 3),
        hair=_pick(rng, _HAIR) + rng.normal(0, 4, 3),
        shirt=_clothing(rng),
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
    mask: Image
    """Where the gondola covers the image (0/1), cropped to its box starting at (x0, y0)."""


@dataclass
class _Scene:
    model: CameraModel
    project: _Projector
    width: int
    height: int
    background: Image
    occluders: list[_Occluder]
    cam_xy: FloatArray
    tint: FloatArray
    vignette: float
    noise: Image
    """Sensor noise around 128, larger than the image: each frame takes a shifted window."""
    noise_gain: float
    contrast: float
    brightness: float
    blur_sigma: float
    view_radius: float
    """No shopper farther than this from the camera (on the floor plan) can be in the image."""

    def light_at(self, px: tuple[float, float]) -> FloatArray:
        """What the camera's colour cast and lens falloff do to a colour at this pixel."""
        cx, cy = self.width / 2, self.height / 2
        r2 = ((px[0] - cx) ** 2 + (px[1] - cy) ** 2) / (cx * cx + cy * cy)
        return self.tint * (1.0 - self.vignette * min(float(r2), 1.5))


class _Batch:
    """Polygons in store coordinates, projected together and filled in order."""

    def __init__(self) -> None:
        self.items: list[tuple[FloatArray, FloatArray, bool]] = []

    def add(self, pts: FloatArray, colour: FloatArray | tuple[float, float, float], mask: bool = False) -> None:
        self.items.append((pts, np.asarray(colour, dtype=float), mask))

    def flush(self, project: _Projector, img: Image, mask: Image | None = None) -> None:
        if not self.items:
            return
        uv, ok = project(np.vstack([pts for pts, _, _ in self.items]))
        fixed = _fixed(uv)
        i = 0
        for pts, colour, to_mask in self.items:
            j = i + len(pts)
            if bool(np.all(ok[i:j])):
                _fill(img, fixed[i:j], colour)
                if to_mask and mask is not None:
                    cv2.fillPoly(mask, [fixed[i:j]], 1, cv2.LINE_8, _SHIFT)
            i = j
        self.items = []


class _SceneBuilder:
    def __init__(self, plan: Plan, look: _StoreLook, camera: Camera, noise: Image) -> None:
        self.plan = plan
        self.noise = noise
        self.store: StoreLayout = plan.store
        self.look = look
        self.camera = camera
        self.model = CameraModel(camera)
        self.project = _Projector(self.model)
        self.w, self.h = camera.resolution
        self.cam_pos = self.model.position
        self.cam_xy = self.cam_pos[:2].copy()
        self.batch = _Batch()
        self._coarse: tuple[FloatArray, NDArray[np.bool_]] | None = None

    def build(self) -> _Scene:
        rng = rng_for(self.plan.scenario.seed, "frames", "camera", self.camera.id)
        img = self.floor_and_walls(rng)
        for gate in self.store.gates:
            self.gate_marking(gate.line)
        self.batch.flush(self.project, img)
        statics: list[tuple[float, str, int]] = []
        for i, g in enumerate(self.store.gondolas):
            statics.append((float(np.hypot(*(g.footprint().mean(axis=0) - self.cam_xy))), "gondola", i))
        for i, gate in enumerate(self.store.gates):
            statics.append((float(np.hypot(*(np.mean(np.array(gate.line), axis=0) - self.cam_xy))), "gate", i))
        occluders: list[_Occluder] = []
        for _, kind, i in sorted(statics, reverse=True):  # far to near
            if kind == "gondola":
                occ = self.gondola(img, self.store.gondolas[i])
                if occ is not None:
                    occluders.append(occ)
            else:
                gate = self.store.gates[i]
                self.gate_posts(gate.line, gate.scanner_id is not None)
                self.batch.flush(self.project, img)
        # the camera's colour cast and lens falloff, over everything static
        tint = 1.0 + rng.normal(0, 0.02, 3)
        vignette = float(rng.uniform(0.08, 0.25))
        xx = (np.arange(self.w, dtype=np.float32) - self.w / 2) ** 2
        yy = (np.arange(self.h, dtype=np.float32) - self.h / 2) ** 2
        r2 = (yy[:, None] + xx[None, :]) / np.float32((self.w / 2) ** 2 + (self.h / 2) ** 2)
        falloff = 1.0 - np.float32(vignette) * np.minimum(r2, np.float32(1.5))
        gain = cv2.merge([falloff * np.float32(t) for t in tint])
        graded = cv2.multiply(img, gain, dtype=cv2.CV_8U)
        return _Scene(
            model=self.model,
            project=self.project,
            width=self.w,
            height=self.h,
            background=np.ascontiguousarray(graded),
            occluders=occluders,
            cam_xy=self.cam_xy,
            tint=tint,
            vignette=vignette,
            noise=self.noise,
            noise_gain=float(rng.uniform(0.6, 1.5)),
            contrast=float(rng.uniform(0.92, 1.06)),
            brightness=float(rng.normal(0, 6)),
            blur_sigma=float(rng.uniform(0.5, 1.0)),
            view_radius=self.view_radius(),
        )

    def view_radius(self) -> float:
        """How far from the camera (on the floor plan) the image reaches: the farthest floor point
        seen, plus a body's reach; unbounded when the camera sees the horizon or past its lens range."""
        hits, valid = self.coarse_hits()
        if not bool(valid.all()):
            return math.inf
        return float(np.hypot(*(hits - self.cam_xy).reshape(-1, 2).T).max()) + 1.5

    # --- floor and walls, per pixel ---------------------------------------------------------------
    def coarse_hits(self) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Where the rays of a coarse grid of pixels (every _COARSE-th, at block centres) meet the floor,
        and whether the lens model maps that point back to the pixel (it does not beyond its range)."""
        if self._coarse is None:
            cw, ch = math.ceil(self.w / _COARSE), math.ceil(self.h / _COARSE)
            us = np.arange(cw) * _COARSE + (_COARSE - 1) / 2
            vs = np.arange(ch) * _COARSE + (_COARSE - 1) / 2
            uu, vv = np.meshgrid(us, vs)
            pix = np.stack([uu.ravel(), vv.ravel()], axis=1)
            hit = self.model.pixel_to_floor(pix)
            valid = np.asarray(np.isfinite(hit).all(axis=1), dtype=bool)
            hit = np.where(valid[:, None], hit, self.cam_xy[None, :])
            back, ok = self.project(np.hstack([hit, np.zeros((len(hit), 1))]))
            valid &= ok & (np.hypot(*(back - pix).T) < 0.5)
            self._coarse = hit.reshape(ch, cw, 2), valid.reshape(ch, cw)
        return self._coarse

    def floor_map(self) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
        """Per pixel, where its ray meets the floor, interpolated from the coarse grid (the mapping is
        smooth, distortion included), and where the lens model holds."""
        hit, valid = self.coarse_hits()
        ch, cw = valid.shape
        hit = np.where(valid[..., None], hit, self.cam_xy[None, None, :] + 1e3)  # misses: far away
        full = cv2.resize(hit.astype(np.float32), (cw * _COARSE, ch * _COARSE), interpolation=cv2.INTER_LINEAR)
        ok = cv2.resize(valid.astype(np.uint8), (cw * _COARSE, ch * _COARSE), interpolation=cv2.INTER_NEAREST)
        full = np.asarray(full, dtype=np.float32)[: self.h, : self.w]
        return full[..., 0], full[..., 1], np.asarray(ok, dtype=np.uint8)[: self.h, : self.w] > 0

    def floor_and_walls(self, rng: np.random.Generator) -> Image:
        look = self.look
        x, y, valid = self.floor_map()
        outline = np.array(self.store.floor.outline, dtype=float)
        on_floor = valid & _inside_polygon(x, y, outline)
        f32 = np.float32

        # tiles: a tone per tile, grout lines antialiased by the floor size of a pixel, light pools
        ts = f32(look.tile_m)
        fx, fy = x / ts, y / ts
        ix, iy = np.floor(fx).astype(np.int32), np.floor(fy).astype(np.int32)
        tile_hash = (((ix * np.int32(7385609)) ^ (iy * np.int32(1934966))) & 0xFFFF).astype(np.float32)
        tone = 1.0 + f32(look.tile_contrast) * (tile_hash / f32(65535.0 / 2) - 1.0)
        dist = np.minimum(np.abs(fx - np.round(fx)), np.abs(fy - np.round(fy))) * ts
        m_per_px = np.maximum(np.hypot(np.gradient(x, axis=1), np.gradient(y, axis=1)), f32(1e-4))
        cover = np.clip((f32(0.003) + f32(0.5) * m_per_px - dist) / m_per_px, 0.0, 1.0)
        shade = tone * (1.0 - f32(1.0 - look.grout) * cover)
        for kx, ky, phase, amp in look.waves:
            shade += f32(amp) * np.sin(f32(kx) * x + f32(ky) * y + f32(phase))
        shade += rng.standard_normal(shade.shape, dtype=np.float32) * f32(0.008)  # the finish's grain

        # walls: where a ray leaves the floor polygon, the height at which it meets the wall (coarse)
        z = self.wall_height(outline)
        wall_shade = f32(0.78) + f32(0.22) * np.clip(z / f32(max(self.cam_pos[2], 1e-6)), 0, 1)
        accent = (z > 1.0) & (z < 1.12)
        skirting = z < 0.12
        channels = []
        for c in range(3):
            floor_c = shade * f32(look.floor[c])
            wall_c = np.where(accent, f32(look.accent[c]), f32(look.wall[c])) * wall_shade
            wall_c = np.where(skirting, f32(64.0), wall_c)
            pixel = np.where(on_floor, floor_c, wall_c)
            channels.append(np.clip(np.where(valid, pixel, f32(6.0)), 0, 255).astype(np.uint8))
        return np.ascontiguousarray(np.asarray(cv2.merge(channels), dtype=np.uint8))

    def wall_height(self, outline: FloatArray) -> NDArray[np.float32]:
        """Per pixel, how high above the floor the ray meets the store's outer wall (camera height if
        it never does)."""
        w, h = self.w, self.h
        hits, valid = self.coarse_hits()
        hit = hits.reshape(-1, 2)
        o = self.cam_pos
        ok = valid.ravel()
        dx = np.where(ok, hit[:, 0] - o[0], 0.0)
        dy = np.where(ok, hit[:, 1] - o[1], 0.0)
        best = np.full(len(hit), np.inf)
        for i in range(len(outline)):
            a, b = outline[i], outline[(i + 1) % len(outline)]
            ex, ey = b - a
            ax, ay = a - o[:2]
            det = -dx * ey + dy * ex
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (ay * ex - ax * ey) / det
                u = (dx * ay - dy * ax) / det
            hit_wall = (np.abs(det) > 1e-12) & (s > 0) & (s <= 1.0) & (u >= 0) & (u <= 1) & (s < best)
            best = np.where(hit_wall, s, best)
        ch, cw = valid.shape
        z = np.where(np.isfinite(best), o[2] * (1.0 - best), o[2]).reshape(ch, cw).astype(np.float32)
        full = cv2.resize(z, (cw * _COARSE, ch * _COARSE), interpolation=cv2.INTER_LINEAR)
        return np.asarray(full, dtype=np.float32)[:h, :w]

    # --- gates --------------------------------------------------------------------------------------
    def gate_marking(self, line: tuple[tuple[float, float], tuple[float, float]]) -> None:
        a, b = np.array(line[0], dtype=float), np.array(line[1], dtype=float)
        n = _unit(np.array([-(b - a)[1], (b - a)[0]])) * 0.03
        quad = np.array([[*(a - n), 0.0], [*(b - n), 0.0], [*(b + n), 0.0], [*(a + n), 0.0]])
        self.batch.add(_polygon3(quad, 8), _rgb(235, 190, 30))

    def gate_posts(self, line: tuple[tuple[float, float], tuple[float, float]], scanner: bool) -> None:
        a, b = np.array(line[0], dtype=float), np.array(line[1], dtype=float)
        d = _unit(b - a)
        n = np.array([-d[1], d[0]])
        metal = _rgb(186, 188, 192)
        for end, inward in ((a, d), (b, -d)):
            fp = np.array(
                [end - 0.06 * d - 0.2 * n, end + 0.06 * d - 0.2 * n, end + 0.06 * d + 0.2 * n, end - 0.06 * d + 0.2 * n]
            )
            self.box(fp, 0.0, 1.0, metal, metal * 1.05)
            arm = end + inward * 0.06
            fp_arm = np.array(
                [arm - 0.015 * n, arm + 0.28 * inward - 0.015 * n, arm + 0.28 * inward + 0.015 * n, arm + 0.015 * n]
            )
            self.box(fp_arm, 0.55, 0.95, _rgb(150, 170, 180), _rgb(200, 215, 222))
        if scanner:
            fp = np.array(
                [a - 0.05 * d - 0.05 * n, a + 0.05 * d - 0.05 * n, a + 0.05 * d + 0.05 * n, a - 0.05 * d + 0.05 * n]
            )
            self.box(fp, 1.0, 1.12, _rgb(30, 30, 34), _rgb(40, 44, 60))

    # --- boxes and gondolas --------------------------------------------------------------------------
    def box(self, fp: FloatArray, z0: float, z1: float, side: FloatArray, top: FloatArray, mask: bool = False) -> None:
        """A prism on floor polygon `fp`: its side faces that face the camera, then its top."""
        fp = _ccw(fp)
        for i in range(len(fp)):
            a, b = fp[i], fp[(i + 1) % len(fp)]
            e = b - a
            normal = _unit(np.array([e[1], -e[0]]))
            if float(np.dot(self.cam_xy - a, normal)) <= 1e-6:
                continue  # faces away from the camera
            quad = np.array([[*a, z0], [*b, z0], [*b, z1], [*a, z1]])
            self.batch.add(_polygon3(quad, 6), side * (0.62 + 0.12 * float(np.dot(normal, _LIGHT))), mask)
        self.batch.add(_polygon3(np.hstack([fp, np.full((len(fp), 1), z1)]), 6), top, mask)

    def gondola(self, img: Image, g: Gondola) -> _Occluder | None:
        look = self.look
        fp = _ccw(g.footprint())
        shelves = sorted(g.shelves, key=lambda s: s.z_m)
        z_top = shelves[-1].z_m + GONDOLA_TOP_ABOVE_SHELF_M
        self.box(fp, 0.0, z_top, look.panel, look.shelf * 0.55, mask=True)
        front = np.array(g.front, dtype=float)
        if float(np.dot(self.cam_xy - front[0], g.aisle_normal)) > 1e-6:
            self.shelf_front(g, shelves, z_top)
        self.top_products(g, shelves[-1], z_top)
        mask = np.zeros((self.h, self.w), dtype=np.uint8)
        self.batch.flush(self.project, img, mask)
        x0, y0, bw, bh = cv2.boundingRect(mask)
        if bw == 0 or bh == 0:
            return None
        return _Occluder(fp, x0, y0, np.ascontiguousarray(mask[y0 : y0 + bh, x0 : x0 + bw]))

    def shelf_front(self, g: Gondola, shelves: list[Shelf], z_top: float) -> None:
        """The open shelf front: dark inside, shelf edges, product facings standing on each shelf."""
        store = self.store
        front = np.array(g.front, dtype=float)
        quad = np.array([[*front[0], 0.0], [*front[1], 0.0], [*front[1], z_top], [*front[0], z_top]])
        self.batch.add(_polygon3(quad, 6), _rgb(38, 38, 42))
        for k, shelf in enumerate(shelves):
            z_next = shelves[k + 1].z_m if k + 1 < len(shelves) else z_top + 0.03
            height = min(0.26, 0.85 * (z_next - shelf.z_m))
            for plate in shelf.plates:
                geo = store.plate_geometry[plate.id]
                facings = store.facings_on_plate.get(plate.id, [])
                if not facings:
                    continue
                colour = np.array(_product_look(facings[0].sku).colour)
                left, right = np.array(geo.front_left), np.array(geo.front_right)
                cols = max(1, round(plate.width_m / 0.07))
                for c in range(cols):
                    p0 = left + (right - left) * (c + 0.06) / cols
                    p1 = left + (right - left) * (c + 0.94) / cols
                    tone = 0.55 + 0.08 * ((c * 7 + k * 3) % 3)
                    q = np.array(
                        [[*p0, shelf.z_m], [*p1, shelf.z_m], [*p1, shelf.z_m + height], [*p0, shelf.z_m + height]]
                    )
                    self.batch.add(q, colour * tone)
            edge = np.array(
                [
                    [*front[0], shelf.z_m - 0.04],
                    [*front[1], shelf.z_m - 0.04],
                    [*front[1], shelf.z_m],
                    [*front[0], shelf.z_m],
                ]
            )
            self.batch.add(_polygon3(edge, 6), self.look.shelf * 0.85)

    def top_products(self, g: Gondola, shelf: Shelf, z: float) -> None:
        """Products on the highest shelf seen from above: rows of caps or box tops."""
        store = self.store
        inward = -g.aisle_normal
        for plate in shelf.plates:
            geo = store.plate_geometry[plate.id]
            facings = store.facings_on_plate.get(plate.id, [])
            if not facings:
                continue
            units = sum(f.plates.get(plate.id, 0) for f in facings)
            prod = _product_look(facings[0].sku)
            colour = np.array(prod.colour)
            width, depth = plate.width_m, shelf.depth_m
            cell = float(np.clip(math.sqrt(width * depth / max(units, 1)), 0.05, 0.12))
            cols = max(1, int(width / cell))
            rows = max(1, min(math.ceil(units / cols), int(depth / cell)))
            left, right = np.array(geo.front_left), np.array(geo.front_right)
            d = _unit(right - left)
            cw, rd = width / cols, depth / rows
            rr, cc = np.divmod(np.arange(min(units, rows * cols)), cols)
            centres = left + np.outer((cc + 0.5) / cols, right - left) + np.outer((rr + 0.5) * rd, inward)
            if prod.round:
                rad = 0.42 * min(cw, rd)
                for body, cap in zip(
                    _rings(centres, z, d, inward, rad, rad),
                    _rings(centres, z, d, inward, rad * 0.5, rad * 0.5),
                    strict=True,
                ):
                    self.batch.add(body, colour)
                    self.batch.add(cap, prod.cap)
            else:
                tops = _rings(centres, z, d, inward, 0.47 * cw, 0.47 * rd, power=4)
                for k, top in enumerate(tops):
                    self.batch.add(top, colour * (0.9 + 0.1 * ((int(rr[k]) + int(cc[k])) % 2)))


# --------------------------------------------------------------------------------------------------
# shoppers


@dataclass
class _Pose:
    pos: FloatArray
    heading: FloatArray
    speed: float
    reach: tuple[FloatArray, float] | None
    """Where the reaching hand goes, and how far it is on its way (0..1)."""


def _pose(p: PlannedShopper, look: _Look, t: float) -> _Pose:
    offsets = np.array([0.0, 0.2, 0.6, 1.5, 4.0, 10.0, -0.3, -1.0, -3.0])
    pts = p.trajectory.at(t - offsets)
    pos = pts[0]
    speed = float(np.hypot(*(pos - pts[1]))) / 0.2
    heading = look.default_heading
    for k in range(1, len(offsets)):  # walking direction; standing: the last one (or the next one)
        d = pos - pts[k] if offsets[k] > 0 else pts[k] - pos
        if float(np.hypot(d[0], d[1])) > (0.01 if k == 1 else 0.05):
            heading = _unit(d)
            break
    reach: tuple[FloatArray, float] | None = None
    for t0, t1, hand in p.reaches:
        if t0 - 0.9 <= t <= t1 + 0.6:  # turns to the shelf, the hand goes in and comes back
            ext = float(np.clip((t - (t0 - 0.35)) / 0.35, 0, 1) * np.clip((t1 + 0.35 - t) / 0.35, 0, 1))
            turn = float(np.clip((t - (t0 - 0.9)) / 0.45, 0, 1) * np.clip((t1 + 0.6 - t) / 0.45, 0, 1))
            target = np.array(hand, dtype=float)
            to_shelf = target[:2] - pos
            if float(np.hypot(*to_shelf)) > 1e-3:
                heading = _unit((1 - turn) * heading + turn * _unit(to_shelf))
            reach = (target, ext)
            break
    return _Pose(pos, heading, speed, reach)


@dataclass
class _Shape:
    z: float
    dist: float
    seq: int
    poly: Fixed
    colour: FloatArray


@dataclass
class _Person:
    shopper_id: str
    box: tuple[float, float, float, float]
    visible_fraction: float
    bbox: tuple[float, float, float, float]
    """Unclipped image box of the body."""
    shapes: list[_Shape]
    shadow: Fixed
    pos: FloatArray
    behind: list[int] = field(default_factory=list)
    """Occluders (by index) between the camera and this shopper."""


class _Body:
    """Rings (horizontal ellipses) of one body, generated and projected in one go."""

    def __init__(self, f: FloatArray, lat: FloatArray) -> None:
        self.f, self.lat = f, lat
        self.spec: list[tuple[float, float, float, float, float, int]] = []
        self.shapes: list[tuple[float, int, int, FloatArray]] = []  # (z order, ring, ring or -1, colour)

    def ring(self, c: FloatArray, z: float, a: float, b: float, power: int = 0) -> int:
        self.spec.append((float(c[0]), float(c[1]), z, a, b, power))
        return len(self.spec) - 1

    def flat(
        self, z_order: float, c: FloatArray, z: float, a: float, b: float, colour: FloatArray, power: int = 0
    ) -> None:
        self.shapes.append((z_order, self.ring(c, z, a, b, power), -1, colour))

    def prism(
        self,
        z_order: float,
        c0: FloatArray,
        z0: float,
        a0: float,
        b0: float,
        c1: FloatArray,
        z1: float,
        a1: float,
        b1: float,
        side: FloatArray,
        top: FloatArray | None = None,
        power: int = 0,
    ) -> None:
        """The hull of two rings (legs, torso, head...), and optionally its top ring in another colour."""
        r0, r1 = self.ring(c0, z0, a0, b0, power), self.ring(c1, z1, a1, b1, power)
        self.shapes.append((z_order, r0, r1, side))
        if top is not None:
            self.shapes.append((z_order + 0.0005, r1, -1, top))

    def capsule(self, z_order: float, p0: FloatArray, p1: FloatArray, r: float, colour: FloatArray) -> None:
        self.prism(z_order, p0[:2], float(p0[2]), r, r, p1[:2], float(p1[2]), r, r, colour)

    def points(self) -> FloatArray:
        s = np.array(self.spec)
        u = _UNIT_RINGS[s[:, 5].astype(np.int64)]  # (R, _RING, 2)
        x = s[:, 3:4] * u[..., 0]
        y = s[:, 4:5] * u[..., 1]
        f, lat = self.f, self.lat
        px = s[:, 0:1] + x * f[0] + y * lat[0]
        py = s[:, 1:2] + x * f[1] + y * lat[1]
        pz = np.broadcast_to(s[:, 2:3], px.shape)
        return np.stack([px, py, pz], axis=-1).reshape(-1, 3)


_SIGNS = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])


def _person(scene: _Scene, p: PlannedShopper, look: _Look, pose: _Pose, t: float, order: int) -> _Person | None:
    pos, f = pose.pos, pose.heading
    if float(np.hypot(pos[0] - scene.cam_xy[0], pos[1] - scene.cam_xy[1])) > scene.view_radius:
        return None
    lat = np.array([-f[1], f[0]])  # to the shopper's left
    s = look.scale
    hw, hd = look.shoulder_w / 2, look.depth / 2
    reach = pose.reach
    crouch, lean = 0.0, 0.0  # low shelves: bend down and lean in
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
    ex_l, ex_f = hw + BOX_MARGIN_M, hd + BOX_MARGIN_M
    corners = np.empty((8, 3))
    corners[:4, :2] = pos + _SIGNS[:, :1] * (ex_f * f) + _SIGNS[:, 1:] * (ex_l * lat)
    corners[4:, :2] = upper + _SIGNS[:, :1] * (ex_f * f) + _SIGNS[:, 1:] * (ex_l * lat)
    corners[:4, 2], corners[4:, 2] = 0.0, head_top
    uv, ok = scene.project(corners)
    if not bool(np.all(ok)):
        return None
    bx1, by1, bx2, by2 = float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())
    area = max((bx2 - bx1) * (by2 - by1), 1e-9)
    cx1, cy1 = min(max(bx1, 0.0), scene.width), min(max(by1, 0.0), scene.height)
    cx2, cy2 = min(max(bx2, 0.0), scene.width), min(max(by2, 0.0), scene.height)
    visible = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0) / area
    if visible <= 0.0:
        return None

    phase = 2 * np.pi * 0.95 * t + look.gait_phase
    swing = math.sin(phase) * float(np.clip(pose.speed / 1.1, 0, 1)) * 0.16 * s
    body = _Body(f, lat)
    shadow = body.ring(pos + np.array([0.04, -0.03]), 0.0, hd + 0.14, hw + 0.08)

    for k in (-1.0, 1.0):  # shoes and legs
        foot = pos + lat * k * 0.1 + f * (k * swing)
        body.prism(
            0.07,
            foot + f * 0.04,
            0.0,
            0.13 * s,
            0.05 * s,
            foot + f * 0.04,
            0.07,
            0.12 * s,
            0.045 * s,
            look.shoes * 0.7,
            look.shoes,
        )
        hip = pos + lat * k * 0.09 + f * lean * 0.3
        body.prism(z_hip, foot, 0.07, 0.055, 0.05, hip, z_hip, 0.085, 0.08, look.trousers * 0.7, look.trousers)

    # arms: one may reach into the shelf; a basket hangs from the other
    reach_side = 0.0
    if reach is not None:
        reach_side = 1.0 if float(np.dot(reach[0][:2] - pos, lat)) >= 0 else -1.0
    basket_side = look.basket_side if reach_side != look.basket_side else -look.basket_side
    forearm = look.skin if look.short_sleeves else look.shirt
    for k in (-1.0, 1.0):
        shoulder = np.array([*(upper + lat * k * (hw - 0.05)), z_sh - 0.04])
        if look.basket is not None and k == basket_side:
            hand = np.array([*(pos + lat * k * (hw + 0.02) + f * 0.04), 0.78 * s - crouch])
        else:
            hand = np.array([*(pos + lat * k * (hw - 0.01) - f * (k * swing * 0.8 - 0.03)), 0.80 * s - crouch])
        if reach is not None and k == reach_side:
            hand = hand + (reach[0] - hand) * reach[1]
            elbow = (shoulder + hand) / 2 + np.array([0.0, 0.0, -0.06])
        else:
            elbow = np.array([*(pos + lat * k * (hw - 0.02) - f * (k * swing * 0.4)), z_sh - 0.3 * s])
        body.capsule(z_sh - 0.04, shoulder, elbow, 0.05 * s, look.shirt * 0.8)
        body.capsule(z_sh - 0.05, elbow, hand, 0.042 * s, forearm * 0.8)
        body.flat(z_sh - 0.05, hand[:2], float(hand[2]), 0.05 * s, 0.04 * s, look.skin * 0.9)

    if look.basket is not None:
        bc = pos + lat * basket_side * (hw + 0.14)
        z_b = 0.72 * s - crouch
        body.prism(
            z_b, bc, max(z_b - 0.26, 0.02), 0.2, 0.13, bc, z_b, 0.2, 0.13, look.basket * 0.6, look.basket, power=4
        )
        body.flat(z_b + 0.001, bc, z_b, 0.18, 0.11, look.basket * 0.35, power=4)
        for dx, dy, colour in look.basket_items:
            body.flat(z_b + 0.002, bc + f * dx + lat * dy, z_b - 0.05, 0.05, 0.035, colour, power=3)

    if look.backpack is not None:
        bp = upper - f * (hd + 0.05)
        body.prism(
            z_sh - 0.05,
            bp,
            z_hip + 0.12,
            0.08,
            0.15,
            bp,
            z_sh - 0.05,
            0.08,
            0.15,
            look.backpack * 0.6,
            look.backpack,
            power=2,
        )

    # torso: hips to boxy shoulders, lit from above
    body.prism(
        z_sh,
        pos + f * lean * 0.3,
        z_hip,
        hd * 0.9,
        hw * 0.78,
        upper,
        z_sh,
        hd,
        hw,
        look.shirt * 0.62,
        look.shirt * 0.92,
        power=2,
    )
    body.flat(z_sh + 0.002, upper - f * 0.01, z_sh + 0.01, hd * 0.6, hw * 0.62, look.shirt, power=1)
    if look.hood:
        body.flat(z_sh + 0.004, upper - f * (hd * 0.55), z_sh + 0.03, 0.07, 0.12, look.shirt * 0.78)
    body.flat(z_sh + 0.006, upper + f * 0.02, z_sh + 0.02, 0.06, 0.06, look.skin * 0.8)
    if look.long_hair and not look.bald:
        body.prism(
            z_sh + 0.008,
            upper - f * 0.06,
            z_sh - 0.12,
            0.05,
            0.09,
            upper - f * 0.05,
            z_head - 0.02,
            0.06,
            0.1,
            look.hair * 0.75,
            look.hair * 0.9,
        )

    # head: skin with ears and nose, hair (or a cap) over the crown, a highlight from the ceiling lights
    hc = upper + f * 0.02
    ra, rb, r = look.head_r * 1.08, look.head_r * 0.88, look.head_r
    body.prism(
        z_head, hc, z_head - 0.06, ra * 0.85, rb * 0.85, hc, z_head + 0.05, ra * 0.85, rb * 0.85, look.skin * 0.75
    )
    body.flat(z_head + 0.001, hc, z_head, ra, rb, look.skin * 0.8)
    for k in (-1.0, 1.0):
        body.flat(z_head + 0.002, hc + lat * k * rb, z_head - 0.01, 0.025, 0.018, look.skin * 0.72)
    body.flat(z_head + 0.003, hc + f * ra * 0.95, z_head - 0.01, 0.022, 0.016, look.skin * 0.85)
    body.flat(z_head + 0.004, hc + f * 0.01, z_head + 0.06, ra * 0.8, rb * 0.8, look.skin)
    if look.hat is not None:
        body.flat(z_head + 0.01, hc + f * ra * 0.85, z_head + 0.04, 0.075, 0.085, look.hat * 0.8)
        body.prism(
            z_head + 0.02,
            hc - f * 0.01,
            z_head,
            ra * 0.98,
            rb * 1.02,
            hc - f * 0.01,
            z_head + r * 0.9,
            ra * 0.8,
            rb * 0.82,
            look.hat * 0.75,
            look.hat,
        )
    else:
        hair = look.skin * 0.85 if look.bald else look.hair
        body.prism(
            z_head + 0.01,
            hc - f * 0.04,
            z_head - 0.04,
            ra * 0.92,
            rb * 1.03,
            hc - f * 0.025,
            z_head + r * 0.75,
            ra * 0.82,
            rb * 0.86,
            hair * 0.8,
            hair,
        )
        body.flat(z_head + 0.02, hc - f * 0.02 + lat * 0.015, z_head + r, 0.035, 0.03, hair * 1.2 + 14.0)

    uvr, okr = scene.project(body.points())
    if not bool(np.all(okr)):
        return None
    rings = _fixed(uvr).reshape(-1, _RING, 2)
    light = scene.light_at(((bx1 + bx2) / 2, (by1 + by2) / 2))
    dist = float(np.hypot(*(pos - scene.cam_xy)))
    shapes: list[_Shape] = []
    for seq, (z_order, r0, r1, colour) in enumerate(body.shapes):
        poly = rings[r0] if r1 < 0 else cv2.convexHull(np.concatenate([rings[r0], rings[r1]])).reshape(-1, 2)
        shapes.append(_Shape(z_order, dist, order * 1000 + seq, np.asarray(poly, dtype=np.int32), colour * light))
    return _Person(
        shopper_id=p.shopper.id,
        box=(round(cx1, 2), round(cy1, 2), round(cx2, 2), round(cy2, 2)),
        visible_fraction=round(min(visible, 1.0), 4),
        bbox=(bx1, by1, bx2, by2),
        shapes=shapes,
        shadow=rings[shadow],
        pos=pos,
    )


def _draw_shadow(img: Image, poly: Fixed, strength: float = 0.35) -> None:
    """A soft contact shadow: drawn at a quarter of the resolution, blurred, scaled up, multiplied in."""
    h, w = img.shape[:2]
    pad, q = 16, 4
    px = poly.astype(float) / _SCALE
    x0, y0 = int(max(px[:, 0].min() - pad, 0)), int(max(px[:, 1].min() - pad, 0))
    x1, y1 = int(min(px[:, 0].max() + pad, w)), int(min(px[:, 1].max() + pad, h))
    if x1 - x0 < q or y1 - y0 < q:
        return
    small = np.zeros(((y1 - y0 + q - 1) // q, (x1 - x0 + q - 1) // q), dtype=np.uint8)
    local = np.round((px - [x0, y0]) / q * _SCALE).astype(np.int32)
    cv2.fillPoly(small, [local], 255, cv2.LINE_AA, _SHIFT)
    small = np.asarray(cv2.GaussianBlur(small, (0, 0), 1.3), dtype=np.uint8)
    soft = cv2.resize(small, (small.shape[1] * q, small.shape[0] * q), interpolation=cv2.INTER_LINEAR)
    keep = 255 - np.asarray(soft[: y1 - y0, : x1 - x0], dtype=np.float32) * strength
    roi = img[y0:y1, x0:x1]
    cv2.multiply(roi, cv2.merge([keep, keep, keep]), roi, 1.0 / 255.0, cv2.CV_8U)


def _overlaps(a: tuple[float, float, float, float], occ: _Occluder) -> bool:
    h, w = occ.mask.shape
    return a[0] < occ.x0 + w and a[2] > occ.x0 and a[1] < occ.y0 + h and a[3] > occ.y0


def _behind(scene: _Scene, person: _Person, occ: _Occluder) -> bool:
    """True when the gondola is between the camera and the shopper. Both stand on the floor with
    separate floor plans, so a vertical plane separates them; whoever is on the camera's side of it is
    in front, for every ray that meets both."""
    q = _closest_on_polygon(person.pos, occ.footprint)
    n = person.pos - q
    if float(np.hypot(*n)) < 1e-6:
        return True
    return float(np.dot(scene.cam_xy - q, n)) < 0.0


def _unhidden_share(scene: _Scene, person: _Person) -> float:
    """Of this shopper's body pixels in the image, the share not behind the gondolas that hide them."""
    x0, y0 = max(int(person.bbox[0]), 0), max(int(person.bbox[1]), 0)
    x1, y1 = min(int(person.bbox[2]) + 1, scene.width), min(int(person.bbox[3]) + 1, scene.height)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    sil = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    offset = np.array([x0, y0], dtype=np.int32) * int(_SCALE)
    cv2.fillPoly(sil, [s.poly - offset for s in person.shapes], 1, cv2.LINE_8, _SHIFT)
    total = int(np.count_nonzero(sil))
    if total == 0:
        return 0.0
    for k in person.behind:
        occ = scene.occluders[k]
        mh, mw = occ.mask.shape
        ox0, oy0 = max(x0, occ.x0), max(y0, occ.y0)
        ox1, oy1 = min(x1, occ.x0 + mw), min(y1, occ.y0 + mh)
        if ox1 > ox0 and oy1 > oy0:
            sil[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] &= (
                1 - occ.mask[oy0 - occ.y0 : oy1 - occ.y0, ox0 - occ.x0 : ox1 - occ.x0]
            )
    return int(np.count_nonzero(sil)) / total


# --------------------------------------------------------------------------------------------------
# per-plan cache: scenes, looks, poses


class _PlanState:
    def __init__(self, plan: Plan) -> None:
        self.plan_ref = weakref.ref(plan)
        self.seed = plan.scenario.seed
        self.look = _store_look(plan)
        self.scenes: dict[Camera, _Scene] = {}
        self.noise: dict[tuple[int, int], Image] = {}
        self.people: dict[str, _Look] = {}
        self.pose_t: float | None = None
        self.poses: dict[int, _Pose] = {}

    def scene(self, plan: Plan, camera: Camera) -> _Scene:
        if camera not in self.scenes:
            w, h = camera.resolution
            if (w, h) not in self.noise:  # one noise field per image size, shared by the cameras
                rng = rng_for(self.seed, "frames", "noise", w, h)
                noise = rng.standard_normal((h + _NOISE_PAD, w + _NOISE_PAD, 3), dtype=np.float32)
                self.noise[(w, h)] = np.clip(128.0 + _NOISE_STD * noise, 0, 255).astype(np.uint8)
            self.scenes[camera] = _SceneBuilder(plan, self.look, camera, self.noise[(w, h)]).build()
        return self.scenes[camera]

    def look_of(self, shopper_id: str) -> _Look:
        if shopper_id not in self.people:
            self.people[shopper_id] = _look_for(self.seed, shopper_id)
        return self.people[shopper_id]

    def pose(self, i: int, p: PlannedShopper, t: float) -> _Pose:
        """Poses at one time are shared by every camera (frames come in time order)."""
        if self.pose_t != t:
            self.pose_t, self.poses = t, {}
        if i not in self.poses:
            self.poses[i] = _pose(p, self.look_of(p.shopper.id), t)
        return self.poses[i]


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
    """One BGR image of `camera` at time `t_s`, and the truth boxes of the shoppers in it. `rng` drives
    this frame's lighting jitter and noise."""
    state = _state(plan)
    scene = state.scene(plan, camera)
    img = scene.background.copy()
    people: list[_Person] = []
    for i, p in enumerate(plan.shoppers):
        if not (p.enter_s <= t_s <= p.exit_s):
            continue
        person = _person(scene, p, state.look_of(p.shopper.id), state.pose(i, p, t_s), t_s, i)
        if person is None:
            continue
        person.behind = [
            k for k, occ in enumerate(scene.occluders) if _overlaps(person.bbox, occ) and _behind(scene, person, occ)
        ]
        people.append(person)

    # shoppers a gondola hides first, then that gondola again over them, then everybody else
    hidden = [q for q in people if q.behind]
    shown = [q for q in people if not q.behind]
    for group in (hidden, shown):
        for q in group:
            _draw_shadow(img, q.shadow)
        for s in sorted((s for q in group for s in q.shapes), key=lambda s: (s.z, -s.dist, s.seq)):
            _fill(img, s.poly, s.colour)
        if group is hidden:
            for k in sorted({k for q in hidden for k in q.behind}):
                occ = scene.occluders[k]
                mh, mw = occ.mask.shape
                win = (slice(occ.y0, occ.y0 + mh), slice(occ.x0, occ.x0 + mw))
                cv2.copyTo(scene.background[win], occ.mask, img[win])

    # the camera: slight blur, this frame's exposure and contrast, sensor noise
    sigma = float(np.clip(scene.blur_sigma + rng.normal(0, 0.08), 0.3, 1.3))
    img = np.asarray(cv2.GaussianBlur(img, (3, 3), sigma), dtype=np.uint8)
    contrast = scene.contrast * (1.0 + float(rng.normal(0, 0.025)))
    brightness = scene.brightness + float(rng.normal(0, 3.5))
    ox, oy = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
    noise = scene.noise[oy : oy + scene.height, ox : ox + scene.width]
    gain = scene.noise_gain
    out = np.asarray(
        cv2.addWeighted(img, contrast, noise, gain, brightness + (1.0 - contrast - gain) * 128.0), dtype=np.uint8
    )

    boxes = [
        RenderedBox(q.shopper_id, q.box, q.visible_fraction)
        for q in people
        if q.visible_fraction >= MIN_VISIBLE_FRACTION
        and (not q.behind or _unhidden_share(scene, q) >= MIN_VISIBLE_FRACTION)
    ]
    boxes.sort(key=lambda b: b.shopper_id)
    return out, boxes


def encode_jpeg(img: Image, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def frame_times(duration_s: float, fps: float) -> list[float]:
    """Frame times from 0 (included) to `duration_s` (excluded), like the tracker's ticks."""
    n = max(0, math.ceil(duration_s * fps - 1e-9))
    return [k / fps for k in range(n)]


def render_frames(
    plan: Plan, duration_s: float, fps: float | None = None, progress: bool = False
) -> Iterator[RenderedFrame]:
    """Every camera's frames from 0 to `duration_s` at `fps` (default: each camera's own), in time order
    across cameras."""
    jobs = [
        (t, cam.id, k, cam)
        for cam in plan.store.cameras
        for k, t in enumerate(frame_times(duration_s, fps if fps is not None else cam.fps))
    ]
    jobs.sort(key=lambda j: (j[0], j[1], j[2]))
    seed = plan.scenario.seed
    for t, cam_id, k, cam in tqdm(jobs, desc="frames", unit="frame", disable=not progress, leave=False):
        img, boxes = render_frame(plan, cam, t, rng_for(seed, "frame", cam_id, k))
        yield RenderedFrame(cam_id, t, encode_jpeg(img), boxes)
