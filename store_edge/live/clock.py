"""Device clock offsets: how far each device's clock is off the store's, estimated from the stream, and
its timestamps corrected before the merge (part of #9: device clocks skewed by up to 2 s).

Pure domain code, like `ingest`: no wall clock. What the worker knows of "now" when a message arrives
is the stream itself: the **stream clock** is the median of the newest timestamps of the reference
devices (the store's scales: many, streaming five times a second, each on its own clock). Their
timestamps advance together, so the median is the clock of the middle one of them: the majority's,
not any single device's; a reference whose link stalls, or whose clock is off, moves it by one rank at
most. It exists once `quorum` of the references have spoken. The estimates then depend on nothing but
the order of the messages, so a replay of the journal after a restart (or of a recording) makes the
same corrections as the live run did, and `handle_raw` needs no clock. The price is resolution: a
periodic device keeps its phase against the references' 200 ms period, so an estimate is good to
about +-100 ms, not to the network delay. (The receive wall time of each message is in the journal but
is not handed back on recovery; estimates from it would be finer. Not built.)

Each sample is a timestamp's lead over the stream clock when it arrives: its device's offset, plus
where the references stood in their period, minus its network delay. A device's status messages are
samples too (its birth at connect: a curtain or a gate may say nothing else before its first event).
A device's estimate is confident once at least `min_samples` of its samples, and at least half of
them, agree within `agree_s` over `jump_span_s` of the device's own time; the estimate is then the
median of its last `window` samples. A stalled link delivers its messages together, their leads rising
by the device's period: they never agree over a span, so a stall is not taken for a slow clock. Once
confident, a sample further than `jump_s` from the estimate is kept apart; only when such samples
agree with each other over `jump_span_s` is it a clock that jumped, and the estimate starts again
from them.

Offsets are relative to the **centre**, the median estimate of the references (their common bias, the
period and the delay, cancels out). A device is corrected once its estimate is confident and its
offset exceeds `dead_band_s`: a fault-free store (offsets within a period) is not touched. Until then
its timestamps go on as stamped, except that one further ahead of the stream clock than the dead band
is capped there: one fast clock must not carry the merge into its future, where every device behind
it would be late. A correction never reorders a device's own messages: a timestamp that would fall at
or behind the device's previous one (a correction that went down, a clock stepped back and not yet
confirmed) is put just after it.

What it cannot do: a device's first timestamps, until its estimate is confident, are not corrected
(with its birth seen, a quiet device is corrected from its first event on; without, from its third);
a clock that jumps is followed only after `jump_span_s` of its messages. Offsets smaller than the dead
band stay, and corrections are good to about +-100 ms. A store with fewer than `quorum` of its scales
talking has no stream clock, and nothing is corrected.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from store_edge.protocol.messages import Message, WeightBatch

NS = 1_000_000_000
MAX_EARLY = 10_000
"""Timestamps kept from before the stream clock exists (a store's devices' births, at most)."""


@dataclass(frozen=True)
class ClockParams:
    enabled: bool = True
    """False: timestamps are trusted as sent (nothing estimated, nothing corrected)."""
    window: int = 48
    """Samples per device the estimate is the median of (about 10 s of a scale's messages)."""
    min_samples: int = 2
    """Samples agreeing within `agree_s` over `jump_span_s` (and at least half of the device's) before
    an estimate is used; a status message at connect counts."""
    agree_s: float = 0.3
    """How closely samples of one clock agree: the references' period (a scale's 200 ms) and jitter."""
    dead_band_s: float = 0.25
    """Offsets smaller than this are left alone (within what the merge's jitter and the engine absorb)."""
    hysteresis_s: float = 0.1
    """A correction in use changes only when the estimate moved by more than this."""
    jump_s: float = 0.5
    """A sample this far from the estimate is kept apart: a stall, or a clock that jumped."""
    jump_span_s: float = 1.0
    """Samples kept apart that agree with each other over this much of the device's own time: it jumped."""
    warn_s: float = 0.5
    """A device whose clock is off by more than this is logged (once per change of its estimate)."""
    quorum: float = 0.75
    """Share of the references that must have spoken before the stream clock exists, and whose
    estimates must be confident before the centre is taken: the median of a few is not the majority's
    (a dead scale or two do not stop it)."""
    reestimate_every: int = 8
    """Once confident, the median is taken again every this many samples (and after a jump)."""


@dataclass
class DeviceClock:
    """What is known of one device's clock."""

    samples: deque[tuple[int, int]]
    """Its last samples: (lead of its timestamp over the stream clock, the timestamp), in ns."""
    estimate_ns: int | None = None
    """Median of `samples`: the lead of its clock over the stream clock."""
    confident: bool = False
    shift_ns: int = 0
    """Added to its timestamps (0: not corrected)."""
    offset_ns: int | None = None
    """Its clock minus the store's (estimate minus the centre), once confident."""
    pending: int = 0
    """Samples since the median was last taken."""
    apart: list[tuple[int, int]] = field(default_factory=list)
    """Consecutive recent samples far from the estimate: (lead, device timestamp)."""
    last_out: int | None = None
    """Its last corrected timestamp handed on."""
    last_boot: str | None = None
    last_seq: int | None = None
    warned_ns: int | None = None
    """The offset last logged (None: within `warn_s`)."""
    reported_ns: int | None = None
    """The offset last reported in a `ClockChange`."""
    centre_version: int = -1
    """The centre its correction was last worked out against."""


@dataclass(frozen=True)
class ClockChange:
    """A device's estimate is new or moved, or its correction changed (the worker sets its gauge, and
    logs it when `warn`)."""

    device: str
    offset_ns: int
    shift_ns: int
    warn: bool
    """Off by more than `warn_s` (newly, or by a different amount than last logged)."""


class ClockOffsets:
    """Per-device clock offsets against the stream clock; `correct(msg)` observes a message and returns
    it with its timestamps corrected (the same object when nothing changes)."""

    def __init__(self, references: Iterable[str], params: ClockParams | None = None) -> None:
        self.params = p = params or ClockParams()
        self._refs = frozenset(references)
        self._min_refs = max(1, math.ceil(p.quorum * len(self._refs)))
        self._ref_newest: dict[str, int] = {}
        self._ref_sorted: list[int] = []
        """The references' newest timestamps, sorted: the stream clock is their median."""
        self.devices: dict[str, DeviceClock] = {}
        self.centre_ns: int | None = None
        """Median estimate of the confident references."""
        self._centre_dirty = False
        self._centre_version = 0
        self._since_centre = 0
        self.changes: list[ClockChange] = []
        """Changes since the caller last took them (`take_changes`)."""
        self._early: list[tuple[str, int]] = []
        """(device, timestamp) seen before the stream clock existed."""
        self.corrected = 0
        """Messages whose timestamps were changed."""
        self._agree = round(p.agree_s * NS)
        self._dead_band = round(p.dead_band_s * NS)
        self._hysteresis = round(p.hysteresis_s * NS)
        self._jump = round(p.jump_s * NS)
        self._jump_span = round(p.jump_span_s * NS)
        self._warn = round(p.warn_s * NS)

    # --- the stream clock ----------------------------------------------------------------------
    def stream_clock_ns(self) -> int | None:
        """The median of the references' newest timestamps (None until `quorum` of them spoke)."""
        n = len(self._ref_sorted)
        return self._ref_sorted[n // 2] if n >= self._min_refs else None

    def _reference_spoke(self, device: str, ts: int) -> None:
        old = self._ref_newest.get(device)
        if old is not None:
            if ts <= old:
                return
            del self._ref_sorted[bisect.bisect_left(self._ref_sorted, old)]
        self._ref_newest[device] = ts
        bisect.insort(self._ref_sorted, ts)

    # --- estimates -----------------------------------------------------------------------------
    def offset_ns(self, device: str) -> int | None:
        """The device's clock minus the store's, once its estimate is confident."""
        dev = self.devices.get(device)
        return dev.offset_ns if dev is not None else None

    def shift_ns(self, device: str) -> int:
        """What is added to the device's timestamps now."""
        dev = self.devices.get(device)
        return dev.shift_ns if dev is not None else 0

    def take_changes(self) -> list[ClockChange]:
        out, self.changes = self.changes, []
        return out

    def _cluster(self, samples: Iterable[tuple[int, int]]) -> list[tuple[int, int]] | None:
        """The largest set of samples, at least `min_samples` and at least half of them, whose leads
        agree within `agree_s` and which span `jump_span_s` of the device's own time (None if there is
        none). Stalled messages arriving together have leads rising by the device's period: they never
        agree over a span, and two stalls of about the same length are not the majority."""
        ordered = sorted(samples)
        least = max(self.params.min_samples, (len(ordered) + 1) // 2)
        best: list[tuple[int, int]] = []
        lo = 0
        for hi in range(len(ordered)):
            while ordered[hi][0] - ordered[lo][0] > self._agree:
                lo += 1
            group = ordered[lo : hi + 1]
            if len(group) > len(best) and len(group) >= least:
                times = [t for _, t in group]
                if max(times) - min(times) >= self._jump_span:
                    best = group
        return best or None

    def _sample(self, dev: DeviceClock, lead: int, ts: int) -> bool:
        """Add one sample; True if the estimate changed."""
        if not dev.confident or dev.estimate_ns is None:
            dev.samples.append((lead, ts))
            dev.pending += 1
            if len(dev.samples) == dev.samples.maxlen and dev.pending < self.params.reestimate_every:
                return False  # a full window that did not agree: looked at again every few samples
            dev.pending = 0
            cluster = self._cluster(dev.samples)
            if cluster is None:
                return False
            start = cluster
        elif abs(lead - dev.estimate_ns) > self._jump:
            apart = dev.apart
            if apart and (apart[-1][0] > dev.estimate_ns) != (lead > dev.estimate_ns):
                apart.clear()  # on the other side: not the same jump
            apart.append((lead, ts))
            del apart[: -self.params.window]
            cluster = self._cluster(apart)
            if cluster is None:
                return False
            start = cluster  # agreeing with each other over a span of its own time: the clock jumped
        else:
            dev.apart.clear()
            dev.samples.append((lead, ts))
            dev.pending += 1
            if dev.pending < self.params.reestimate_every:
                return False
            start = None
        if start:
            dev.samples.clear()
            dev.samples.extend(start)
            dev.apart.clear()
            dev.confident = True
        dev.pending = 0
        estimate = round(statistics.median(a for a, _ in dev.samples))
        changed = estimate != dev.estimate_ns
        dev.estimate_ns = estimate
        return changed

    def _update_centre(self) -> None:
        """The median estimate of the confident references; taken again at most once per as many
        messages as there are references (a large store's references re-estimate hundreds of times a
        second), or at once while there is none."""
        self._since_centre += 1
        if not self._centre_dirty or (self.centre_ns is not None and self._since_centre < len(self._refs)):
            return
        self._centre_dirty = False
        self._since_centre = 0
        refs = [
            d.estimate_ns
            for name in self._refs
            if (d := self.devices.get(name)) is not None and d.confident and d.estimate_ns is not None
        ]
        if len(refs) >= self._min_refs:
            centre = round(statistics.median(refs))
            if centre != self.centre_ns:
                self.centre_ns = centre
                self._centre_version += 1

    def _update_shift(self, device: str, dev: DeviceClock) -> None:
        centre = self.centre_ns
        dev.centre_version = self._centre_version
        if not dev.confident or dev.estimate_ns is None or centre is None:
            return
        offset = dev.estimate_ns - centre
        dev.offset_ns = offset
        keep = dev.shift_ns != 0 and abs(offset) > self._dead_band // 2
        target = -offset if abs(offset) > self._dead_band or keep else 0
        shifted = abs(target - dev.shift_ns) > self._hysteresis or (target == 0) != (dev.shift_ns == 0)
        if shifted:
            dev.shift_ns = target
        warn = abs(offset) > self._warn and (dev.warned_ns is None or abs(offset - dev.warned_ns) > self._agree)
        if warn:
            dev.warned_ns = offset
        elif abs(offset) < self._warn - self._hysteresis:
            dev.warned_ns = None
        moved = dev.reported_ns is None or abs(offset - dev.reported_ns) > self._hysteresis
        if shifted or warn or moved:
            dev.reported_ns = offset
            self.changes.append(ClockChange(device, offset, dev.shift_ns, warn))

    # --- correction ----------------------------------------------------------------------------
    def observe(self, device: str, ts_ns: int) -> DeviceClock:
        """One timestamp of `device`, in arrival order: a sample of its clock (a device's status
        message is one too: a birth at connect is the only word a quiet device may say for hours)."""
        if not self.params.enabled:
            return self.devices.get(device) or DeviceClock(deque())
        dev, _ = self._observe(device, ts_ns)
        return dev

    def _observe(self, device: str, ts_ns: int) -> tuple[DeviceClock, int | None]:
        """`observe`, and the stream clock the sample was taken against (None: none yet)."""
        if device in self._refs:
            self._reference_spoke(device, ts_ns)
        dev = self.devices.get(device)
        if dev is None:
            dev = self.devices[device] = DeviceClock(deque(maxlen=self.params.window))
        clock = self.stream_clock_ns()
        if clock is None:
            # before the references have spoken: sampled against the stream clock's first value (they
            # arrived before it: their leads are a little low, by the references' first delay)
            if len(self._early) < MAX_EARLY:
                self._early.append((device, ts_ns))
            return dev, None
        if self._early:
            early, self._early = self._early, []
            for name, ts in early:
                self._add(name, self.devices[name], ts - clock, ts)
        self._add(device, dev, ts_ns - clock, ts_ns)
        return dev, clock

    def _add(self, device: str, dev: DeviceClock, lead: int, ts: int) -> None:
        changed = self._sample(dev, lead, ts)
        if changed and device in self._refs:
            self._centre_dirty = True
        self._update_centre()
        if changed or (dev.confident and dev.centre_version != self._centre_version):
            self._update_shift(device, dev)

    def correct(self, msg: Message) -> Message:
        """Observe `msg` (in arrival order) and return it with its timestamps corrected (the same
        object when they stay)."""
        if not self.params.enabled:
            return msg
        ts = msg.header.ts_ns
        dev, _ = self._observe(msg.header.device_id, ts)
        out = ts + dev.shift_ns
        if dev.offset_ns is None and self._ref_sorted:
            # not estimated yet, and ahead of the scales (those that have spoken) by more than the
            # dead band: capped there, so that one fast clock does not carry the merge into its
            # future (where every device behind it would be late) before its estimate is made
            out = min(out, self._ref_sorted[len(self._ref_sorted) // 2] + (self.centre_ns or 0) + self._dead_band)
        h = msg.header
        older = dev.last_seq is not None and h.boot_id == dev.last_boot and h.seq < dev.last_seq
        if older:
            pass  # a message the broker delivered after later ones (a gap filled): as it is
        else:
            if dev.last_out is not None and out < dev.last_out:
                # never behind its own previous message (a device's messages come in order; at the
                # same time the merge keeps them by sequence): a correction that went down, or a clock
                # that stepped back and is not confirmed yet
                out = dev.last_out
            dev.last_out, dev.last_boot, dev.last_seq = out, h.boot_id, h.seq
        if out == ts:
            return msg
        self.corrected += 1
        return retimed(msg, out - ts)


def retimed(msg: Message, delta_ns: int) -> Message:
    """`msg` with its timestamps moved by `delta_ns` (the header's and a weight batch's first sample)."""
    header = msg.header.model_copy(update={"ts_ns": max(0, msg.header.ts_ns + delta_ns)})
    if isinstance(msg, WeightBatch):
        return msg.model_copy(update={"header": header, "t0_ns": max(0, msg.t0_ns + delta_ns)})
    return msg.model_copy(update={"header": header})
