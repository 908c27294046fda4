"""Scripted scenarios happen as written; impossible ones fail with the field that is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from store_edge.errors import ConfigError
from store_edge.layout import StoreLayout
from store_edge.protocol.truth import TruthAction, TruthReceipt, TruthVisit
from store_edge.recording.mcap_io import read_messages
from store_edge.sim.plan import build_plan
from store_edge.sim.scenario import Scenario, load_scenario, parse_scenario
from store_edge.sim.simulator import simulate
from tests.conftest import HARD_CASES

NS = 1_000_000_000


@pytest.fixture(scope="module")
def hard_cases(demo_store: StoreLayout, tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Path]:
    out = tmp_path_factory.mktemp("rec") / "hard.mcap"
    scenario = load_scenario(HARD_CASES)
    simulate(demo_store, scenario, out)
    return scenario, out


def test_scripted_actions_happen_at_their_times(hard_cases: tuple[Scenario, Path]) -> None:
    scenario, out = hard_cases
    actions = [TruthAction.model_validate_json(m.data) for m in read_messages(out, ["truth/actions"])]
    scripted = sorted((a.at_s, s.id, a.kind) for s in scenario.shoppers for a in s.actions)
    happened = sorted(((a.start_ns - scenario.start_ns) / NS, a.shopper_id, a.kind) for a in actions)
    assert [(round(t, 6), sid, kind) for t, sid, kind in happened] == scripted
    by_key = {(a.shopper_id, round((a.start_ns - scenario.start_ns) / NS, 3)): a for a in actions}
    wrong_place = by_key[("alice", 31.0)]
    assert wrong_place.kind == "put_back"
    assert wrong_place.misplaced
    assert wrong_place.plate_deltas_g == {"G3-S2-P04": pytest.approx(43.5, abs=3)}
    swap = by_key[("carol", 52.0)]
    assert swap.misplaced
    assert list(swap.plate_deltas_g) == ["G1-S1-P11"]
    three = by_key[("alice", 20.0)]
    assert three.quantity == 3
    assert sum(three.plate_deltas_g.values()) == pytest.approx(-3 * 43.5, abs=6)
    touch = by_key[("bob", 28.0)]
    assert touch.kind == "touch"
    assert touch.plate_deltas_g == {}
    hand_off = by_key[("alice", 45.0)]
    assert (hand_off.kind, hand_off.to_shopper_id, hand_off.to_visit_id) == ("hand_off", "bob", "visit-bob")


def test_curtain_sees_each_scripted_hand_at_its_time(hard_cases: tuple[Scenario, Path]) -> None:
    scenario, out = hard_cases
    enters = [json.loads(m.data) for m in read_messages(out) if "/curtain/" in m.topic]
    times = sorted((e["header"]["ts_ns"] - scenario.start_ns) / NS for e in enters if e["event"] == "enter")
    shelf_actions = [a.at_s for s in scenario.shoppers for a in s.actions if a.kind != "hand_off"]
    hits = [t for t in shelf_actions if any(abs(t - e) < 0.05 for e in times)]
    assert len(hits) >= len(shelf_actions) - 1  # curtains miss 2% of hands


def test_receipts_follow_hand_offs_and_parties(hard_cases: tuple[Scenario, Path]) -> None:
    _, out = hard_cases
    receipts = {
        r.visit_id: {ln.sku: ln.quantity for ln in r.lines}
        for r in (TruthReceipt.model_validate_json(m.data) for m in read_messages(out, ["truth/receipts"]))
    }
    visits = {
        v.visit_id: v for v in (TruthVisit.model_validate_json(m.data) for m in read_messages(out, ["truth/visits"]))
    }
    cola = "2528634340623"
    assert receipts["visit-bob"] == {cola: 1, "2860754476340": 1}  # the cola alice handed him
    assert receipts["visit-alice"] == {"2989422016913": 2}  # 3 bars picked, 1 put back
    assert receipts["visit-carol"] == {"2860754476340": 1, "2737828707870": 1}  # lemon-lime returned
    assert receipts["visit-dave"] == {"2012095557794": 1, "2509556969802": 2}
    assert visits["visit-dave"].shopper_ids == ["dave", "erin"]  # one code, one cart
    assert visits["visit-dave"].account_id == "acct-dave"


def _base(**shopper: object) -> dict[str, object]:
    s: dict[str, object] = {"id": "a", "account": "acct-a", "enter_s": 2}
    s.update(shopper)
    return {"store": "demo", "duration_s": 120, "shoppers": [s]}


def _problem(store: StoreLayout, data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as err:
        build_plan(store, parse_scenario(data, "bad.yaml"), "bad.yaml")
    return str(err.value)


def test_unreachable_timing_names_the_action(demo_store: StoreLayout) -> None:
    msg = _problem(
        demo_store,
        _base(
            actions=[
                {"at_s": 10, "kind": "pick", "sku": "2528634340623"},
                {"at_s": 11, "kind": "pick", "sku": "2509556969802"},  # the far gondola, one second later
            ]
        ),
    )
    assert "bad.yaml: shoppers[0].actions[1].at_s: shopper 'a' cannot be there by 11.0 s" in msg


def test_returning_what_you_do_not_carry_is_refused(demo_store: StoreLayout) -> None:
    msg = _problem(demo_store, _base(actions=[{"at_s": 20, "kind": "put_back", "sku": "2528634340623"}]))
    assert "shoppers[0].actions[0]: 'a' puts back 1 x 2528634340623 but carries 0" in msg


def test_unknown_sku_and_plate_are_named(demo_store: StoreLayout) -> None:
    assert "shoppers[0].actions[0].sku: unknown sku '999'" in _problem(
        demo_store, _base(actions=[{"at_s": 20, "kind": "pick", "sku": "999"}])
    )
    assert "shoppers[0].actions[0].plates: unknown plate ids ['G9-S9-P99']" in _problem(
        demo_store, _base(actions=[{"at_s": 20, "kind": "touch", "plates": ["G9-S9-P99"]}])
    )


def test_scenario_file_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = _base(actions=[{"at_s": 20, "kind": "hand_off", "sku": "1"}])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert f"{path}: shoppers[0].actions[0]" in str(err.value)
    assert "needs `to`" in str(err.value)
    path.write_text("store: demo\nduration_s: 10\nnoise: {load_cell: {noise_std_gg: 1}}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert "noise.load_cell.noise_std_gg: Extra inputs are not permitted" in str(err.value)
    path.write_text("store: demo\nduration_s: 10\nnoise: {load_cell: {press_g: [300, 100]}}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert "noise.load_cell" in str(err.value)
    assert "press_g: lower bound 300.0 is above" in str(err.value)


def test_scenario_for_another_store_is_refused(demo_store: StoreLayout) -> None:
    data = _base()
    data["store"] = "hard"
    assert "store: scenario is for store 'hard', the layout is 'demo'" in _problem(demo_store, data)


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (
            {"at_s": 20, "kind": "put_back", "sku": "1", "plates": ["G1-S1-P01", "G1-S1-P02"]},
            "a put_back goes onto one plate",
        ),
        (
            {"at_s": 20, "kind": "hand_off", "sku": "1", "to": "a", "plates": ["G1-S1-P01"]},
            "a hand_off happens off the shelf: no `plates`",
        ),
        ({"at_s": 20, "kind": "put_back", "sku": "1", "hold_s": 3}, "`hold_s` is for pick and touch"),
    ],
)
def test_action_fields_that_would_be_ignored_are_refused(action: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(_base(actions=[action]), "bad.yaml")
    assert f"bad.yaml: shoppers[0].actions[0]: {problem}" in str(err.value)


def test_hand_off_to_a_stranger_names_the_action() -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(_base(actions=[{"at_s": 20, "kind": "hand_off", "sku": "1", "to": "zed"}]), "bad.yaml")
    assert "shoppers[0].actions[0]: hand_off to unknown shopper 'zed'" in str(err.value)
