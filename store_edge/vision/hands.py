"""Where a shopper's hand is while it reaches into a shelf, from the camera frames.

Seen from the ceiling, an arm reaching into a shelf is a strip of foreground (pixels unlike the empty
store) from the shopper's shoulder to the shelf front, ending where the hand is: past it the shelf
shows as it always does. A hand that takes or puts an item is at a shelf's front and at that shelf's
height, so the candidates are few: points along each gondola front near the shopper, at each of its
shelves' heights. Each candidate is scored in every camera that sees the shopper from the aisle side
(from behind the gondola the hand is hidden) by projecting a model arm through the camera's
calibration: the arm's samples must be foreground and the points just past the hand, further into
the shelf, must not be. The best candidate averaged over the cameras is the hand, if the arm is really
there (a shopper who only stands at the shelf has no foreground out there).

The work splits at the camera. Each camera scores, from its own frame's foreground, the candidates
around the shopper where it places them, a little beyond reach (`HandFinder.camera_evidence`; the arm
starts at the shoulders of the shopper standing there), and names only those scoring above 0. The
store stage takes the candidates around the shopper's store-level position and averages each one's
scores over the cameras that can judge it (`HandFinder.combine`); which cameras can (a front they are
not behind, in their image, not over the shopper's body there) follows from the geometry alone, so
the store stage works it out itself, and a candidate a camera could judge but did not name scored 0
there. Candidates lie on a fixed grid along each front, named by their coordinates to the millimetre,
so all cameras name a point alike. This is what lets the per-camera stage run on other machines than
the store stage.

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
HandCandidate = tuple[float, float, float, float]
"""x, y, z of a candidate hand point (store metres, rounded to the millimetre: the name a candidate goes
by across cameras) and one camera's score for it (0-1, 3 decimals)."""
_Key = tuple[int, int, int]
"""A candidate's place on the grid: (front, shelf, step along the front), in the order they are tried."""


