"""Floor positions from rendered truth boxes: the body-model fit against where the simulator put people."""

from __future__ import annotations

import numpy as np
import pytest

from store_edge.layout import CameraModel, StoreLayout
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import random_scenario
from store_edge.sim.plan import build_plan, rng_for
from store_edge.vision.floor import FloorProjector


def _errors(store: StoreLayout) -> tuple[np.ndarray, np.ndarray]:
    """Fit error and bottom-centre error (m) of every truth box in a minute of a random scenario."""
    plan = build_plan(store, random_scenario(store, 8, 2, seed=11))
    fit, naive = [], []
    for t in np.arange(15.0, 75.0, 6.0):
        for cam in store.cameras:
            _, boxes = render_frame(plan, cam, float(t), rng_for(11, "test", cam.id, float(t)))
            model = CameraModel(cam)
            projector = FloorProjector(model)
            for b in boxes:
                shopper = next(p for p in plan.shoppers if p.shopper.id == b.shopper_id)
                truth = shopper.trajectory.at(float(t))
                xy = projector.floor_point(b.box)
                assert xy is not None
                fit.append(float(np.hypot(xy[0] - truth[0], xy[1] - truth[1])))
                bottom = model.pixel_to_floor(np.array([[(b.box[0] + b.box[2]) / 2, b.box[3]]]))[0]
                naive.append(float(np.hypot(*(bottom - truth))))
    return np.array(fit), np.array(naive)


@pytest.mark.parametrize("which", ["demo_store", "hard_store"])
def test_fitted_floor_point_is_where_the_person_stands(which: str, request: pytest.FixtureRequest) -> None:
    store: StoreLayout = request.getfixturevalue(which)
    fit, naive = _errors(store)
    assert len(fit) > 50
    # people cut by the image edge and half hidden behind gondolas included
    assert np.median(fit) < 0.12
    assert np.percentile(fit, 90) < 0.25
    # the bottom edge of a top-down box is not where the feet are
    assert np.median(naive) > 3 * np.median(fit)


def test_body_box_of_a_fitted_point_reproduces_the_box(demo_store: StoreLayout) -> None:
    cam = demo_store.cameras[0]
    projector = FloorProjector(CameraModel(cam))
    centre = CameraModel(cam).position
    for dx, dy in [(0.0, 0.0), (0.8, 0.3), (-1.0, 0.6)]:
        box = projector.body_box(float(centre[0] + dx), float(centre[1] + dy))
        assert box is not None
        xy = projector.floor_point(box)
        assert xy is not None
        assert abs(xy[0] - (centre[0] + dx)) < 0.01
        assert abs(xy[1] - (centre[1] + dy)) < 0.01


def test_a_box_no_standing_body_fits_gets_no_floor_point(demo_store: StoreLayout) -> None:
    """Two people side by side in one box (or a person bent over a shelf) is no standing body: placing it
    anyway puts somebody up to a metre from anyone, and the store tracker starts a duplicate there."""
    cam = demo_store.cameras[0]
    projector = FloorProjector(CameraModel(cam))
    centre = CameraModel(cam).position
    for dx in (0.0, 0.5):
        box = projector.body_box(float(centre[0] + dx), float(centre[1]))
        assert box is not None
        assert projector.floor_point(box) is not None
        width = box[2] - box[0]
        two_abreast = (box[0] - width / 2, box[1], box[2] + width / 2, box[3])
        assert projector.floor_point(two_abreast) is None
