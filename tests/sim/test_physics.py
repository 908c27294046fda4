"""The simulated sensors behave within the configured parameters."""

from __future__ import annotations

import numpy as np
import pytest

from store_edge.layout import StoreLayout
from store_edge.sim.physics import curtain_reports, shelf_signal, track_frames, vibration_bursts
from store_edge.sim.plan import Plan, build_plan
from store_edge.sim.scenario import Action, NoiseParams, Scenario, Shopper

COLA_CAN = "2528634340623"  # 381.3 g, G1-S1-P11..P12


def _plan(store: StoreLayout, shoppers: list[Shopper], duration: float = 60, **noise: object) -> Plan:
    sc = Scenario(store="demo", seed=3, duration_s=duration, noise=NoiseParams.model_validate(noise), shoppers=shoppers)
    return build_plan(store, sc)


def _detrended_std(x: np.ndarray) -> float:
    t = np.arange(len(x))
    return float(np.std(x - np.polyval(np.polyfit(t, x, 1), t)))


def test_idle_plates_show_noise_of_a_few_grams_not_a_flat_line(demo_store: StoreLayout) -> None:
    plan = _plan(demo_store, [], load_cell={"vibration_per_gondola_per_hour": 0})
    shelf = demo_store.gondolas[0].shelves[0]
    sig = shelf_signal(plan, shelf, 60)
    assert sig.values.shape == (3600, len(shelf.plates))
    for j in range(sig.values.shape[1]):
        x = sig.values[:, j]
        std = _detrended_std(x)
        assert 0.9 < std < 1.6, std  # noise_std_g 1.2 plus quantisation
        assert 4 <= np.ptp(x) <= 20  # a few grams peak to peak
        assert np.allclose(x, np.round(x))  # 1 g ADC quantum
        assert 600 <= np.median(x) - plan.plate_initial_load_g()[shelf.plates[j].id] <= 1400  # raw, not tared


def test_drift_follows_the_configured_rate(demo_store: StoreLayout) -> None:
    rate = 3600.0  # g per hour std: one gram a second, easy to measure in two minutes
    plan = _plan(
        demo_store,
        [],
        duration=120,
        load_cell={
            "drift_g_per_hour_std": rate,
            "drift_walk_g_per_sqrt_s": 0,
            "vibration_per_gondola_per_hour": 0,
        },
    )
    slopes = []
    for shelf in demo_store.gondolas[0].shelves + demo_store.gondolas[1].shelves:
        sig = shelf_signal(plan, shelf, 120)
        slopes += [np.polyfit(sig.t_s, sig.values[:, j], 1)[0] * 3600 for j in range(sig.values.shape[1])]
    assert len(slopes) > 80
    assert 0.75 * rate < np.std(slopes) < 1.25 * rate
    flat = _plan(demo_store, [], duration=120, load_cell={"drift_g_per_hour_std": 0, "drift_walk_g_per_sqrt_s": 0})
    sig = shelf_signal(flat, demo_store.gondolas[0].shelves[0], 120)
    assert max(abs(np.polyfit(sig.t_s, sig.values[:, j], 1)[0]) * 3600 for j in range(4)) < 30