def _name(x: float, y: float, z: float) -> tuple[float, float, float]:
    """How a candidate point is named on the wire: its coordinates to the millimetre."""
    return (round(float(x), 3), round(float(y), 3), round(float(z), 3))


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
    evidence_slack_m: float = 0.6
    """A camera scores the candidates this much beyond the reach of the shopper where it places them:
    the store stage searches around the shopper's store-level position, which may lie up to this far
    from one camera's (cameras linked to one shopper agree within 0.6 m, `StoreTrackerParams.same_person_m`)."""
    tie_spread_m: float = 0.1
    """Candidates sharing the best score further apart than this (most often on shelves one above the
    other, which one camera alone cannot tell apart) leave the hand unknown: no hand is better evidence
    than a hand on the wrong shelf, which counts against the shopper who really reached."""
    max_evidence: int = 4000
    """At most this many candidates of one camera for one shopper (the best scores; the wire's bound on
    `CameraTrack.hand_candidates`). Real frames name tens; only a frame that is foreground everywhere
    (the light changed) comes near it."""


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
        views = [(cid, x, y, self.camera_evidence(cid, x, y, fg)) for cid, fg in foreground.items()]
        return self.combine(x, y, views)

    def camera_evidence(self, camera_id: str, x: float, y: float, foreground: Mask) -> list[HandCandidate]:
        """One camera's evidence for the hand of the shopper it places at (x, y): the candidates around
        them (within reach, widened by `evidence_slack_m`) at fronts it is not behind that its foreground
        (in the calibration's pixels) scores above 0, in grid order. Every other candidate of that area
        that is in its image scored 0."""
        model = self.models[camera_id]
        body = np.array([x, y])
        out: list[HandCandidate] = []
        for front, points, _keys in self._candidates(body, self.params.evidence_slack_m):
            if not self._sees(model, front):
                continue
            scores = self._scores(model, foreground, body, front, points)
            for (hx, hy, hz), score in zip(points, scores, strict=True):
                if score > 0:
                    out.append((*_name(hx, hy, hz), round(float(score), 3)))
        if len(out) > self.params.max_evidence:
            best = sorted(range(len(out)), key=lambda i: -out[i][3])[: self.params.max_evidence]
            out = [out[i] for i in sorted(best)]
        return out

    def combine(
        self, x: float, y: float, views: Sequence[tuple[str, float, float, Sequence[HandCandidate]]]
    ) -> HandPoint | None:
        """The hand of the shopper at (x, y) from the evidence of the cameras that see them: per camera
        (camera id, where that camera places the shopper, its `camera_evidence`). A candidate counts in
        the cameras that can judge it: at a front the camera is not behind, in its image, not over the
        shopper's own body there, and in the area the camera's evidence covers. Its score is its mean
        over those; the best one scoring `min_score` or more is the hand, among equals the one judged by
        the most cameras (the first in grid order on a tie among points within `tie_spread_m`); None when
        there is none, or the best are tied apart."""
        p = self.params
        body = np.array([x, y])
        candidates = self._candidates(body, 0.0)
        total: dict[_Key, float] = {}
        count: dict[_Key, int] = {}
        where: dict[_Key, HandPoint] = {}
        for camera_id, cx, cy, evidence in views:
            if not candidates:
                break
            model = self.models[camera_id]
            covered = {k for _, _, keys in self._candidates(np.array([cx, cy]), p.evidence_slack_m) for k in keys}
            scores = {(hx, hy, hz): score for hx, hy, hz, score in evidence}
            for front, points, keys in candidates:
                if not self._sees(model, front):
                    continue
                for (hx, hy, hz), key, ok in zip(points, keys, self._usable(model, body, points), strict=True):
                    if ok and key in covered:
                        count[key] = count.get(key, 0) + 1
                        total[key] = total.get(key, 0.0) + scores.get(_name(hx, hy, hz), 0.0)
                        where[key] = (float(hx), float(hy), float(hz))
        mean = {key: total[key] / count[key] for key in sorted(count)}
        top = max(mean.values(), default=0.0)
        if top < p.min_score:
            return None
        # a point more cameras judge as well is the better evidence; points one camera alone cannot
        # tell apart (along its ray, most often on shelves one above the other) are no hand
        best = [key for key, score in mean.items() if score >= top - 1e-9]
        most = max(count[key] for key in best)
        tied = [where[key] for key in best if count[key] == most]
        if any(math.dist(tied[0], other) > p.tie_spread_m for other in tied[1:]):
            return None
        return tied[0]

    def _candidates(self, body: FloatArray, slack_m: float) -> list[tuple[_Front, FloatArray, list[_Key]]]:
        """The candidate hand points of a shopper standing at `body`, per shelf front within reach
        (`reach_out_m` + `slack_m`): every `step_m` along the front, counted from its start (so that
        nearby bodies share points), within `along_m` + `slack_m` either side of the body, at each
        shelf's hand height; shelf by shelf."""
        p = self.params
        out = []
        for i, front in enumerate(self.fronts):
            rel = body - front.start
            out_m = float(rel @ front.normal)
            along = float(rel @ front.direction)
            reach, side = p.reach_out_m + slack_m, p.along_m + slack_m
            if not (-slack_m < out_m <= reach and -side < along < front.length + side):
                continue
            k0 = max(math.ceil((along - side) / p.step_m - 1e-9), 0)
            k1 = min(math.floor((along + side) / p.step_m + 1e-9), math.floor(front.length / p.step_m + 1e-9))
            if k1 < k0:
                continue
            steps = range(k0, k1 + 1)
            points = np.array(
                [[*(front.start + front.direction * (k * p.step_m)), z] for z in front.hand_z for k in steps],
                dtype=float,
            )
            keys = [(i, j, k) for j in range(len(front.hand_z)) for k in steps]
            out.append((front, points, keys))
        return out

    def _sees(self, model: CameraModel, front: _Front) -> bool:
        """Whether the camera is on the aisle side of the front, or not far behind it: farther behind,
        the gondola is between the camera and a hand in that shelf."""
        cam_xy = model.position[:2]
        return float((cam_xy - front.start) @ front.normal) >= -self.params.camera_behind_m

    def _usable(self, model: CameraModel, body: FloatArray, hands: FloatArray) -> NDArray[np.bool_]:
        """Per candidate hand point, whether this camera can judge it: the point is in its image and not
        over the body of the shopper standing at `body` (the body is foreground anyway: the camera cannot
        tell whether an arm reaches that point)."""
        w, h = model.camera.resolution
        uv, ok = model.world_to_pixel(hands)
        u = np.round(uv[:, 0]).astype(np.int64)
        v = np.round(uv[:, 1]).astype(np.int64)
        usable = ok & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        body_mask = self._body_silhouette(model, body, (h, w))
        usable[usable] = ~body_mask[v[usable], u[usable]]
        return np.asarray(usable, dtype=np.bool_)

    def _scores(self, model: CameraModel, fg: Mask, body: FloatArray, front: _Front, hands: FloatArray) -> FloatArray:
        """Per candidate hand point, how much this camera's foreground looks like an arm ending there
        (0..1)."""
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
        return np.asarray(np.where(hand_seen, arm_score * clear_score, 0.0), dtype=np.float64)

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
