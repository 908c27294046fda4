"""From raw plate readings to weight events: what changed on which plates, from stable to stable.

A plate is *stable* while its last `stable_window_s` of readings stay within `stable_band_g`. When it
stops being stable, its level just before is kept; when it has been stable again for `settle_s`, the
new level is measured. The change is the difference of two stable levels, so slow drift, a pressing
hand and vibration (which come and go) do not become items; AIM3S measured events the same way
(field notes). Plate changes on one shelf that overlap in time on neighbouring plates form one
event; changes on plates further apart stay separate events (two shoppers at one shelf).

Pure domain code: feed it samples, take events out. No I/O, no clocks.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


def readings_array(samples: list[list[float | None]]) -> NDArray[np.float64]:
    """A batch's readings as a samples x plates array (None, no reading: NaN). Most batches have no gap
    and are read straight into the array, about a third faster than numpy's nested-list conversion."""
    rows = len(samples)
    try:
        flat = np.fromiter(itertools.chain.from_iterable(samples), dtype=float, count=rows * len(samples[0]))
        return flat.reshape(rows, -1)
    except (TypeError, ValueError, IndexError):  # a None, ragged rows or none at all: numpy's conversion says
        return np.asarray(samples, dtype=float)


@dataclass(frozen=True)
class WeightEventParams:
    stable_window_s: float = 0.3
    """How long readings must stay inside the band for a plate to count as stable."""
    stable_band_g: float = 8.0
    """Largest max-min spread of a stable window: ~6.5 noise sigmas at the default 1.2 g noise."""
    settle_s: float = 0.5
    """How long a plate must stay stable after activity before its new level is measured."""
    level_s: float = 1.0
    """Stable readings averaged into a plate's level (longer averages, less noise; shorter, less drift)."""
    min_plate_change_g: float = 5.0
    """A plate contributes to an event when its level moved this much (AIM3S: 5 g)."""
    join_gap_s: float = 0.3
    """Plate changes on neighbouring plates closer than this in time belong to one event."""
    neighbour_plates: int = 1
    """How many plates apart changes may lie and still be one event (a unit may lie across two plates).
    A hand taking from plates further apart gives two events for the same shopper, which is harmless;
    joining them would merge two shoppers reaching two plates apart."""
    max_hand_s: float = 15.0
    """A curtain reporting a hand for longer than this is taken as stuck and ignored (the engine's sensor
    health flags it from then on). The longest reach in the sample recordings is 8.7 s (an item held on
    the shelf; the generator holds up to 10 s); every second a stuck hand is waited for holds back the
    whole shelf's events, and a cart may close meanwhile."""


@dataclass(frozen=True)
class PlateChange:
    plate_id: str
    plate_index: int
    start_ns: int
    end_ns: int
    delta_g: float
    before_g: float
    after_g: float


@dataclass(frozen=True)
class WeightEvent:
    """A settled change on one shelf: `plate_deltas_g` in grams per plate (negative: taken away)."""

    event_id: str
    shelf_id: str
    start_ns: int
    end_ns: int
    changes: tuple[PlateChange, ...]

    @property
    def plate_deltas_g(self) -> dict[str, float]:
        return {c.plate_id: c.delta_g for c in self.changes}

    @property
    def total_g(self) -> float:
        return sum(c.delta_g for c in self.changes)


@dataclass
class _PlateState:
    index: int
    plate_id: str
    window: deque[float]
    stable_history: deque[float]
    active_since_ns: int | None = None
    level_before: float | None = None
    settled_samples: list[float] = field(default_factory=list)
    settled_since_ns: int | None = None
    last_unstable_ns: int | None = None