def test_pick_transient_presses_lifts_and_settles_within_parameters(demo_store: StoreLayout) -> None:
    lc = {
        "press_g": (150, 150),
        "settle_s": (0.6, 0.6),
        "ring_fraction": (0.3, 0.3),
        "grip_s": (0.4, 0.4),
        "noise_std_g": 1.0,
        "vibration_per_gondola_per_hour": 0,
        "drift_g_per_hour_std": 0,
        "drift_walk_g_per_sqrt_s": 0,
        "straddle_prob": 0,
    }
    shopper = Shopper(
        id="a",
        account="acct-a",
        enter_s=2,
        actions=[Action(at_s=20, kind="pick", sku=COLA_CAN, plates=["G1-S1-P11"])],
    )
    plan = _plan(demo_store, [shopper], load_cell=lc)
    action = plan.actions[0]
    contact = plan.contacts[0]
    lift = contact.steps[0].t
    weight = action.unit_weights_g[0]
    assert action.plate_deltas_g == {"G1-S1-P11": pytest.approx(-weight)}
    assert abs(weight - 381.3) < 5 * demo_store.products_by_sku[COLA_CAN].unit_weight_g.std
    sig = shelf_signal(plan, demo_store.shelves_by_id["G1-S1"], 60)
    x = sig.values[:, [p.id for p in demo_store.shelves_by_id["G1-S1"].plates].index("G1-S1-P11")]
    t = sig.t_s
    before = np.median(x[(t > 15) & (t < 19.5)])
    pressing = x[(t > contact.hand_in + 0.45) & (t < lift - 0.15)]
    assert np.median(pressing) - before == pytest.approx(150, abs=25)  # the gripping hand presses
    ringing = x[(t > lift) & (t < lift + 0.6)] - (before - weight)
    assert np.max(np.abs(ringing)) > 0.1 * weight  # the plate rings after the lift...
    assert np.max(np.abs(ringing)) < 0.3 * (weight + 150) + 10  # ...no more than the configured share
    after = x[(t > lift + 0.6) & (t < lift + 5)]  # ...and has settled after settle_s
    assert np.median(after) - before == pytest.approx(-weight, abs=1.5)
    assert np.max(np.abs(after - np.median(after))) < 6


def test_unit_weights_follow_the_product_spread(demo_store: StoreLayout) -> None:
    plan = _plan(demo_store, [])
    by_sku: dict[str, list[float]] = {}
    for units in plan.initial_stock.values():
        for u in units:
            by_sku.setdefault(u.sku, []).append(u.weight_g)
    checked = 0
    for sku, weights in by_sku.items():
        w = demo_store.products_by_sku[sku].unit_weight_g
        if len(weights) >= 40 and w.std > 0.5:
            assert np.mean(weights) == pytest.approx(w.mean, abs=4 * w.std / np.sqrt(len(weights)))
            assert np.std(weights) == pytest.approx(w.std, rel=0.35)
            checked += 1
    assert checked >= 5


def test_vibration_bursts_hit_every_plate_of_a_gondola_at_once(demo_store: StoreLayout) -> None:
    plan = _plan(demo_store, [], duration=120, load_cell={"vibration_per_gondola_per_hour": 120, "vibration_g": 80})
    gondola = demo_store.gondolas[2]
    bursts = vibration_bursts(plan, gondola.id, 120)
    assert 1 <= len(bursts) <= 12
    start, dur, _, _ = bursts[0]
    for shelf in gondola.shelves:
        sig = shelf_signal(plan, shelf, 120)
        inside = (sig.t_s > start + dur * 0.3) & (sig.t_s < start + dur * 0.7)
        quiet = (sig.t_s > 0) & (sig.t_s < 120)
        for j in range(sig.values.shape[1]):
            assert np.std(sig.values[inside, j]) > 5 * 1.2  # far above the noise floor, on every plate
        # and it nets to nothing: the level is the same before and after the burst
        after = (sig.t_s > start + dur + 0.5) & (sig.t_s < start + dur + 3)
        pre = (sig.t_s > start - 3) & (sig.t_s < start - 0.5)
        if pre.any() and after.any() and quiet.any():
            assert np.all(np.abs(np.median(sig.values[after], 0) - np.median(sig.values[pre], 0)) < 4)


