from __future__ import annotations

from cloud_api.domain.review import DecisionTimes, format_duration, percentile, summarize


def test_median_and_p90_are_nearest_rank_values() -> None:
    assert summarize([]) == DecisionTimes(0, None, None)
    assert summarize([30.0]) == DecisionTimes(1, 30.0, 30.0)
    times = [float(t) for t in (50, 10, 40, 20, 30, 100, 60, 70, 80, 90)]
    assert summarize(times) == DecisionTimes(10, 50.0, 90.0)
    assert percentile(sorted(times), 100) == 100.0
    assert summarize([5.0, 1.0, 3.0]).median_s == 3.0


def test_durations_read_at_a_glance() -> None:
    assert [format_duration(s) for s in (None, 4.4, 65, 3600 + 7 * 60 + 30)] == ["–", "4 s", "1 min 05 s", "1 h 07 min"]
