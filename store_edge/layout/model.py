"""The store layout file format: floor, gondolas, shelves, load-cell plates, products, planogram,
light curtains, cameras and gates. Metres and store coordinates throughout (x east, y north, z up,
origin at a corner of the floor).

Geometry that can be derived is derived, so a file cannot contradict itself: a plate is given by its
shelf, its offset along the shelf front and its width; its 3D centre in store coordinates comes from
the gondola's placement (`StoreLayout.plate_geometry`).
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Point2 = tuple[float, float]


class _Strict(BaseModel):
    # Unknown keys are typos far more often than intent: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitWeight(_Strict):
    mean: float = Field(gt=0, le=25_000, description="mean unit weight in grams")
    std: float = Field(ge=0, le=2_000, description="standard deviation between units in grams")


class Product(_Strict):
    sku: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
    name: Annotated[str, Field(min_length=1, max_length=120)]
    price: Decimal = Field(gt=0, max_digits=10, decimal_places=2, description="unit price, store currency")
    unit_weight_g: UnitWeight


class Plate(_Strict):
    id: Id
    x_m: float = Field(ge=0, description="where the plate begins, metres along the front line from its start")
    width_m: float = Field(gt=0, le=2)
    rating_kg: float = Field(default=20.0, gt=0, le=200, description="load-cell rating")


class ScaleDevice(_Strict):
    """The load-cell controller of one shelf: one message per batch of samples, all plates."""

    device_id: Id
    rate_hz: float = Field(default=60.0, gt=0, le=1000)
    samples_per_message: int = Field(default=12, ge=1, le=1000)


class LightCurtain(_Strict):
    """An infrared curtain across the shelf front; reports where along the shelf a hand breaks it."""

    device_id: Id
    resolution_m: float = Field(default=0.01, gt=0, le=0.5)


class Shelf(_Strict):
    id: Id
    z_m: float = Field(ge=0, le=4, description="height of the plate surface above the floor")
    depth_m: float = Field(gt=0, le=2)
    scale: ScaleDevice
    curtain: LightCurtain | None = None
    plates: list[Plate] = Field(min_length=1)


class Gondola(_Strict):
    """A run of shelves. `front` is the shelf-front line on the floor, from start to end; shoppers stand
    on its left-hand side (looking from start to end) and the shelves extend `depth_m` to the right."""

    id: Id
    front: tuple[Point2, Point2]
    depth_m: float = Field(gt=0, le=3)
    shelves: list[Shelf] = Field(min_length=1)

    @property
    def length_m(self) -> float:
        (x1, y1), (x2, y2) = self.front
        return math.hypot(x2 - x1, y2 - y1)

    @property
    def direction(self) -> NDArray[np.float64]:
        """Unit vector along the front, start to end."""
        (x1, y1), (x2, y2) = self.front
        d = np.array([x2 - x1, y2 - y1])
        return np.asarray(d / np.linalg.norm(d), dtype=np.float64)

    @property
    def aisle_normal(self) -> NDArray[np.float64]:
        """Unit vector from the shelf front towards the aisle where shoppers stand."""
        dx, dy = self.direction
        return np.array([-dy, dx])

    def footprint(self) -> NDArray[np.float64]:
        """The gondola's floor rectangle, 4x2, counter-clockwise from the front start."""
        start = np.array(self.front[0], dtype=float)
        end = np.array(self.front[1], dtype=float)
        back = -self.aisle_normal * self.depth_m
        return np.array([start, start + back, end + back, end])


class FacingPlacement(_Strict):
    """Where one product sits: plate id -> units that plate holds at full stock."""

    sku: str
    plates: dict[str, Annotated[int, Field(ge=1, le=500)]] = Field(min_length=1)


class Intrinsics(_Strict):
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    distortion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    """OpenCV order: k1, k2, p1, p2, k3."""


class Extrinsics(_Strict):
    """World-to-camera transform in OpenCV's convention (what solvePnP and calibrateCamera return):
    x_cam = R(rvec) @ x_world + tvec. Camera axes: x right, y down, z forward."""

    rvec: tuple[float, float, float]
    tvec: tuple[float, float, float]


class Camera(_Strict):
    id: Id
    resolution: tuple[Annotated[int, Field(gt=0, le=16384)], Annotated[int, Field(gt=0, le=16384)]]
    fps: float = Field(gt=0, le=240)
    intrinsics: Intrinsics
    extrinsics: Extrinsics


class Gate(_Strict):
    """A turnstile. `line` is where people cross it on the floor. Entry gates have a code scanner."""

    id: Id
    kind: Literal["entry", "exit"]
    line: tuple[Point2, Point2]
    scanner_id: Id | None = None
    counter_id: Id

    @property
    def midpoint(self) -> Point2:
        (x1, y1), (x2, y2) = self.line
        return ((x1 + x2) / 2, (y1 + y2) / 2)


class Floor(_Strict):
    outline: list[Point2] = Field(min_length=3, description="polygon, metres")

    @field_validator("outline")
    @classmethod
    def _non_degenerate(cls, v: list[Point2]) -> list[Point2]:
        if abs(_polygon_area(np.array(v, dtype=float))) < 1.0:
            raise ValueError("floor outline encloses less than 1 square metre")
        return v


class PlateGeometry(BaseModel):
    """A plate placed in the store: everything needed to reason about where a hand is."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    plate_id: str
    shelf_id: str
    gondola_id: str
    index_on_shelf: int
    center: tuple[float, float, float]
    width_m: float
    depth_m: float
    front_left: tuple[float, float]
    front_right: tuple[float, float]
    x_range_m: tuple[float, float]
    """The plate's span along the shelf front (the coordinate the light curtain reports)."""


