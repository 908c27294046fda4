"""Where a shopper's hand is while it reaches into a shelf, from the camera frames.

Seen from the ceiling, an arm reaching into a shelf is a strip of foreground (pixels unlike the empty
store) from the shopper's shoulder to the shelf front, ending where the hand is: past it the shelf
shows as it always does. A hand that takes or puts an item is at a shelf's front and at that shelf's
height, so the candidates are few: points along each gondola front near the shopper, at each of its
shelves' heights. Each candidate is scored in every camera that sees the shopper from the aisle side
(from behind the gondola the hand is hidden) by projecting a model arm through the camera's
calibration: the arm's samples must be foreground and the points just past the hand, further into
the shelf, must not be. The best candidate summed over the cameras is the hand, if the arm is really
there (a shopper who only stands at the shelf has no foreground out there).

`Backgrounds` keeps each camera's empty-store image (a running average that people do not enter: the
detector's boxes are left out of the update). Pure numpy and OpenCV on images; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from store_edge.layout.camera import CameraModel
from store_edge.layout.model import StoreLayout

FloatArray = NDArray[np.float64]
Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
_ANGLES = np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)
Box = tuple[float, float, float, float]
HandPoint = tuple[float, float, float]


@dataclass(frozen=True)
class HandParams:
    reach_out_m: float = 0.9
    """A body centre farther than this from a shelf front cannot reach into it."""
    along_m: float = 0.8
    """How far along the shelf front, either side of the body, a hand may go."""
    step_m: float = 0.025
    """Spacing of candidate hand points along a shelf front."""
    hand_above_shelf_m: float = 0.05
    """A hand in a shelf is this far above the plate surface (holding an item)."""
    body_radius_m: float = 0.2
    body_height_m: float = 1.75
    """The body a hand must stand out of, in the image, to be seen as a hand."""
    shoulder_z_m: float = 1.3
    shoulder_half_width_m: float = 0.18
    arm_samples: tuple[float, ...] = (0.45, 0.6, 0.75, 0.9, 1.0)
    """Where along the shoulder-to-hand line the arm is checked (the part near the body is body)."""
    beyond_m: float = 0.08
    """A point this far past the hand, into the shelf, shows the shelf, not the arm."""
    side_m: float = 0.12
    """Points this far either side of the hand along the shelf front show the shelf too."""
    camera_behind_m: float = 0.5
    """Cameras at most this far behind a shelf front's plane (over the gondola's front edge) are used
    for hands in that shelf; farther behind, the gondola hides the hand. (The simulator's renderer
    draws a reaching arm over the gondola for any camera on the shopper's side of it, which real
    shelves would partly hide from cameras behind the front: this allowance may be optimistic.)"""
    diff_threshold: float = 40.0
    """Summed absolute difference over the three colour channels that makes a pixel foreground."""
    min_score: float = 0.8
    """Best candidate's mean score over cameras (1 = every sample as an arm would be) to be a hand."""
    background_rate: float = 0.05
    """Weight of a new frame in the background average, where no person is."""


@dataclass(frozen=True)
class _Front:
    """One gondola's shelf front: a vertical plane shoppers reach through."""

    start: FloatArray
    direction: FloatArray
    normal: FloatArray
    """Towards the aisle."""
    length: float
    hand_z: tuple[float, ...]


