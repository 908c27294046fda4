"""The evaluator scores per item unit, product and visit both right, put-backs netted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from store_edge.evaluation import score_items
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
