"""Where shoppers can walk, and how they get from one place to another.

An occupancy grid of the floor (gondolas inflated by a body radius) with A* on 8 neighbours, then the
path is shortened by line-of-sight so people walk straight lines rather than grid staircases.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from store_edge.layout.model import StoreLayout, point_in_polygon

FloatArray = NDArray[np.float64]

CELL_M = 0.2
BODY_RADIUS_M = 0.3
STAND_OFF_M = 0.45
"""How far from the shelf front a shopper stands to reach a plate."""


class UnreachableError(ValueError):
    pass


class FloorGrid:
    def __init__(self, store: StoreLayout, cell_m: float = CELL_M, radius_m: float = BODY_RADIUS_M) -> None:
        self.cell = cell_m
        outline = np.array(store.floor.outline, dtype=float)
        self.origin = outline.min(axis=0)
        size = outline.max(axis=0) - self.origin
        self.nx = math.ceil(size[0] / cell_m) + 1
        self.ny = math.ceil(size[1] / cell_m) + 1
        xs = self.origin[0] + (np.arange(self.nx) + 0.5) * cell_m
        ys = self.origin[1] + (np.arange(self.ny) + 0.5) * cell_m
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        centers = np.stack([gx.ravel(), gy.ravel()], axis=1)
        free = np.array([point_in_polygon(c, outline) for c in centers]).reshape(self.nx, self.ny)
        for g in store.gondolas:
            free &= ~_near_polygon(gx, gy, g.footprint(), radius_m)
        # keep a body radius from the walls too
        free &= ~_near_polyline(gx, gy, np.vstack([outline, outline[:1]]), radius_m * 0.9)
        self.free = free
        self._cache: dict[tuple[tuple[int, int], tuple[int, int]], list[tuple[float, float]]] = {}

    def cell_of(self, p: FloatArray | tuple[float, float]) -> tuple[int, int]:
        i = int((p[0] - self.origin[0]) / self.cell)
        j = int((p[1] - self.origin[1]) / self.cell)
        return (min(max(i, 0), self.nx - 1), min(max(j, 0), self.ny - 1))

    def center_of(self, c: tuple[int, int]) -> tuple[float, float]:
        return (
            float(self.origin[0] + (c[0] + 0.5) * self.cell),
            float(self.origin[1] + (c[1] + 0.5) * self.cell),
        )

    def nearest_free(self, p: FloatArray | tuple[float, float]) -> tuple[int, int]:
        c = self.cell_of(p)
        if self.free[c]:
            return c
        idx = np.argwhere(self.free)
        if len(idx) == 0:
            raise UnreachableError("the floor has no free cell")
        d = (idx[:, 0] - c[0]) ** 2 + (idx[:, 1] - c[1]) ** 2
        k = idx[int(np.argmin(d))]
        return (int(k[0]), int(k[1]))

    def _line_free(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        n = max(abs(b[0] - a[0]), abs(b[1] - a[1])) * 2 + 1
        for s in np.linspace(0.0, 1.0, n):
            i = round(a[0] + (b[0] - a[0]) * s)
            j = round(a[1] + (b[1] - a[1]) * s)
            if not self.free[i, j]:
                return False
        return True

    def path(self, start: tuple[float, float], goal: tuple[float, float]) -> list[tuple[float, float]]:
        """Waypoints from start to goal (both included), walking only on free floor."""
        a, b = self.nearest_free(start), self.nearest_free(goal)
        key = (a, b)
        if key not in self._cache:
            cells = self._astar(a, b)
            # line-of-sight shortcutting
            pruned = [cells[0]]
            k = 0
            while k < len(cells) - 1:
                far = len(cells) - 1
                while far > k + 1 and not self._line_free(cells[k], cells[far]):
                    far -= 1
                pruned.append(cells[far])
                k = far
            self._cache[key] = [self.center_of(c) for c in pruned[1:-1]]
        return [start, *self._cache[key], goal]

    def _astar(self, a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
        if a == b:
            return [a, b]

        def h(c: tuple[int, int]) -> float:
            dx, dy = abs(c[0] - b[0]), abs(c[1] - b[1])
            return float(max(dx, dy) + (math.sqrt(2) - 1) * min(dx, dy))

        steps = [(1, 0, 1.0), (-1, 0, 1.0), (0, 1, 1.0), (0, -1, 1.0)] + [
            (dx, dy, math.sqrt(2)) for dx in (-1, 1) for dy in (-1, 1)
        ]
        best = {a: 0.0}
        came: dict[tuple[int, int], tuple[int, int]] = {}
        heap = [(h(a), 0.0, a)]
        while heap:
            _, g, c = heapq.heappop(heap)
            if c == b:
                out = [c]
                while c in came:
                    c = came[c]
                    out.append(c)
                return out[::-1]
            if g > best.get(c, math.inf):
                continue
            for dx, dy, w in steps:
                n = (c[0] + dx, c[1] + dy)
                if not (0 <= n[0] < self.nx and 0 <= n[1] < self.ny) or not self.free[n]:
                    continue
                if dx and dy and not (self.free[c[0] + dx, c[1]] and self.free[c[0], c[1] + dy]):
                    continue  # no corner cutting
                ng = g + w
                if ng < best.get(n, math.inf):
                    best[n] = ng
                    came[n] = c
                    heapq.heappush(heap, (ng + h(n), ng, n))
        raise UnreachableError(f"no walkable path from {self.center_of(a)} to {self.center_of(b)}")


def path_length(points: list[tuple[float, float]]) -> float:
    return float(sum(math.dist(p, q) for p, q in itertools.pairwise(points)))


@dataclass
class Trajectory:
    """Piecewise-linear position over time; stands still between keyframes that share a position."""

    times: list[float] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)

    def add(self, t: float, p: tuple[float, float]) -> None:
        if self.times and t < self.times[-1] - 1e-9:
            raise ValueError(f"trajectory keyframe at {t} is before the previous one at {self.times[-1]}")
        self.times.append(t)
        self.points.append((float(p[0]), float(p[1])))

    def walk(self, depart: float, waypoints: list[tuple[float, float]], speed: float) -> float:
        """Stand at the first waypoint until `depart`, then walk; returns the arrival time."""
        self.add(depart, waypoints[0])
        t = depart
        for p, q in itertools.pairwise(waypoints):
            t += math.dist(p, q) / speed
            self.add(t, q)
        return t

    @property
    def last_point(self) -> tuple[float, float]:
        return self.points[-1]

    def at(self, t: float | FloatArray) -> FloatArray:
        ts = np.asarray(self.times)
        pts = np.asarray(self.points)
        x = np.interp(t, ts, pts[:, 0])
        y = np.interp(t, ts, pts[:, 1])
        return np.stack([x, y], axis=-1)


def _near_polygon(gx: FloatArray, gy: FloatArray, poly: FloatArray, radius: float) -> NDArray[np.bool_]:
    """Cells inside a convex polygon or within `radius` of its edges."""
    inside = np.ones_like(gx, dtype=bool)
    n = len(poly)
    area = 0.5 * sum(poly[i, 0] * poly[(i + 1) % n, 1] - poly[(i + 1) % n, 0] * poly[i, 1] for i in range(n))
    sign = 1.0 if area > 0 else -1.0
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        cross = (x2 - x1) * (gy - y1) - (y2 - y1) * (gx - x1)
        inside &= sign * cross >= 0
    return inside | _near_polyline(gx, gy, np.vstack([poly, poly[:1]]), radius)


def _near_polyline(gx: FloatArray, gy: FloatArray, line: FloatArray, radius: float) -> NDArray[np.bool_]:
    near = np.zeros_like(gx, dtype=bool)
    for (x1, y1), (x2, y2) in itertools.pairwise(line):
        dx, dy = x2 - x1, y2 - y1
        seg2 = dx * dx + dy * dy
        t = np.clip(((gx - x1) * dx + (gy - y1) * dy) / seg2, 0, 1) if seg2 > 0 else np.zeros_like(gx)
        d2 = (gx - (x1 + t * dx)) ** 2 + (gy - (y1 + t * dy)) ** 2
        near |= d2 <= radius * radius
    return near
