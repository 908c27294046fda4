"""Putting sensor messages back in order: duplicates out, a timestamp-ordered merge behind a watermark.

Pure domain code (no clocks, no I/O): the worker feeds it decoded messages and wall-clock hints.

MQTT delivers QoS 1 messages at least once and orders them per topic only; each device has its own
network delay. The fusion engine needs one stream in timestamp order, so messages wait in a buffer
until the watermark passes them. A message older than the watermark on arrival is late: the engine has
moved past it, so it is refused with a reason (the worker dead-letters it: nothing is lost).

The watermark follows the devices rather than a fixed delay: each device's messages come in order, so
once every device that is talking has reported past time T, nothing older than T is still on its way
from them. The watermark is the oldest of the active devices' newest timestamps, but never closer than
`jitter_ns` to the newest message seen: a device that has been quiet (a light curtain, a gate) may
speak again with a message that trails its peers' by a network delay. A device silent for longer than
`lag_ns` holds nothing up: the watermark never falls further than `lag_ns` behind the newest message.
So an event is handed on as soon as the slowest streaming device has caught up, not a fixed half
second later.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from store_edge.protocol.messages import Message


def merge_key(msg: Message) -> tuple[int, str, int]:
    """The one order of sensor messages: time, then device and sequence to break ties the same way
    everywhere (the offline evaluator sorts by it too)."""
    return (msg.header.ts_ns, msg.header.device_id, msg.header.seq)


@dataclass
class DeviceSequence:
    boot_id: str
    highest: int
    seen: set[int] = field(default_factory=set)
    """Sequence numbers seen within the reorder horizon below `highest`."""


class Deduplicator:
    """Drops repeats by (device, boot, seq) and counts sequence gaps (messages a device sent that never
    came). A new boot id starts the device's sequence again."""

    def __init__(self, horizon: int = 4096) -> None:
        self.horizon = horizon
        self.devices: dict[str, DeviceSequence] = {}
        self.duplicates = 0
        self.gaps = 0

    def accept(self, msg: Message) -> bool:
        h = msg.header
        dev = self.devices.get(h.device_id)
        if dev is None or dev.boot_id != h.boot_id:
            self.devices[h.device_id] = DeviceSequence(h.boot_id, h.seq, {h.seq})
            return True
        if h.seq in dev.seen or h.seq < dev.highest - self.horizon:
            self.duplicates += 1
            return False
        if h.seq > dev.highest:
            self.gaps += h.seq - dev.highest - 1
            dev.highest = h.seq
        else:
            self.gaps = max(0, self.gaps - 1)  # a message that came out of order fills a gap counted earlier
        dev.seen.add(h.seq)
        if len(dev.seen) > 2 * self.horizon:
            floor = dev.highest - self.horizon
            dev.seen = {s for s in dev.seen if s >= floor}
        return True


class LateMessageError(Exception):
    def __init__(self, lateness_ns: int) -> None:
        self.lateness_ns = lateness_ns
        super().__init__(f"arrived {lateness_ns / 1e6:.0f} ms behind the watermark (allowed lag exceeded)")


class Reorderer:
    """A timestamp-ordered merge of all devices' messages behind a watermark that follows the slowest
    active device (see the module's docstring)."""

    def __init__(self, lag_ns: int, jitter_ns: int = 0, expected_devices: Iterable[str] = ()) -> None:
        """`expected_devices`: devices known to stream (a store's scales). Until each has spoken, or
        `lag_ns` has passed since the first message, they hold the watermark as a slow device would:
        a scale whose first message comes late at start-up is waited for, not dead-lettered."""
        if not 0 <= jitter_ns <= lag_ns:
            raise ValueError(f"jitter ({jitter_ns} ns) must lie between 0 and the lag ({lag_ns} ns)")
        self.lag_ns = lag_ns
        self.jitter_ns = jitter_ns
        self._heap: list[tuple[tuple[int, str, int], int, Message]] = []
        self._arrivals = 0
        self._device_newest: dict[str, int] = {}
        self._expected = tuple(expected_devices)
        self._progress: list[tuple[int, str]] = []
        """(newest timestamp, device) per device, oldest first; entries a device has since passed are
        dropped lazily."""
        self.newest_ns: int | None = None
        self.released_ns: int | None = None
        """Timestamp of the last message handed on: nothing older may follow it."""

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, msg: Message) -> list[Message]:
        """Buffer one message; returns those the watermark now lets through. Raises LateMessageError."""
        ts = msg.header.ts_ns
        if self.released_ns is not None and ts < self.released_ns:
            raise LateMessageError(self.released_ns - ts)
        self._arrivals += 1
        heapq.heappush(self._heap, (merge_key(msg), self._arrivals, msg))
        if self.newest_ns is None:
            for expected in self._expected:  # as if each had just spoken, a jitter before this first message
                self._device_newest.setdefault(expected, ts - self.jitter_ns)
                heapq.heappush(self._progress, (ts - self.jitter_ns, expected))
        self.newest_ns = ts if self.newest_ns is None else max(self.newest_ns, ts)
        device = msg.header.device_id
        if ts > self._device_newest.get(device, -1):
            self._device_newest[device] = ts
            heapq.heappush(self._progress, (ts, device))
        return self._release(self.watermark_ns())

    def watermark_ns(self) -> int:
        """Messages at or before this time are handed on."""
        assert self.newest_ns is not None
        floor = self.newest_ns - self.lag_ns
        progress = self._progress
        # devices silent for longer than the lag, and entries a device has since moved past, hold nothing
        while progress and (progress[0][0] < floor or progress[0][0] != self._device_newest[progress[0][1]]):
            heapq.heappop(progress)
        if not progress:
            return floor
        return max(floor, min(progress[0][0], self.newest_ns - self.jitter_ns))

    def flush(self) -> list[Message]:
        """Everything buffered: the inputs have gone quiet, nothing more is in flight."""
        return self._release(None)

    def _release(self, watermark_ns: int | None) -> list[Message]:
        out = []
        while self._heap and (watermark_ns is None or self._heap[0][0][0] <= watermark_ns):
            msg = heapq.heappop(self._heap)[2]
            out.append(msg)
            self.released_ns = msg.header.ts_ns
        return out

    @property
    def lag_behind_ns(self) -> int:
        """How far the engine is behind the newest message seen (what waits in the buffer)."""
        if self.newest_ns is None or self.released_ns is None:
            return 0
        return self.newest_ns - self.released_ns
