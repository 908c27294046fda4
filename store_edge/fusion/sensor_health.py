"""Which sensors the fusion can trust right now: a plate frozen on one value or giving no readings, a
light curtain stuck on.

A real load cell has noise (field notes: ~1.2 g per sample on a 20 kg cell, read in ~1 g steps), so a
healthy plate never reads exactly the same value for long: on the sample recordings the longest run of
identical readings is 16 samples (0.27 s at 60 Hz) over 1,000,000+ samples per plate set. A plate that
repeats one reading for `frozen_s` is frozen (a stuck ADC, a cable fault); one whose batches all miss a
reading (NaN/None) for `no_reading_s` is dead. A short dropout is neither: the event detector already
treats a missing reading as activity, never as a level.

A curtain is stuck on when a hand it reported has not left after the limit the event detector waits for
a hand (`WeightEventParams.max_hand_s`, passed in): one limit decides both. Sooner when the cameras say
nobody has stood where that hand is for `unattended_s` (the engine, which knows where people are, asks
`open_hands` and calls `stuck_unattended`). From then on its reports are not trusted until it reports a
hand leaving again.

Pure domain code: feed it what the engine sees, ask what is faulty. No I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

NS = 1_000_000_000

FaultKind = Literal["frozen", "no_reading", "stuck_on"]


@dataclass(frozen=True)
class SensorHealthParams:
    frozen_s: float = 1.0
    """A plate repeating exactly one reading this long is frozen. Healthy plates in the sample
    recordings repeat a reading for 0.27 s at most; with a coarser ADC step than the simulator's 1 g
    (field notes: 2-5 g on some HX711 set-ups) a quiet plate repeats far longer: raise this there."""
    no_reading_s: float = 0.5
    """A plate missing readings (NaN/None) from its first missing one to its last, in every batch
    between, for this long is dead; shorter is a dropout."""
    keep_ended: int = 1000
    """Ended faults kept for the engine to ask about (the newest)."""
    unattended_s: float = 5.0
    """A curtain's hand nobody has stood within `attended_m` of for this long (by the tracks) is a
    curtain stuck on: a reach needs a person at the shelf. Longer than a tracker's usual dropout."""
    attended_m: float = 1.5
    """How far from the shelf front where a hand is a person may stand and still be the one reaching
    (an arm's reach plus the tracker's position error)."""


@dataclass(frozen=True)
class SensorFault:
    """One period in which a sensor could not be trusted. `until_ns` is None while it lasts."""

    kind: FaultKind
    device_id: str
    """The device that reported it: the shelf's scale or its curtain."""
    shelf_id: str
    plate_id: str | None
    """The plate, for a scale's fault; None for a curtain."""
    since_ns: int
    until_ns: int | None = None

    @property
    def sensor(self) -> str:
        """The plate id, or the curtain's device id."""
        return self.plate_id or self.device_id

    def covers(self, start_ns: int, end_ns: int, after_ns: int = 0) -> bool:
        """Whether the period [start_ns, end_ns] overlaps the fault (extended by `after_ns` past its end)."""
        return self.since_ns <= end_ns and (self.until_ns is None or start_ns <= self.until_ns + after_ns)

    def describe(self) -> str:
        """What staff read on a ticket: the device, what is wrong with it, since when (UTC)."""
        what = {"frozen": "frozen on one reading", "no_reading": "giving no readings", "stuck_on": "stuck on"}
        name = f"plate {self.plate_id} ({self.device_id})" if self.plate_id else f"light curtain {self.device_id}"
        since = datetime.fromtimestamp(self.since_ns / NS, tz=UTC).strftime("%H:%M:%S")
        return f"{name} {what[self.kind]} since {since} UTC"


@dataclass
class _ShelfPlates:
    device_id: str
    plate_ids: list[str]
    prev: NDArray[np.float64] | None = None
    """The batch before (a run of identical readings may have begun in it)."""
    prev_t0_ns: int = 0
    runs: dict[int, tuple[float, int]] = field(default_factory=dict)
    """Plate index -> (reading, since when) of plates whose whole last batch repeated one reading."""
    blanks: dict[int, int] = field(default_factory=dict)
    """Plate index -> since when every batch has missed a reading."""
    faults: dict[int, SensorFault] = field(default_factory=dict)
    """Plate index -> its fault in force."""


