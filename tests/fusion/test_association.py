"""Who stood where during an event: the body model of `ShopperRegistry.associate`."""

from __future__ import annotations

import numpy as np

from store_edge.fusion.shoppers import NS, ShopperRegistry, TrackObservation
from store_edge.layout import StoreLayout

PLATE = "G3-S2-P06"
ENTRY = (1.9, 1.4)


def _two_shoppers_at_the_plate(store: StoreLayout, beside_m: float) -> ShopperRegistry:
    """Two visits come in; from 10 s one stands in front of PLATE (0.45 m out) and the other `beside_m`
    along the shelf from them, neither hand seen."""
    g = store.plate_geometry[PLATE]
    centre = (np.array(g.front_left) + np.array(g.front_right)) / 2
    along = np.array(g.front_right) - np.array(g.front_left)
    along /= np.linalg.norm(along)
    out = np.array(store.gondolas_by_id[g.gondola_id].aisle_normal, dtype=float)
    front, side = centre + 0.45 * out, centre + 0.45 * out + beside_m * along
    reg = ShopperRegistry(store)
    reg.open_visit(0, "visit-front", "acct-0", 1)
    reg.open_visit(3 * NS, "visit-side", "acct-1", 1)
    for tick in range(150):
        t = tick * NS // 10
        obs = []
        if t >= NS:
            xy = ENTRY if t < 10 * NS else front
            obs.append(TrackObservation("t1", float(xy[0]), float(xy[1])))
        if t >= 4 * NS:
            xy = ENTRY if t < 10 * NS else side
            obs.append(TrackObservation("t2", float(xy[0]) + (0.0 if t >= 10 * NS else 0.6), float(xy[1])))
        reg.observe(t, obs)
    return reg


def test_someone_beside_the_spot_may_have_reached_sideways(demo_store: StoreLayout) -> None:
    # shoulder to shoulder: the one beside (0.55 m along) may have reached past the one in front, so
    # the one in front is not sure enough to be charged (review below 0.75)
    reg = _two_shoppers_at_the_plate(demo_store, beside_m=0.55)
    odds = {c.visit_id: c.probability for c in reg.associate({PLATE: -50.0}, 12 * NS, 13 * NS)}
    assert 0.5 < odds["visit-front"] < 0.75
    assert odds["visit-side"] > 0.25


def test_someone_out_of_arms_reach_along_the_shelf_did_not(demo_store: StoreLayout) -> None:
    reg = _two_shoppers_at_the_plate(demo_store, beside_m=1.2)
    odds = {c.visit_id: c.probability for c in reg.associate({PLATE: -50.0}, 12 * NS, 13 * NS)}
    assert odds["visit-front"] > 0.95


def test_someone_the_tracker_lost_while_they_reached_is_still_there(demo_store: StoreLayout) -> None:
    # one shopper in front of the plate; the tracker loses them from 11.5 s to 14 s (a dropout), and the
    # plate changes at 12-13 s: they stood where they were last seen, it was not nobody
    g = demo_store.plate_geometry[PLATE]
    centre = (np.array(g.front_left) + np.array(g.front_right)) / 2
    front = centre + 0.45 * np.array(demo_store.gondolas_by_id[g.gondola_id].aisle_normal, dtype=float)
    reg = ShopperRegistry(demo_store)
    reg.open_visit(0, "visit-front", "acct-0", 1)
    for tick in range(10, 160):
        t = tick * NS // 10
        if 11.5 * NS <= t < 14 * NS:
            reg.observe(t, [])
            continue
        xy = ENTRY if t < 10 * NS else front
        reg.observe(t, [TrackObservation("t1", float(xy[0]), float(xy[1]))])
    odds = {c.visit_id: c.probability for c in reg.associate({PLATE: -50.0}, 12 * NS, 13 * NS)}
    assert odds["visit-front"] > 0.95