def test_curtain_reports_each_hand_at_its_place_and_misses_as_configured(demo_store: StoreLayout) -> None:
    actions = [Action(at_s=10 + 6 * k, kind="touch", plates=[f"G1-S2-P{k + 1:02d}"]) for k in range(8)]
    shopper = Shopper(id="a", account="acct-a", enter_s=2, actions=actions)
    plan = _plan(
        demo_store,
        [shopper],
        duration=80,
        curtain={"miss_prob": 0, "false_triggers_per_shelf_per_hour": 0, "position_std_m": 0.005},
    )
    shelf = demo_store.shelves_by_id["G1-S2"]
    reports = curtain_reports(plan, shelf, 80)
    enters = [r for r in reports if r.event == "enter"]
    assert len(enters) == 8
    assert len([r for r in reports if r.event == "leave"]) == 8
    for k, r in enumerate(enters):
        geo = demo_store.plate_geometry[f"G1-S2-P{k + 1:02d}"]
        assert r.t_s == pytest.approx(10 + 6 * k)
        assert geo.x_range_m[0] - 0.02 <= r.x_m <= geo.x_range_m[1] + 0.02
        assert r.x_m == pytest.approx(round(r.x_m / 0.01) * 0.01)  # curtain resolution
    missing = _plan(
        demo_store, [shopper], duration=80, curtain={"miss_prob": 1.0, "false_triggers_per_shelf_per_hour": 0}
    )
    assert curtain_reports(missing, shelf, 80) == []
    noisy = _plan(demo_store, [], duration=3600, curtain={"false_triggers_per_shelf_per_hour": 20})
    assert 5 <= len(curtain_reports(noisy, shelf, 3600)) / 2 <= 40


def test_hand_and_curtain_are_where_the_unit_was_taken_not_at_the_facings_first_plate(
    demo_store: StoreLayout,
) -> None:
    # cola cans face on two plates (P11, P12); each pick takes a unit from either, and the camera's hand
    # and the curtain must report the plate whose weight changed
    picks = [Action(at_s=10 + 8 * k, kind="pick", sku=COLA_CAN) for k in range(6)]
    plan = _plan(
        demo_store,
        [Shopper(id="a", account="acct-a", enter_s=2, actions=picks)],
        duration=80,
        curtain={"miss_prob": 0, "false_triggers_per_shelf_per_hour": 0},
        tracks={"hand_visible_prob": 1.0, "hand_std_m": 0.0},
    )
    shelf = demo_store.shelves_by_id["G1-S1"]
    enters = [r for r in curtain_reports(plan, shelf, 80) if r.event == "enter"]
    reaches = plan.shoppers[0].reaches
    assert len(enters) == len(reaches) == len(plan.actions) == 6
    taken_from = set()
    for action, enter, (_, _, hand) in zip(plan.actions, enters, reaches, strict=True):
        (plate,) = action.plate_deltas_g  # no unit straddles here at this seed
        taken_from.add(plate)
        geo = demo_store.plate_geometry[plate]
        assert geo.x_range_m[0] - 0.05 <= enter.x_m <= geo.x_range_m[1] + 0.05
        mid = np.add(geo.front_left, geo.front_right) / 2
        assert np.hypot(hand[0] - mid[0], hand[1] - mid[1]) < 0.01
    assert taken_from == {"G1-S1-P11", "G1-S1-P12"}  # both plates of the facing were picked from


def test_tracks_are_noisy_drop_out_and_never_give_one_id_to_two_people(demo_store: StoreLayout) -> None:
    shoppers = [
        Shopper(
            id=f"s{k}",
            account=f"acct-{k}",
            enter_s=2 + k,
            actions=[Action(at_s=40 + k, kind="touch", plates=["G3-S2-P04"])],
        )
        for k in range(3)
    ]
    plan = _plan(demo_store, shoppers, duration=90, tracks={"position_std_m": 0.1, "dropouts_per_minute": 3})
    errors, dropped, seen = [], 0, 0
    for _, points in track_frames(plan, 90):
        ids = [p.track_id for p in points if p.track_id is not None]
        assert len(ids) == len(set(ids))
        for p in points:
            seen += 1
            if p.track_id is None:
                dropped += 1
            else:
                errors.append(np.hypot(p.x - p.true_x, p.y - p.true_y))
    assert np.sqrt(np.mean(np.square(errors))) == pytest.approx(0.1 * np.sqrt(2), rel=0.2)
    assert 0.01 < dropped / seen < 0.3
    # standing side by side at one plate: with switch_prob 1 the ids swap
    swapping = _plan(demo_store, shoppers, duration=90, tracks={"switch_prob": 1.0, "dropouts_per_minute": 0})
    owners: dict[str, set[str]] = {}
    for _, points in track_frames(swapping, 90):
        for p in points:
            owners.setdefault(str(p.track_id), set()).add(p.shopper_id)
    assert any(len(v) > 1 for v in owners.values())