@dataclass
class _Curtain:
    device_id: str
    hands: dict[float, int] = field(default_factory=dict)
    """Open hands: where along the shelf -> since when."""
    fault: SensorFault | None = None


class SensorHealthMonitor:
    """Watches plate readings and curtain reports; says which plate or curtain is faulty and since when.

    `weight`, `curtain` and `check_curtain` return the faults that began or ended with that input (an
    ended one has `until_ns` set), so the caller can act on a change once."""

    def __init__(self, hand_limit_s: float, params: SensorHealthParams | None = None) -> None:
        self.params = p = params or SensorHealthParams()
        self.hand_limit_ns = round(hand_limit_s * NS)
        self.frozen_ns = round(p.frozen_s * NS)
        self.no_reading_ns = round(p.no_reading_s * NS)
        self._shelves: dict[str, _ShelfPlates] = {}
        self._curtains: dict[str, _Curtain] = {}
        self.ended: list[SensorFault] = []

    # --- plates --------------------------------------------------------------------------------
    def weight(
        self,
        shelf_id: str,
        device_id: str,
        plate_ids: list[str],
        t0_ns: int,
        period_ns: int,
        values: NDArray[np.float64],
    ) -> list[SensorFault]:
        """One batch of a shelf's readings: `values[i][j]` is plate j at t0_ns + i * period_ns (NaN: none)."""
        n = len(values)
        if n == 0:
            return []
        st = self._shelves.get(shelf_id)
        if st is None or st.plate_ids != plate_ids:
            st = self._shelves[shelf_id] = _ShelfPlates(device_id, list(plate_ids))
        st.device_id = device_id
        # the usual batch: every plate's readings vary and none is missing (NaN spreads into the spread)
        spread = np.maximum.reduce(values, axis=0) - np.minimum.reduce(values, axis=0)
        if not (st.runs or st.blanks or st.faults) and np.minimum.reduce(spread) > 0:
            st.prev, st.prev_t0_ns = values, t0_ns
            return []
        end_ns = t0_ns + n * period_ns
        changes: list[SensorFault] = []
        watch = set(st.runs) | set(st.blanks) | set(st.faults) | {int(j) for j in np.flatnonzero(~(spread > 0))}
        for j in sorted(watch):
            column = values[:, j]
            blank_end = 0
            old_run = st.runs.get(j)
            if np.isnan(spread[j]):
                st.runs.pop(j, None)
                missing = np.isnan(column)
                st.blanks.setdefault(j, t0_ns + int(np.argmax(missing)) * period_ns)
                blank_end = t0_ns + (n - int(np.argmax(missing[::-1]))) * period_ns
            else:
                st.blanks.pop(j, None)
                value = float(column[0])
                if spread[j] > 0:
                    st.runs.pop(j, None)
                elif old_run is None or old_run[0] != value:
                    st.runs[j] = (value, self._run_start(st, j, value, t0_ns, period_ns))
            since = st.blanks.get(j)
            kind: FaultKind | None = None
            if since is not None and blank_end - since >= self.no_reading_ns:
                kind = "no_reading"
            elif j in st.runs and end_ns - st.runs[j][1] >= self.frozen_ns:
                kind, since = "frozen", st.runs[j][1]
            current = st.faults.get(j)
            if current is not None and current.kind == kind:
                continue
            if current is not None:
                # a frozen plate is back at its first new reading, a dead one at its first whole batch
                until = t0_ns
                if current.kind == "frozen" and old_run is not None:
                    until += int(np.argmax(column != old_run[0])) * period_ns
                changes.append(self._end(current, until))
                del st.faults[j]
            if kind is not None and since is not None:
                st.faults[j] = SensorFault(kind, device_id, shelf_id, plate_ids[j], since)
                changes.append(st.faults[j])
        st.prev, st.prev_t0_ns = values, t0_ns
        return changes

    @staticmethod
    def _run_start(st: _ShelfPlates, j: int, value: float, t0_ns: int, period_ns: int) -> int:
        """When a run of `value` that fills this batch began: here, or among the last readings before."""
        if st.prev is None:
            return t0_ns
        before = st.prev[:, j]
        k = len(before)
        while k > 0 and before[k - 1] == value:
            k -= 1
        return st.prev_t0_ns + k * period_ns if k < len(before) else t0_ns

    # --- curtains ------------------------------------------------------------------------------
    def curtain(
        self, shelf_id: str, device_id: str, t_ns: int, event: str, x_m: float
    ) -> tuple[bool, list[SensorFault]]:
        """A curtain's report. Returns whether to use it (not while the curtain is stuck) and the faults
        that began or ended. A stuck curtain is back when it reports a hand leaving."""
        c = self._curtains.setdefault(shelf_id, _Curtain(device_id))
        c.device_id = device_id
        changes = self.check_curtain(shelf_id, t_ns)
        if c.fault is not None:
            if event == "leave":
                changes.append(self._end(c.fault, t_ns))
                c.fault = None
            return False, changes
        if event == "enter":
            c.hands[round(x_m, 3)] = t_ns
        elif c.hands:
            del c.hands[min(c.hands, key=lambda x: abs(x - x_m))]
        return True, changes

    def check_curtain(self, shelf_id: str, now_ns: int) -> list[SensorFault]:
        """Flag the shelf's curtain stuck when a hand it reported has been in longer than the limit."""
        c = self._curtains.get(shelf_id)
        if c is None or c.fault is not None or not c.hands:
            return []
        oldest = min(c.hands.values())
        if now_ns - oldest <= self.hand_limit_ns:
            return []
        return [self._stuck(shelf_id, c, oldest)]

    def open_hands(self) -> list[tuple[str, float, int]]:
        """(shelf, where along it, since when) of each hand a trusted curtain reports in now."""
        return [
            (shelf, x, since) for shelf, c in self._curtains.items() if c.fault is None for x, since in c.hands.items()
        ]

    def stuck_unattended(self, shelf_id: str, since_ns: int) -> SensorFault | None:
        """The cameras say nobody stood where the shelf's curtain has a hand in: it is stuck on, since the
        hand went in. None if it is already known to be."""
        c = self._curtains.get(shelf_id)
        if c is None or c.fault is not None:
            return None
        return self._stuck(shelf_id, c, since_ns)

    def _stuck(self, shelf_id: str, c: _Curtain, since_ns: int) -> SensorFault:
        c.fault = SensorFault("stuck_on", c.device_id, shelf_id, None, since_ns)
        c.hands.clear()
        return c.fault

    def curtain_stuck(self, shelf_id: str) -> SensorFault | None:
        """The shelf's curtain fault in force, if any."""
        c = self._curtains.get(shelf_id)
        return c.fault if c else None

    # --- asking --------------------------------------------------------------------------------
    def _end(self, fault: SensorFault, until_ns: int) -> SensorFault:
        ended = replace(fault, until_ns=max(until_ns, fault.since_ns))
        self.ended.append(ended)
        del self.ended[: max(0, len(self.ended) - self.params.keep_ended)]
        return ended

    def active(self) -> list[SensorFault]:
        """Faults in force now, oldest first."""
        out = [f for st in self._shelves.values() for f in st.faults.values()]
        out += [c.fault for c in self._curtains.values() if c.fault is not None]
        return sorted(out, key=lambda f: (f.since_ns, f.sensor))

    def faults_on(self, shelf_id: str) -> list[SensorFault]:
        """The shelf's faults, ended (the newest `keep_ended` of all) and in force."""
        out = [f for f in self.ended if f.shelf_id == shelf_id]
        st = self._shelves.get(shelf_id)
        if st is not None:
            out += st.faults.values()
        c = self._curtains.get(shelf_id)
        if c is not None and c.fault is not None:
            out.append(c.fault)
        return out

    def report(self) -> list[tuple[str, int, FaultKind]]:
        """(sensor, since_ns, kind) of every fault in force: a plate id or a curtain's device id."""
        return [(f.sensor, f.since_ns, f.kind) for f in self.active()]
