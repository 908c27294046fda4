"""Hand points from rendered frames: a shopper's arm reaching into a shelf is found where the simulator
put the hand, and a shopper who is not reaching has none."""

from __future__ import annotations

import math

import pytest

from store_edge.layout import StoreLayout
from store_edge.layout.camera import CameraModel
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import random_scenario
from store_edge.sim.plan import Plan, PlannedShopper, build_plan, rng_for
from store_edge.vision.hands import Backgrounds, HandFinder, Mask
from tests.vision.conftest import UNSPACED


@pytest.fixture(scope="module")
def plan(demo_store: StoreLayout) -> Plan:
    return build_plan(demo_store, random_scenario(demo_store, 3, 2, seed=3, mix=UNSPACED))


@pytest.fixture(scope="module")
def backgrounds(plan: Plan, demo_store: StoreLayout) -> Backgrounds:
    """Each camera's empty store, learnt from frames before the first shopper comes in."""
    assert min(p.enter_s for p in plan.shoppers) > 1.0
    bgs = Backgrounds()
    for cam in demo_store.cameras:
        img, boxes = render_frame(plan, cam, 0.0, rng_for(1, "empty", cam.id))
        assert boxes == []
        bgs.update(cam.id, img, [])
    return bgs


def _views(plan: Plan, store: StoreLayout, bgs: Backgrounds, shopper: PlannedShopper, t: float) -> dict[str, Mask]:
    """The foreground of every camera whose frame at `t` shows `shopper` (as a detector would)."""
    views = {}
    for cam in store.cameras:
        img, boxes = render_frame(plan, cam, t, rng_for(1, "frame", cam.id, round(t * 1000)))
        fg = bgs.update(cam.id, img, [b.box for b in boxes])
        if any(b.shopper_id == shopper.shopper.id for b in boxes):
            views[cam.id] = fg
    return views


def test_hand_found_where_the_shopper_reaches(plan: Plan, demo_store: StoreLayout, backgrounds: Backgrounds) -> None:
    finder = HandFinder(demo_store, {c.id: CameraModel(c) for c in demo_store.cameras})
    shopper = next(p for p in plan.shoppers if p.shopper.id == "s003")
    h0, h1, truth = shopper.reaches[0]
    t = (h0 + h1) / 2
    x, y = (float(v) for v in shopper.trajectory.at(t))
    assert math.hypot(x - truth[0], y - truth[1]) > 0.4  # the hand is well away from the body
    hand = finder.find(x, y, _views(plan, demo_store, backgrounds, shopper, t))
    assert hand is not None
    # the fusion judges a hand against the plate front within ~0.07 m (hand_std_m)
    assert math.dist(hand, truth) < 0.07


def test_no_hand_while_walking(plan: Plan, demo_store: StoreLayout, backgrounds: Backgrounds) -> None:
    finder = HandFinder(demo_store, {c.id: CameraModel(c) for c in demo_store.cameras})
    shopper = next(p for p in plan.shoppers if p.shopper.id == "s003")
    h0 = shopper.reaches[0][0]
    t = h0 - 4.0
    assert all(not (a - 1.0 <= t <= b + 1.0) for a, b, _ in shopper.reaches)
    x, y = (float(v) for v in shopper.trajectory.at(t))
    views = _views(plan, demo_store, backgrounds, shopper, t)
    assert views
    assert finder.find(x, y, views) is None
