"""Time to decision (no I/O): how long tickets waited for staff, summarised as count, median and p90."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DecisionTimes:
    count: int
    median_s: float | None
    p90_s: float | None


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list (q in (0, 100]): a value that occurred."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(durations_s: list[float]) -> DecisionTimes:
    if not durations_s:
        return DecisionTimes(0, None, None)
    values = sorted(durations_s)
    return DecisionTimes(len(values), percentile(values, 50), percentile(values, 90))


def format_duration(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '2 h 07 min': what a reviewer reads at a glance."""
    if seconds is None:
        return "–"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
