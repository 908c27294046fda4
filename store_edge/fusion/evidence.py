"""What staff need to decide a review ticket: the raw weight trace of the plates involved, and where the
candidate shoppers stood and reached while it happened. Pure domain code: the live worker feeds it the
readings it hands the engine, and attaches the evidence to the ticket it publishes and sends to the
cloud with the cart."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from store_edge.fusion.shoppers import ShopperCandidate, ShopperRegistry, samples_between
from store_edge.protocol.messages import PlateTrace, ShopperPath, TicketEvidence

NS = 1_000_000_000


@dataclass
class _ShelfBuffer:
    plate_ids: list[str]
    period_ns: int
    batches: deque[tuple[int, NDArray[np.float32]]] = field(default_factory=deque)
    """(t0 ns, samples x plates) in arrival order."""


class WeightTraceBuffer:
    """The last `keep_s` seconds of every shelf's raw readings (float32: a 1,000-shelf store at 60 Hz
    holds about 30 MB for 10 s)."""

    def __init__(self, keep_s: float = 10.0) -> None:
        self.keep_ns = round(keep_s * NS)
        self.shelves: dict[str, _ShelfBuffer] = {}

    def add(
        self, shelf_id: str, plate_ids: list[str], t0_ns: int, period_ns: int, samples: NDArray[np.float64]
    ) -> None:
        """`samples[i][j]`: plate j at t0_ns + i * period_ns (NaN: no reading)."""
        buf = self.shelves.get(shelf_id)
        if buf is None or buf.plate_ids != plate_ids or buf.period_ns != period_ns:
            buf = self.shelves[shelf_id] = _ShelfBuffer(list(plate_ids), period_ns)
        buf.batches.append((t0_ns, samples.astype(np.float32)))
        newest = t0_ns + len(samples) * period_ns
        while buf.batches and buf.batches[0][0] + len(buf.batches[0][1]) * period_ns < newest - self.keep_ns:
            buf.batches.popleft()

    def traces(self, shelf_id: str, plate_ids: list[str], start_ns: int, end_ns: int) -> list[PlateTrace]:
        """Readings of `plate_ids` from `start_ns` to `end_ns`, as far as they are still held."""
        buf = self.shelves.get(shelf_id)
        if buf is None:
            return []
        rows: list[NDArray[np.float32]] = []
        first_ns: int | None = None
        for t0, samples in buf.batches:
            times = t0 + np.arange(len(samples), dtype=np.int64) * buf.period_ns
            keep = (times >= start_ns) & (times <= end_ns)
            if keep.any():
                if first_ns is None:
                    first_ns = int(times[keep][0])
                rows.append(samples[keep])
        if first_ns is None:
            return []
        block = np.vstack(rows)
        out = []
        for pid in plate_ids:
            if pid in buf.plate_ids:
                column = block[:, buf.plate_ids.index(pid)]
                grams = [None if np.isnan(g) else round(float(g), 1) for g in column]
                out.append(PlateTrace(plate_id=pid, t0_ns=first_ns, period_ns=buf.period_ns, grams=grams))
        return out


def shopper_paths(
    registry: ShopperRegistry, candidates: list[ShopperCandidate], start_ns: int, end_ns: int
) -> list[ShopperPath]:
    """Where each candidate's track was from `start_ns` to `end_ns` (and its hand, where seen)."""
    out = []
    for c in candidates:
        hist = registry.tracks.get(c.track_id) if c.track_id else None
        samples = samples_between(hist.samples, start_ns, end_ns) if hist else []
        out.append(
            ShopperPath(
                visit_id=c.visit_id,
                track_id=c.track_id,
                probability=round(c.probability, 4),
                points=[(t, round(x, 3), round(y, 3)) for t, x, y, _ in samples],
                hands=[(t, round(h[0], 3), round(h[1], 3), round(h[2], 3)) for t, _, _, h in samples if h],
            )
        )
    return out


def ticket_evidence(
    traces: WeightTraceBuffer,
    registry: ShopperRegistry,
    shelf_id: str,
    plate_ids: list[str],
    candidates: list[ShopperCandidate],
    start_ns: int,
    end_ns: int,
    margin_s: float = 1.5,
) -> TicketEvidence:
    """The evidence of one ticket: the plates' readings and the candidates' paths from `margin_s`
    before the event to `margin_s` after it (the level before and after is what a reviewer compares)."""
    lo, hi = start_ns - round(margin_s * NS), end_ns + round(margin_s * NS)
    return TicketEvidence(
        traces=traces.traces(shelf_id, plate_ids, lo, hi),
        shoppers=shopper_paths(registry, candidates, lo, hi),
    )
