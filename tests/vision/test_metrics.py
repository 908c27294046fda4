from __future__ import annotations

import pytest

from store_edge.vision.metrics import score_tracking


def test_perfect_tracking_scores_one() -> None:
    frames = [([("a", 0.0, 0.0), ("b", 3.0, 0.0)], [(1, 0.1, 0.0), (2, 3.0, 0.1)]) for _ in range(10)]
    s = score_tracking(frames)
    assert s.mota == 1.0
    assert s.idf1 == 1.0
    assert s.id_switches == 0
    assert s.mean_error_m == pytest.approx(0.1)


def test_a_swap_counts_once_and_costs_identity() -> None:
    before = [([("a", 0.0, 0.0), ("b", 3.0, 0.0)], [(1, 0.0, 0.0), (2, 3.0, 0.0)])] * 5
    after = [([("a", 0.0, 0.0), ("b", 3.0, 0.0)], [(2, 0.0, 0.0), (1, 3.0, 0.0)])] * 5
    s = score_tracking(before + after)
    assert s.id_switches == 2  # both truths change track
    assert s.mota == pytest.approx(1 - 2 / 20)
    assert s.idf1 == pytest.approx(0.5)


def test_misses_and_false_positives() -> None:
    frames = [([("a", 0.0, 0.0)], [(1, 2.0, 0.0)])] * 4  # too far: a miss and a false positive each frame
    s = score_tracking(frames, max_distance_m=0.5)
    assert (s.misses, s.false_positives, s.matches) == (4, 4, 0)
    assert s.mota == pytest.approx(-1.0)
    assert s.idf1 == 0.0
