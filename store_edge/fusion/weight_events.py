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

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


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
    stable: bool = False
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
        self._tail = np.full((self.window_n - 1, len(self.plates)), np.nan)
        """The last window_n - 1 raw readings of every plate (NaN until seen)."""
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
        t_ns: NDArray[np.int64] | list[int],
        values: NDArray[np.float64] | list[list[float | None]] | list[list[float]],
    ) -> list[WeightEvent]:
        """`values[i][j]` is plate j at time `t_ns[i]` (None or NaN: no reading). Returns the events
        that finished."""
        vals = np.asarray(values, dtype=float)
        times = np.asarray(t_ns, dtype=np.int64)
        if vals.ndim != 2 or vals.shape[1] != len(self.plates) or len(times) != len(vals):
            raise ValueError(f"shelf {self.shelf_id}: expected samples x {len(self.plates)} plates")
        if not len(times):
            return self._finish_events(self.last_ns)
        # Most plates sit still most of the time: where every window in this batch stays in band and
        # the plate is idle, its state only moves forward in bulk. The rest go sample by sample.
        # The spread of the tail and the batch together bounds every window's spread: one max and one
        # min per plate instead of one per window (a plate just over the band goes sample by sample).
        ext = np.concatenate((self._tail, vals))
        quiet = (ext.max(axis=0) - ext.min(axis=0)) <= self.params.stable_band_g  # NaN anywhere: never quiet
        self._tail = ext[len(ext) - (self.window_n - 1) :]
        for j, plate in enumerate(self.plates):
            column = vals[:, j]
            if quiet[j] and plate.active_since_ns is None and len(plate.window) == self.window_n:
                readings = column.tolist()
                plate.stable = True
                plate.window.extend(readings)
                plate.stable_history.extend(readings)
                continue
            for i in range(len(column)):
                self._step(plate, int(times[i]), float(column[i]))
        self.last_ns = int(times[-1])
        return self._finish_events(self.last_ns)

    def _step(self, plate: _PlateState, t: int, x: float) -> None:
        if not np.isfinite(x):
            # a dead or glitching cell reads NaN: treat it as activity, never as a level
            plate.window.clear()
            self._mark_unstable(plate, t)
            return
        plate.window.append(x)
        full = len(plate.window) == self.window_n
        in_band = full and (max(plate.window) - min(plate.window)) <= self.params.stable_band_g
        if plate.active_since_ns is None:
            if in_band:
                plate.stable = True
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
        plate.stable = False
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
        plate.stable = True
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
            joined = None
            for g in groups:
                if any(
                    abs(c.plate_index - change.plate_index) <= reach
                    and change.start_ns <= c.end_ns + gap
                    and c.start_ns <= change.end_ns + gap
                    for c in g
                ):
                    joined = g
                    break
            if joined is None:
                groups.append([change])
            else:
                joined.append(change)
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
