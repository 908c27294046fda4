"""Where a detected person stands on the floor, from their image box and the camera's calibration.

A ceiling camera looks down, so a person's image box is not "feet at the bottom edge": the feet are on
the side of the box nearest the point straight below the camera and the head on the far side; straight
below the camera the box is the person's outline seen from above. So the bottom-centre of the box,
projected to the floor, is off by up to the person's height times the tangent of the view angle (about
1 m at the edge of a 3 m high wide-angle camera).

Instead, a standing person is modelled as an upright cylinder (radius `BodyModel.radius_m`, floor to
`BodyModel.height_m`); the floor point is the one whose projected cylinder box best matches the
detected box. Box edges at the image border are cut by the frame and say nothing about the body, so
only the others are fitted. Pure numpy and scipy: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from store_edge.layout.camera import CameraModel

FloatArray = NDArray[np.float64]
Box = tuple[float, float, float, float]

_RING_POINTS = 16
_ANGLES = np.linspace(0.0, 2.0 * math.pi, _RING_POINTS, endpoint=False)


@dataclass(frozen=True)
class BodyModel:
    height_m: float = 1.74
    """Floor to the top of the head of a typical adult (the renderer's median shopper)."""
    radius_m: float = 0.25
    """Half the shoulder width plus clothing, seen from any side."""
    max_misfit: float = 0.15
    """Largest gap between a detected box's uncut edges and the fitted body's, over the focal length (about
    radians). A box no standing body fits this well is not one person standing: two people in one box, a
    person bent over a shelf, a detection of something else. Its floor point would be off by more than the
    store tracker's gates, and a wrong point starts a duplicate track, so it gets none."""
    border_px: float = 10.0
    """A box edge this close to the image border is taken to be cut by it (a detector's box of a person
    cut by the frame stops a few pixels short of the border)."""


class FloorProjector:
    """Floor positions of detections of one camera."""

    def __init__(self, model: CameraModel, body: BodyModel | None = None) -> None:
        self.model = model
        self.body = body or BodyModel()
        self.width, self.height = model.camera.resolution
        ring = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1) * self.body.radius_m
        self._offsets = np.vstack(
            [
                np.hstack([ring, np.zeros((_RING_POINTS, 1))]),
                np.hstack([ring, np.full((_RING_POINTS, 1), self.body.height_m)]),
            ]
        )

    def body_box(self, x: float, y: float) -> Box | None:
        """Unclipped image box of the body model standing at (x, y); None when it is not all in front."""
        pts = self._offsets + np.array([x, y, 0.0])
        uv, ok = self.model.world_to_pixel(pts)
        if not bool(np.all(ok)):
            return None
        return (float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max()))

    def _first_guess(self, box: Box) -> FloatArray | None:
        # the box centre is roughly the image of the body's middle, half way up
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        hit = self.model.pixel_to_floor(np.array([[cx, cy]]), z=self.body.height_m / 2)[0]
        return None if bool(np.any(np.isnan(hit))) else np.asarray(hit, dtype=np.float64)

    def floor_point(self, box: Box) -> tuple[float, float] | None:
        """Store (x, y) of the person in `box` (x1, y1, x2, y2 pixels); None where it cannot be placed."""
        guess = self._first_guess(box)
        if guess is None:
            return None
        b = self.body.border_px
        free = np.array(
            [box[0] > b, box[1] > b, box[2] < self.width - b, box[3] < self.height - b],
            dtype=bool,
        )
        if not bool(free.any()):
            return (float(guess[0]), float(guess[1]))
        target = np.asarray(box, dtype=float)
        scale = self.model.k[0, 0]

        def residuals(p: FloatArray) -> FloatArray:
            fitted = self.body_box(float(p[0]), float(p[1]))
            if fitted is None:
                return np.full(int(free.sum()), 1e3)
            return np.asarray((np.asarray(fitted) - target)[free] / scale, dtype=np.float64)

        # with one free edge the fit has two unknowns and one equation: keep it near the first guess
        fit = least_squares(residuals, guess, method="lm" if free.sum() >= 2 else "trf", xtol=1e-6)
        x, y = (float(v) for v in fit.x)
        if not (math.isfinite(x) and math.isfinite(y)):
            return (float(guess[0]), float(guess[1]))
        if float(np.max(np.abs(fit.fun))) > self.body.max_misfit:
            return None
        return (x, y)