class ShelfWeightEventDetector:
    """Finds weight events on one shelf. Feed `add_batch` in time order; it returns finished events."""

    _ignored: frozenset[int] = frozenset()
    """Plates known dead (`ignore_plate`): their endless activity holds no neighbour back."""

    def __init__(
        self, shelf_id: str, plate_ids: list[str], rate_hz: float, params: WeightEventParams | None = None
    ) -> None:
        self.shelf_id = shelf_id
        self.params = p = params or WeightEventParams()
        self.rate_hz = rate_hz
        self.window_n = max(3, round(p.stable_window_s * rate_hz))
        self.settle_n = max(self.window_n, round(p.settle_s * rate_hz))
        self.level_n = max(self.window_n, round(p.level_s * rate_hz))
        self.plates = [
            _PlateState(i, pid, deque(maxlen=self.window_n), deque(maxlen=self.level_n + self.window_n))
            for i, pid in enumerate(plate_ids)
        ]
        self.recent_n = self.level_n + self.window_n
        self._recent = np.full((self.recent_n, len(self.plates)), np.nan)
        """The last `recent_n` raw readings of every plate (NaN until seen): as many as a plate's
        `stable_history` holds, so a quiet plate's deques can be brought up to date from it."""
        self._unsynced = np.zeros(len(self.plates), dtype=np.int64)
        """Per plate, how many of the newest readings (all quiet) are not yet in its deques."""
        self._idle_full = np.zeros(len(self.plates), dtype=bool)
        """Per plate: idle (no change under way) with a full window, so a quiet batch leaves it idle."""
        self._pending: list[PlateChange] = []
        self._count = 0
        self.last_ns = 0
        self._hands: dict[float, int] = {}  # hand position along the shelf -> since when (ns)

    def curtain(self, t_ns: int, event: str, x_m: float) -> None:
        """A hand entered or left the shelf front. While a hand is in, no plate's level is trusted:
        a steadily pressing hand looks stable but is not a new load."""
        if event == "enter":
            self._hands[round(x_m, 3)] = t_ns
        elif self._hands:
            # the leave matches the nearest open hand (curtains report where the beam cleared)
            nearest = min(self._hands, key=lambda x: abs(x - x_m))
            del self._hands[nearest]

    def drop_hands(self) -> None:
        """The curtain is stuck: stop waiting for the hands it reported."""
        self._hands.clear()

    def ignore_plate(self, plate_id: str, ignored: bool = True) -> None:
        """A plate that gives no readings stays 'active' for ever: while ignored, its neighbours' changes
        are emitted without waiting for it to settle."""
        index = self.plate_ids.index(plate_id)
        self._ignored = self._ignored | {index} if ignored else self._ignored - {index}

    def _hand_in(self, t_ns: int) -> bool:
        limit = round(self.params.max_hand_s * 1e9)
        for x, since in list(self._hands.items()):
            if t_ns - since > limit:
                del self._hands[x]  # stuck or missed leave: stop waiting for it
        return bool(self._hands)

    @property
    def plate_ids(self) -> list[str]:
        return [p.plate_id for p in self.plates]

    def add_batch(
        self,
        t_ns: Sequence[int] | NDArray[np.int64],
        values: NDArray[np.float64] | list[list[float | None]] | list[list[float]],
    ) -> list[WeightEvent]:
        """`values[i][j]` is plate j at time `t_ns[i]` (None or NaN: no reading). Returns the events
        that finished."""
        vals = np.asarray(values, dtype=float)
        times = t_ns  # a range from the engine: no array needed unless a plate is stepped
        if vals.ndim != 2 or vals.shape[1] != len(self.plates) or len(times) != len(vals):
            raise ValueError(f"shelf {self.shelf_id}: expected samples x {len(self.plates)} plates")
        if not len(times):
            return self._finish_events(self.last_ns)
        # Most plates sit still most of the time: where every window in this batch stays in band and
        # the plate is idle, nothing happens but its deques taking the readings, so they are only
        # counted, and taken from `_recent` when the plate next needs them (`_sync`). The spread of the
        # last window_n - 1 readings and the batch together bounds every window's spread: one max and
        # one min per plate instead of one per window (a plate just over the band goes sample by sample).
        n = len(vals)
        ext = np.concatenate((self._recent, vals))
        span = ext[len(ext) - n - (self.window_n - 1) :]
        quiet = (span.max(axis=0) - span.min(axis=0)) <= self.params.stable_band_g  # NaN anywhere: never quiet
        bulk = quiet & self._idle_full
        stepped: list[int] = [] if bulk.all() else np.flatnonzero(~bulk).tolist()
        if stepped:
            step_times = [int(t) for t in times]
            for j in stepped:
                plate = self.plates[j]
                self._sync(plate)
                for t, x in zip(step_times, vals[:, j].tolist(), strict=True):
                    self._step(plate, t, x)
                self._idle_full[j] = self._idle_with_full_window(plate)
        self._unsynced += n
        if stepped:
            self._unsynced[stepped] = 0  # their deques took this batch sample by sample
        self._recent = ext[n:]
        self.last_ns = int(times[-1])
        return self._finish_events(self.last_ns)

    def _idle_with_full_window(self, plate: _PlateState) -> bool:
        """No change under way and a full window: a quiet batch leaves the plate as it is (`_idle_full`)."""
        return plate.active_since_ns is None and len(plate.window) == self.window_n

    def _sync(self, plate: _PlateState) -> None:
        """Put the readings a plate took in bulk into its window and stable history (deques that keep
        at most `recent_n`, so older ones would fall out anyway)."""
        k = min(int(self._unsynced[plate.index]), self.recent_n)
        if k:
            readings = self._recent[self.recent_n - k :, plate.index].tolist()
            plate.window.extend(readings)
            plate.stable_history.extend(readings)
            self._unsynced[plate.index] = 0

    def __setstate__(self, state: dict[str, object]) -> None:
        """A snapshot saved before the lazy deques kept `_tail` (the last window_n - 1 readings) only."""
        self.__dict__.update(state)
        tail = state.get("_tail")
        if isinstance(tail, np.ndarray):
            del self.__dict__["_tail"]
            self.recent_n = self.level_n + self.window_n
            pad = np.full((self.recent_n - len(tail), len(self.plates)), np.nan)
            self._recent = np.concatenate((pad, tail))
            self._unsynced = np.zeros(len(self.plates), dtype=np.int64)
            self._idle_full = np.array([self._idle_with_full_window(p) for p in self.plates], dtype=bool)

    def _step(self, plate: _PlateState, t: int, x: float) -> None:
        if not math.isfinite(x):
            # a dead or glitching cell reads NaN: treat it as activity, never as a level
            plate.window.clear()
            self._mark_unstable(plate, t)
            return
        plate.window.append(x)
        full = len(plate.window) == self.window_n
        in_band = full and (max(plate.window) - min(plate.window)) <= self.params.stable_band_g
        if plate.active_since_ns is None:
            if in_band:
                plate.stable_history.append(x)
            elif full:
                self._mark_unstable(plate, t)
            return
        # active: wait until the plate has been stable for settle_s, then measure the new level
        if in_band:
            if plate.settled_since_ns is None:
                plate.settled_since_ns = t
                plate.settled_samples = list(plate.window)
            else:
                plate.settled_samples.append(x)
            if len(plate.settled_samples) >= self.settle_n and not self._hand_in(t):
                self._close_plate(plate, t)
        else:
            plate.settled_since_ns = None
            plate.settled_samples = []
            plate.last_unstable_ns = t

    def _mark_unstable(self, plate: _PlateState, t: int) -> None:
        if plate.active_since_ns is None:
            # the window that just broke the band holds the start of the change: leave it out of the level
            history = list(plate.stable_history)[: -self.window_n] or list(plate.stable_history)
            plate.level_before = float(np.mean(history[-self.level_n :])) if history else None
            plate.active_since_ns = t - round(self.window_n / self.rate_hz * 1e9)
        plate.settled_since_ns = None
        plate.settled_samples = []
        plate.last_unstable_ns = t

    def _close_plate(self, plate: _PlateState, t: int) -> None:
        after = float(np.mean(plate.settled_samples[-self.level_n :]))
        before = plate.level_before
        start = plate.active_since_ns
        end = plate.settled_since_ns or t
        assert start is not None
        plate.active_since_ns = None
        plate.settled_since_ns = None
        plate.stable_history.clear()
        plate.stable_history.extend(plate.settled_samples[-self.level_n :])
        plate.settled_samples = []
        if before is None:
            return  # no level known from before (start-up): nothing to compare with
        delta = after - before
        if abs(delta) >= self.params.min_plate_change_g:
            self._pending.append(PlateChange(plate.plate_id, plate.index, start, end, delta, before, after))

    def _finish_events(self, now_ns: int) -> list[WeightEvent]:
        """Group pending plate changes; emit a group once no neighbour can still join it."""
        if not self._pending:
            return []
        gap = round(self.params.join_gap_s * 1e9)
        reach = self.params.neighbour_plates
        groups: list[list[PlateChange]] = []
        for change in sorted(self._pending, key=lambda c: (c.start_ns, c.plate_index)):
            # every group it touches becomes one: a unit lying across plates 4 and 5 joins plate 3's
            # change (another unit of the same pick) to plate 5's, though 3 and 5 are not neighbours
            touched = [
                g
                for g in groups
                if any(
                    abs(c.plate_index - change.plate_index) <= reach
                    and change.start_ns <= c.end_ns + gap
                    and c.start_ns <= change.end_ns + gap
                    for c in g
                )
            ]
            if not touched:
                groups.append([change])
                continue
            first, *others = touched
            first.extend([c for g in others for c in g] + [change])
            groups = [g for g in groups if all(g is not o for o in others)]
        done: list[WeightEvent] = []
        keep: list[PlateChange] = []
        for g in groups:
            indices = {c.plate_index for c in g}
            latest = max(c.end_ns for c in g)
            neighbour_active = any(
                p.active_since_ns is not None
                and p.index not in self._ignored
                and any(abs(p.index - i) <= reach for i in indices)
                for p in self.plates
            )
            if neighbour_active or now_ns - latest < gap:
                keep.extend(g)
                continue
            self._count += 1
            g.sort(key=lambda c: c.plate_index)
            done.append(
                WeightEvent(
                    f"{self.shelf_id}-e{self._count}", self.shelf_id, min(c.start_ns for c in g), latest, tuple(g)
                )
            )
        self._pending = keep
        return sorted(done, key=lambda e: e.start_ns)

    def flush(self) -> list[WeightEvent]:
        """At the end of a recording: emit what is pending (plates still active are dropped)."""
        return self._finish_events(self.last_ns + 10**12)