class Backgrounds:
    """Each camera's image of the store without people, and the foreground of its latest frame."""

    def __init__(self, params: HandParams | None = None) -> None:
        self.params = params or HandParams()
        self.background: dict[str, NDArray[np.float32]] = {}
        self.foreground: dict[str, Mask] = {}

    def update(self, camera_id: str, image: Image, boxes: Sequence[Box]) -> Mask:
        """This frame's foreground (also kept as `foreground[camera_id]`), then the background learns
        from the frame outside the people's boxes."""
        bg = self.background.get(camera_id)
        if bg is None or bg.shape != image.shape:
            bg = self.background[camera_id] = image.astype(np.float32)
        # a frame's exposure differs a little from the average: take the typical offset out
        offset = np.median((image[::8, ::8].astype(np.float32) - bg[::8, ::8]).reshape(-1, 3), axis=0)
        b, g, r = (float(v) for v in offset)
        expected = cv2.convertScaleAbs(cv2.add(bg, np.full(bg.shape, (b, g, r), dtype=np.float32)))
        diff = cv2.transform(cv2.absdiff(image, expected), np.ones((1, 3), dtype=np.float32))
        fg8 = (diff > self.params.diff_threshold).astype(np.uint8)
        fg = cv2.morphologyEx(fg8, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        self.foreground[camera_id] = fg
        free = np.ones(fg.shape, dtype=np.uint8)
        h, w = fg.shape
        for x1, y1, x2, y2 in boxes:
            pad = 0.25 * max(x2 - x1, y2 - y1)  # arms and baskets stick out of a person's box
            free[
                max(int(y1 - pad), 0) : min(int(y2 + pad) + 1, h), max(int(x1 - pad), 0) : min(int(x2 + pad) + 1, w)
            ] = 0
        cv2.accumulateWeighted(image, bg, self.params.background_rate, mask=free)
        return fg


class HandFinder:
    """Hand points of shoppers at shelves, from the foreground of the cameras that see them."""

    def __init__(self, store: StoreLayout, models: dict[str, CameraModel], params: HandParams | None = None) -> None:
        self.params = params or HandParams()
        self.models = models
        p = self.params
        self.fronts = [
            _Front(
                start=np.array(g.front[0], dtype=float),
                direction=g.direction,
                normal=g.aisle_normal,
                length=g.length_m,
                hand_z=tuple(s.z_m + p.hand_above_shelf_m for s in g.shelves),
            )
            for g in store.gondolas
        ]

    def find(self, x: float, y: float, foreground: dict[str, Mask]) -> HandPoint | None:
        """The hand of the shopper standing at (x, y), seen by the cameras in `foreground` (camera id ->
        its latest foreground); None when no arm reaches into a shelf."""
        p = self.params
        body = np.array([x, y])
        best: tuple[float, HandPoint] | None = None
        for front in self.fronts:
            rel = body - front.start
            out = float(rel @ front.normal)
            along = float(rel @ front.direction)
            if not (0.0 < out <= p.reach_out_m and -p.along_m < along < front.length + p.along_m):
                continue
            s = np.arange(max(along - p.along_m, 0.0), min(along + p.along_m, front.length) + 1e-9, p.step_m)
            if len(s) == 0:
                continue
            hands = np.array(
                [[*(front.start + front.direction * si), z] for z in front.hand_z for si in s], dtype=float
            )
            total = np.zeros(len(hands))
            views = np.zeros(len(hands))
            for camera_id, fg in foreground.items():
                model = self.models[camera_id]
                cam_xy = model.position[:2]
                if float((cam_xy - front.start) @ front.normal) < -p.camera_behind_m:
                    continue  # the gondola is between this camera and the hand
                scores, seen = self._scores(model, fg, body, front, hands)
                total += np.where(seen, scores, 0.0)
                views += seen
            if not bool(views.any()):
                continue
            # a candidate is judged by the cameras that have it in their image
            total = total / np.maximum(views, 1.0)
            k = int(np.argmax(total))
            score = float(total[k])
            if score >= p.min_score and (best is None or score > best[0]):
                hx, hy, hz = (float(v) for v in hands[k])
                best = (score, (hx, hy, hz))
        return best[1] if best is not None else None

    def _scores(
        self, model: CameraModel, fg: Mask, body: FloatArray, front: _Front, hands: FloatArray
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Per candidate hand point, how much this camera's foreground looks like an arm ending there
        (0..1), and whether the camera has that point in its image at all."""
        p = self.params
        n = len(hands)
        # the arm starts at the left or the right shoulder: both are tried, the better counts
        to_hand = hands[:, :2] - body
        to_hand /= np.maximum(np.linalg.norm(to_hand, axis=1, keepdims=True), 1e-6)
        lateral = np.stack([-to_hand[:, 1], to_hand[:, 0]], axis=1) * p.shoulder_half_width_m
        arms = []
        for side in (-1.0, 1.0):
            shoulder = np.empty_like(hands)
            shoulder[:, :2] = body + side * lateral
            shoulder[:, 2] = p.shoulder_z_m
            arms += [shoulder + f * (hands - shoulder) for f in p.arm_samples]
        into = np.array([*(-front.normal * p.beyond_m), 0.0])
        aside = np.array([*(front.direction * p.side_m), 0.0])
        clear = [hands + into, hands + aside, hands - aside]
        pts = np.concatenate([*arms, *clear])
        uv, ok = model.world_to_pixel(pts)
        h, w = fg.shape
        u = np.round(uv[:, 0]).astype(np.int64)
        v = np.round(uv[:, 1]).astype(np.int64)
        inside = ok & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        seen = inside.reshape(-1, n)
        hit = np.zeros(len(pts), dtype=bool)
        hit[inside] = fg[v[inside], u[inside]]
        hits = hit.reshape(-1, n)
        k = len(p.arm_samples)
        hand_row = k - 1  # the last arm sample (f = 1) is the hand itself
        # a sample outside the image counts as half: it says nothing either way
        arm_score = np.maximum(
            np.where(seen[:k], hits[:k], 0.5).mean(axis=0), np.where(seen[k : 2 * k], hits[k : 2 * k], 0.5).mean(axis=0)
        )
        clear_score = np.where(seen[2 * k :], ~hits[2 * k :], 0.5).mean(axis=0)
        # the hand itself must be foreground: without it, nothing reaches here
        hand_seen = hits[hand_row]
        score = np.asarray(np.where(hand_seen, arm_score * clear_score, 0.0), dtype=np.float64)
        # where the candidate hand lies over the shopper's own body in this image, the body is
        # foreground there anyway: this camera cannot tell whether an arm reaches that point
        body_mask = self._body_silhouette(model, body, fg.shape)
        hand_u, hand_v = u[hand_row * n : hand_row * n + n], v[hand_row * n : hand_row * n + n]
        usable = seen[hand_row].copy()
        usable[usable] = ~body_mask[hand_v[usable], hand_u[usable]]
        return score, usable

    def _body_silhouette(self, model: CameraModel, body: FloatArray, shape: tuple[int, ...]) -> Mask:
        """Where an upright body (radius `body_radius_m`, floor to `body_height_m`) standing at `body`
        covers the image."""
        p = self.params
        ring = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1) * p.body_radius_m + body
        pts = np.vstack(
            [np.hstack([ring, np.zeros((len(ring), 1))]), np.hstack([ring, np.full((len(ring), 1), p.body_height_m)])]
        )
        uv, ok = model.world_to_pixel(pts)
        mask = np.zeros(shape[:2], dtype=np.uint8)
        if bool(ok.all()):
            hull = cv2.convexHull(np.round(np.clip(uv, -1e4, 1e4)).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 1)
        return mask > 0
