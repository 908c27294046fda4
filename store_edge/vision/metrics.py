"""Tracking quality on the floor plane against ground truth: CLEAR MOT (MOTA) and identity (IDF1).

The definitions are the standard ones (Bernardin & Stiefelhagen 2008 for MOTA; Ristani et al. 2016
for IDF1, as in `motmetrics` and TrackEval), with a floor distance instead of box overlap: a track
and a truth position match when they are within `max_distance_m`. Written here because motmetrics
1.4 no longer runs on numpy 2. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

Point = tuple[Hashable, float, float]
"""(id, x, y)."""


@dataclass(frozen=True)
class TrackingScore:
    frames: int
    truth_points: int
    track_points: int
    matches: int
    misses: int
    false_positives: int
    id_switches: int
    mota: float
    idf1: float
    id_precision: float
    id_recall: float
    mean_error_m: float
    truth_ids: int
    track_ids: int


def _distances(gt: Sequence[Point], hyp: Sequence[Point]) -> np.ndarray:
    if not gt or not hyp:
        return np.zeros((len(gt), len(hyp)))
    g = np.array([[p[1], p[2]] for p in gt])
    h = np.array([[p[1], p[2]] for p in hyp])
    return np.asarray(np.hypot(g[:, None, 0] - h[None, :, 0], g[:, None, 1] - h[None, :, 1]))


def score_tracking(
    frames: Sequence[tuple[Sequence[Point], Sequence[Point]]], max_distance_m: float = 0.5
) -> TrackingScore:
    """`frames`: per time step, (truth points, track points)."""
    big = 1e9
    last_match: dict[Hashable, Hashable] = {}
    n_gt = n_hyp = matches = misses = fps = switches = 0
    err_sum = 0.0
    pair_hits: dict[tuple[Hashable, Hashable], int] = {}
    gt_count: dict[Hashable, int] = {}
    hyp_count: dict[Hashable, int] = {}
    for gt, hyp in frames:
        n_gt += len(gt)
        n_hyp += len(hyp)
        for p in gt:
            gt_count[p[0]] = gt_count.get(p[0], 0) + 1
        for p in hyp:
            hyp_count[p[0]] = hyp_count.get(p[0], 0) + 1
        d = _distances(gt, hyp)
        # identity pairs: every frame in which a truth and a track are within reach (for IDF1)
        for i, j in zip(*np.nonzero(d <= max_distance_m), strict=True):
            key = (gt[int(i)][0], hyp[int(j)][0])
            pair_hits[key] = pair_hits.get(key, 0) + 1
        # CLEAR MOT: keep last frame's matches where still valid, then match the rest at least cost
        matched: dict[int, int] = {}
        hyp_index = {p[0]: j for j, p in enumerate(hyp)}
        for i, p in enumerate(gt):
            j = hyp_index.get(last_match.get(p[0], object()))
            if j is not None and d[i, j] <= max_distance_m and j not in matched.values():
                matched[i] = j
        free_g = [i for i in range(len(gt)) if i not in matched]
        free_h = [j for j in range(len(hyp)) if j not in matched.values()]
        if free_g and free_h:
            sub = d[np.ix_(free_g, free_h)]
            cost = np.where(sub <= max_distance_m, sub, big)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] < big:
                    matched[free_g[int(r)]] = free_h[int(c)]
        for i, j in matched.items():
            gid, hid = gt[i][0], hyp[j][0]
            if gid in last_match and last_match[gid] != hid:
                switches += 1
            last_match[gid] = hid
            err_sum += float(d[i, j])
        matches += len(matched)
        misses += len(gt) - len(matched)
        fps += len(hyp) - len(matched)

    # IDF1: one track per truth identity (and vice versa), chosen to agree on the most frames
    gids, hids = list(gt_count), list(hyp_count)
    idtp = 0
    if gids and hids:
        gain = np.zeros((len(gids), len(hids)))
        gi = {g: k for k, g in enumerate(gids)}
        hi = {h: k for k, h in enumerate(hids)}
        for (g, h), n in pair_hits.items():
            gain[gi[g], hi[h]] = n
        rows, cols = linear_sum_assignment(-gain)
        idtp = int(sum(gain[r, c] for r, c in zip(rows, cols, strict=True)))
    idf1 = 2 * idtp / (n_gt + n_hyp) if n_gt + n_hyp else 1.0
    return TrackingScore(
        frames=len(frames),
        truth_points=n_gt,
        track_points=n_hyp,
        matches=matches,
        misses=misses,
        false_positives=fps,
        id_switches=switches,
        mota=1.0 - (misses + fps + switches) / n_gt if n_gt else math.nan,
        idf1=idf1,
        id_precision=idtp / n_hyp if n_hyp else math.nan,
        id_recall=idtp / n_gt if n_gt else math.nan,
        mean_error_m=err_sum / matches if matches else math.nan,
        truth_ids=len(gids),
        track_ids=len(hids),
    )
