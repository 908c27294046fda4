"""Weight events: stable-to-stable changes per plate; drift, hands and vibration are not items."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from store_edge.fusion.weight_events import ShelfWeightEventDetector, WeightEvent, readings_array
from store_edge.layout import StoreLayout
from store_edge.sim.physics import curtain_reports, shelf_signal
from store_edge.sim.plan import Plan, build_plan
from store_edge.sim.scenario import Action, NoiseParams, Scenario, Shopper

NS = 1_000_000_000


def _plan(store: StoreLayout, shoppers: list[Shopper], duration: float = 60, **noise: object) -> Plan:
    return build_plan(
        store,
        Scenario(store="demo", seed=4, duration_s=duration, shoppers=shoppers, noise=NoiseParams.model_validate(noise)),
    )


def _detect(plan: Plan, shelf_id: str, duration: float, curtain: bool = True) -> list[tuple[dict[str, float], int]]:
    store = plan.store
    shelf = store.shelves_by_id[shelf_id]
    sig = shelf_signal(plan, shelf, duration)
    det = ShelfWeightEventDetector(shelf_id, sig.plate_ids, shelf.scale.rate_hz)
    reports = iter(curtain_reports(plan, shelf, duration) if curtain else [])
    pending = next(reports, None)
    events = []
    for i0 in range(0, len(sig.t_s), 12):
        t_end = sig.t_s[min(i0 + 11, len(sig.t_s) - 1)]
        while pending is not None and pending.t_s <= t_end:
            det.curtain(round(pending.t_s * NS), pending.event, pending.x_m)
            pending = next(reports, None)
        times = (sig.t_s[i0 : i0 + 12] * NS).astype(np.int64)
        events += det.add_batch(times, sig.values[i0 : i0 + 12])
    events += det.flush()
    return [(e.plate_deltas_g, e.start_ns) for e in events]


def test_each_pick_and_return_is_one_event_with_the_true_plate_changes(demo_store: StoreLayout) -> None:
    actions = [
        Action(at_s=10, kind="pick", sku="2198552021692", plates=["G1-S2-P02"]),  # diet cola 366.5 g
        Action(at_s=20, kind="pick", sku="2479054984914", quantity=2),  # two lemon-lime cans
        Action(at_s=32, kind="put_back", sku="2198552021692", plates=["G1-S2-P11"]),  # onto the orange cans
        Action(at_s=42, kind="touch", plates=["G1-S2-P09"]),  # takes nothing
    ]
    plan = _plan(demo_store, [Shopper(id="a", account="acct-a", enter_s=2, actions=actions)])
    truth = [a.plate_deltas_g for a in plan.actions if a.plate_deltas_g]
    events = _detect(plan, "G1-S2", 60)
    assert len(events) == len(truth)
    for (deltas, _), want in zip(events, truth, strict=True):
        assert set(deltas) == set(want)
        for pid, d in want.items():
            assert deltas[pid] == pytest.approx(d, abs=3.0)


def test_drift_vibration_and_idle_noise_make_no_events(demo_store: StoreLayout) -> None:
    plan = _plan(
        demo_store,
        [],
        duration=600,
        load_cell={
            "drift_g_per_hour_std": 200.0,
            "drift_walk_g_per_sqrt_s": 0.2,
            "vibration_per_gondola_per_hour": 60,
            "vibration_g": 120.0,
        },
    )
    for shelf_id in ("G1-S1", "G3-S4", "G5-S2"):
        assert _detect(plan, shelf_id, 600) == []


def test_concurrent_picks_far_apart_on_one_shelf_stay_two_events(demo_store: StoreLayout) -> None:
    shoppers = [
        Shopper(
            id="a",
            account="acct-a",
            enter_s=2,
            actions=[Action(at_s=15, kind="pick", sku="2198552021692", plates=["G1-S2-P01"])],
        ),
        Shopper(
            id="b",
            account="acct-b",
            enter_s=5,
            actions=[Action(at_s=15.2, kind="pick", sku="2153269586025", plates=["G1-S2-P12"])],
        ),
    ]
    events = _detect(_plan(demo_store, shoppers, 40), "G1-S2", 40)
    assert sorted(next(iter(d)) for d, _ in events) == ["G1-S2-P01", "G1-S2-P12"]


def test_a_steadily_pressing_hand_is_not_a_new_level_while_the_curtain_sees_it(demo_store: StoreLayout) -> None:
    shopper = Shopper(
        id="a", account="acct-a", enter_s=2, actions=[Action(at_s=15, kind="touch", plates=["G1-S2-P05"], hold_s=4)]
    )
    plan = _plan(demo_store, [shopper], 40, load_cell={"press_g": (40, 40)})  # light: little tremor
    assert _detect(plan, "G1-S2", 40) == []
    # without the curtain the press looks like 40 g put down and taken back
    assert len(_detect(plan, "G1-S2", 40, curtain=False)) >= 1


def test_a_plate_reading_nan_raises_no_event() -> None:
    det = ShelfWeightEventDetector("S", ["P1", "P2"], 60.0)
    t = np.arange(600) * (NS // 60)
    values = np.full((600, 2), 1000.0) + np.random.default_rng(0).normal(0, 1.2, (600, 2))
    values[200:230, 1] = np.nan
    events = det.add_batch(t, values) + det.flush()
    assert events == []


def _pick_trace(seconds: int = 12, pick_at_s: int = 6) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Two quiet plates, 350 g taken off the second at `pick_at_s` (a half-second hand in between)."""
    n = seconds * 60
    t = np.arange(n, dtype=np.int64) * (NS // 60)
    values = np.full((n, 2), [800.0, 1200.0]) + np.random.default_rng(1).normal(0, 1.2, (n, 2))
    k = pick_at_s * 60
    values[k : k + 30, 1] += np.linspace(0, 400, 30)
    values[k + 30 :, 1] -= 350.0
    return t, values


def _in_batches(det: ShelfWeightEventDetector, t: NDArray[np.int64], values: NDArray[np.float64]) -> list[WeightEvent]:
    events: list[WeightEvent] = []
    for i in range(0, len(t), 12):
        events += det.add_batch(t[i : i + 12], values[i : i + 12])
    return events


def test_quiet_batches_taken_in_bulk_measure_the_same_change_as_sample_by_sample() -> None:
    t, values = _pick_trace()
    bulk = _in_batches(ShelfWeightEventDetector("S", ["P1", "P2"], 60.0), t, values)
    one = ShelfWeightEventDetector("S", ["P1", "P2"], 60.0)
    by_sample = [e for i in range(len(t)) for e in one.add_batch(t[i : i + 1], values[i : i + 1])]
    assert len(bulk) == 1
    assert [c.plate_id for c in bulk[0].changes] == ["P2"]
    assert bulk[0].changes[0].delta_g == pytest.approx(-350, abs=2)
    assert bulk == by_sample  # the same levels, times and change: the bulk path only defers the deques


def test_a_detector_saved_before_bulk_deques_loads_and_measures_the_next_pick() -> None:
    t, values = _pick_trace()
    half = 5 * 60  # before the pick
    fresh = ShelfWeightEventDetector("S", ["P1", "P2"], 60.0)
    expected = _in_batches(fresh, t, values)
    det = ShelfWeightEventDetector("S", ["P1", "P2"], 60.0)
    _in_batches(det, t[:half], values[:half])
    for plate in det.plates:  # the state as the older version kept it: deques always full
        det._sync(plate)
        assert len(plate.window) == det.window_n
    state = dict(det.__dict__)
    state["_tail"] = state.pop("_recent")[-(det.window_n - 1) :]
    del state["_unsynced"], state["_idle_full"], state["recent_n"]
    old = ShelfWeightEventDetector.__new__(ShelfWeightEventDetector)
    old.__setstate__(state)
    assert _in_batches(old, t[half:], values[half:]) == expected


def test_readings_array_reads_gaps_as_nan() -> None:
    assert readings_array([[1.0, 2.0], [3.0, 4.0]]).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with_gap = readings_array([[1.0, None], [3.0, 4.0]])
    assert with_gap.shape == (2, 2)
    assert np.isnan(with_gap[0, 1])
    assert with_gap[1, 1] == 4.0


def test_a_unit_lying_across_two_plates_joins_its_neighbours_changes_into_one_event() -> None:
    # one pick of two battery packs: one from plate 3, the other lying across plates 4 and 5 (25 g and
    # 81 g of it). Plate 5's change starts before plate 4's: plates 3 and 5 are not neighbours, but
    # plate 4 joins both, so it is one event (two events made the second pack a 81 g charging cable)
    rate = 60.0
    plates = [f"S1-P{k:02d}" for k in range(1, 7)]
    det = ShelfWeightEventDetector("S1", plates, rate)
    t_s = np.arange(0, 6, 1 / rate)
    values = np.full((len(t_s), len(plates)), 500.0) + np.random.default_rng(0).normal(0, 0.5, (len(t_s), len(plates)))
    for index, at_s, delta in ((2, 2.0, -106.0), (4, 2.45, -80.5), (3, 2.55, -25.5)):
        values[t_s >= at_s, index] += delta
    events: list[WeightEvent] = []
    for i0 in range(0, len(t_s), 12):
        events += det.add_batch((t_s[i0 : i0 + 12] * NS).astype(np.int64), values[i0 : i0 + 12])
    events += det.flush()
    assert len(events) == 1
    assert events[0].plate_deltas_g == pytest.approx({"S1-P03": -106.0, "S1-P04": -25.5, "S1-P05": -80.5}, abs=1.0)
