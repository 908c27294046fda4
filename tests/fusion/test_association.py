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


def _walk_with_a_dropout(store: StoreLayout, gap: tuple[float, float], reappear_m: float) -> ShopperRegistry:
    """One visit comes in and walks along the aisle at 1.25 m/s; the tracker drops its track t1 from
    `gap[0]` to `gap[1]` s and picks the person up again as t2, `reappear_m` further on from where t1 was
    last seen."""
    reg = ShopperRegistry(store)
    reg.open_visit(0, "visit-0", "acct-0", 1)
    lost_x: float | None = None
    for tick in range(10, 10 * 40):
        t = tick * NS // 10
        x = 2.0 + 1.25 * max(0.0, t / NS - 4.0) if t < gap[0] * NS else None
        if x is not None:
            reg.observe(t, [TrackObservation("t1", ENTRY[0] if t < 4 * NS else x, ENTRY[1] if t < 4 * NS else 3.0)])
            lost_x = x
        elif t < gap[1] * NS:
            reg.observe(t, [])
        else:
            assert lost_x is not None
            reg.observe(t, [TrackObservation("t2", lost_x + reappear_m, 3.0)])
    return reg


def test_a_walker_the_tracker_dropped_for_three_seconds_is_found_further_on(demo_store: StoreLayout) -> None:
    # walking on during a 2.8 s dropout, the person is 3.3 m on when the tracker finds them again (before
    # their track counts as lost): the new track continues them, so what they take next is theirs
    reg = _walk_with_a_dropout(demo_store, gap=(8.0, 10.8), reappear_m=3.3)
    assert reg.visit_of_track("t2") == "visit-0"
