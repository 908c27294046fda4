"""The evaluator scores per item unit, product and visit both right, put-backs netted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from store_edge.evaluation import _units_under_review, score_items
from store_edge.fusion.engine import ReviewTicket
from store_edge.fusion.weight_events import PlateChange, WeightEvent
from store_edge.protocol.truth import TruthAction
from tests.conftest import ROOT


def test_a_unit_counts_only_with_the_right_product_and_visit() -> None:
    truth = {"v1": Counter({"A": 2, "B": 1}), "v2": Counter({"C": 1})}
    predicted = {"v1": Counter({"A": 1, "C": 1}), "v2": Counter({"C": 1, "B": 1})}
    s = score_items(predicted, truth)
    assert (s.true_positive, s.predicted, s.actual) == (2, 4, 4)
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(0.5)
    assert score_items(truth, truth).f1 == 1.0


def _held(event_id: str, plate_id: str, delta_g: float) -> ReviewTicket:
    change = PlateChange(plate_id, 0, 10**9, 2 * 10**9, delta_g, 1000.0, 1000.0 + delta_g)
    event = WeightEvent(event_id, "S1", 10**9, 2 * 10**9, (change,))
    return ReviewTicket(f"T-{event_id}", event, "shopper unsure", [], [], [])


def test_staff_see_only_the_units_of_an_action_on_the_plates_of_held_events() -> None:
    """Two units taken in one reach, one from each of two plates, become two events. When only one is
    held, the other's confirmed line already counts its unit: review adds the held plate's unit only."""
    two_plates = TruthAction(
        action_id="a1",
        kind="pick",
        shopper_id="s1",
        visit_id="v1",
        start_ns=10**9,
        end_ns=2 * 10**9,
        sku="A",
        quantity=2,
        shelf_id="S1",
        plate_deltas_g={"P09": -106.0, "P11": -106.0},
    )
    elsewhere = two_plates.model_copy(update={"action_id": "a2", "plate_deltas_g": {"P01": -50.0}})
    one_held = _units_under_review([_held("e21", "P09", -106.0)], [two_plates, elsewhere])
    assert [(a.action_id, units) for a, units in one_held] == [("a1", 1)]
    both_held = _units_under_review([_held("e21", "P09", -106.0), _held("e22", "P11", -106.0)], [two_plates, elsewhere])
    assert [(a.action_id, units) for a, units in both_held] == [("a1", 2)]


def test_eval_json_has_every_metric() -> None:
    rec = ROOT / "sample_data" / "recordings" / "demo-random-8x4min-seed1.mcap"
    done = subprocess.run(
        [sys.executable, "-m", "store_edge.cli", "eval", str(rec), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    j = json.loads(done.stdout)
    for key in ("precision", "recall", "f1"):
        assert 0 <= j["items"][key] <= 1
    assert 0 <= j["receipts"]["exact_match"] <= 1
    assert 0 <= j["review_rate"] <= 1
    assert 0 <= j["after_review"]["f1"] <= 1
    assert j["speed"]["samples_per_s"] > 0
    assert j["speed"]["realtime_factor"] > 1
    assert j["items"]["actual"] == 29  # the units the recording's truth says were carried out
    assert j["items"]["f1"] >= 0.9