class StoreLayout(_Strict):
    """A whole store. Load with `store_edge.layout.load_store`, which also checks cross-references."""

    schema_version: Literal[1] = 1
    store_id: Id
    name: str
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    floor: Floor
    products: list[Product] = Field(min_length=1)
    gondolas: list[Gondola] = Field(min_length=1)
    planogram: list[FacingPlacement] = Field(min_length=1)
    cameras: list[Camera] = Field(default_factory=list)
    gates: list[Gate] = Field(min_length=2)

    # --- lookups (derived once; the model is frozen) -------------------------------------------
    @cached_property
    def products_by_sku(self) -> dict[str, Product]:
        return {p.sku: p for p in self.products}

    @cached_property
    def gondolas_by_id(self) -> dict[str, Gondola]:
        return {g.id: g for g in self.gondolas}

    @cached_property
    def shelves_by_id(self) -> dict[str, Shelf]:
        return {s.id: s for g in self.gondolas for s in g.shelves}

    @cached_property
    def gondola_of_shelf(self) -> dict[str, Gondola]:
        return {s.id: g for g in self.gondolas for s in g.shelves}

    @cached_property
    def plate_geometry(self) -> dict[str, PlateGeometry]:
        out: dict[str, PlateGeometry] = {}
        for g in self.gondolas:
            d, n = g.direction, g.aisle_normal
            start = np.array(g.front[0], dtype=float)
            for s in g.shelves:
                for i, p in enumerate(s.plates):
                    left = start + d * p.x_m
                    right = start + d * (p.x_m + p.width_m)
                    mid = (left + right) / 2 - n * (s.depth_m / 2)
                    out[p.id] = PlateGeometry(
                        plate_id=p.id,
                        shelf_id=s.id,
                        gondola_id=g.id,
                        index_on_shelf=i,
                        center=(float(mid[0]), float(mid[1]), s.z_m),
                        width_m=p.width_m,
                        depth_m=s.depth_m,
                        front_left=(float(left[0]), float(left[1])),
                        front_right=(float(right[0]), float(right[1])),
                        x_range_m=(p.x_m, p.x_m + p.width_m),
                    )
        return out

    @cached_property
    def facings_on_plate(self) -> dict[str, list[FacingPlacement]]:
        out: dict[str, list[FacingPlacement]] = {pid: [] for pid in self.plate_geometry}
        for f in self.planogram:
            for pid in f.plates:
                out.setdefault(pid, []).append(f)
        return out

    def where_on_plate_m(self, plate_id: str, sku: str | None) -> float:
        """Where along its shelf a product's units lie on a plate: the plate's middle, or, on a plate two
        or more products share (facings meet there), the middle of this product's part of it. The plate is
        shared out evenly, each product on the side of the rest of its facing."""
        lo, hi = self.plate_geometry[plate_id].x_range_m
        facings = self.facings_on_plate.get(plate_id, [])
        if sku is None or len(facings) < 2 or all(f.sku != sku for f in facings):
            return (lo + hi) / 2
        order = sorted(facings, key=lambda f: (self._facing_middle_m(f), f.sku))
        k = next(i for i, f in enumerate(order) if f.sku == sku)
        width = (hi - lo) / len(order)
        return lo + width * (k + 0.5)

    def _facing_middle_m(self, facing: FacingPlacement) -> float:
        spans = [self.plate_geometry[pid].x_range_m for pid in facing.plates]
        return sum((a + b) / 2 for a, b in spans) / len(spans)

    @cached_property
    def facings_by_sku(self) -> dict[str, list[FacingPlacement]]:
        out: dict[str, list[FacingPlacement]] = {}
        for f in self.planogram:
            out.setdefault(f.sku, []).append(f)
        return out

    @property
    def plate_count(self) -> int:
        return len(self.plate_geometry)

    def shelf_position_to_store(self, shelf_id: str, x_m: float) -> tuple[float, float, float]:
        """A point `x_m` along a shelf's front (what a light curtain reports) in store coordinates."""
        g = self.gondola_of_shelf[shelf_id]
        p = np.array(g.front[0], dtype=float) + g.direction * x_m
        return (float(p[0]), float(p[1]), self.shelves_by_id[shelf_id].z_m)

    def gates_of_kind(self, kind: Literal["entry", "exit"]) -> list[Gate]:
        return [g for g in self.gates if g.kind == kind]


def distance_to_segment(p: Point2, a: Point2, b: Point2) -> float:
    """Distance on the floor from a point to a segment (a gate's line, a shelf front)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    seg2 = dx * dx + dy * dy
    t = 0.0 if seg2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / seg2))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


def _polygon_area(poly: NDArray[np.float64]) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def point_in_polygon(pt: Point2 | NDArray[np.float64], poly: NDArray[np.float64]) -> bool:
    """Even-odd rule; points on the boundary count as inside (within 1 mm)."""
    x, y = float(pt[0]), float(pt[1])
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        # On the edge?
        seg = np.array([x2 - x1, y2 - y1])
        rel = np.array([x - x1, y - y1])
        seg_len2 = float(seg @ seg)
        if seg_len2 > 0:
            t = min(1.0, max(0.0, float(rel @ seg) / seg_len2))
            if math.hypot(*(rel - t * seg)) < 1e-3:
                return True
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xc:
                inside = not inside
    return inside
