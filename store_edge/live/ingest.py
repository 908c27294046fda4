"""Putting sensor messages back in order: duplicates out, a timestamp-ordered merge behind a watermark.

Pure domain code (no clocks, no I/O): the worker feeds it decoded messages and wall-clock hints.

MQTT delivers QoS 1 messages at least once and orders them per topic only; each device has its own
network delay. The fusion engine needs one stream in timestamp order, so messages wait in a buffer
until the watermark passes them. A message older than the watermark on arrival is late: the engine has
moved past it, so it is refused with a reason (the worker dead-letters it: nothing is lost). Gate and
light-curtain messages are the exception: within the lag they are handed on at once, out of order, since
a visit whose gate decision is refused is lost, and a hand's leave refused keeps the hand "in".

The watermark follows the devices rather than a fixed delay: each device's messages come in order, so
once every device that is talking has reported past time T, nothing older than T is still on its way
from them. The watermark is the oldest of the active devices' newest timestamps, but never closer than
`jitter_ns` to the newest message seen: a device that has been quiet (a light curtain, a gate) may
speak again with a message that trails its peers' by a network delay. A device silent for longer than
`lag_ns` holds nothing up: the watermark never falls further than `lag_ns` behind the newest message.
So an event is handed on as soon as the slowest streaming device has caught up, not a fixed half
second later. A gate or a light curtain (an event device: it speaks when something happens) holds
nothing up at all: its next message is later anyway, and a late one is handed on.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from store_edge.protocol.messages import GateDecision, GatePassage, GateScan, Message

GATE_MESSAGES = (GateScan, GateDecision, GatePassage)


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
    """A timestamp-ordered merge behind a watermark that follows the slowest active device (see the
    module's docstring).

    With `lanes` (device -> lane, for example a shelf's scale and light curtain -> the shelf), the order
    is partial: each lane's messages are merged only with the shared devices' (every device not in a
    lane: the tracker, the gates), not with other lanes'. A lane's message waits for its own lane's
    devices and the shared devices, never for another shelf's scale; a shared message waits for the
    shared devices only. So a lane's message is handed on after its lane's earlier messages (but for an
    event device's report that came late, handed on at once) and after every shared message up to its
    time, while later shared messages may go ahead of a slow lane's (the
    tracker does not wait for a shelf). A lane message is late when it is behind what its lane handed
    on; a shared message when it is behind anything handed on. Without `lanes` every device is shared:
    one total order."""

    def __init__(
        self,
        lag_ns: int,
        jitter_ns: int = 0,
        expected_devices: Iterable[str] = (),
        lanes: Mapping[str, str] | None = None,
        event_devices: Iterable[str] = (),
    ) -> None:
        """`expected_devices`: devices known to stream (a store's scales). Until each has spoken, or
        `lag_ns` has passed since the first message, they hold the watermark (of their lane) as a slow
        device would: a scale whose first message comes late at start-up is waited for, not
        dead-lettered.

        `event_devices`: devices that speak only when something happens (light curtains; gates always
        count as such). Their newest message says nothing about what is still on its way from them (the
        next one is later anyway), so they hold no watermark: only the jitter allowance waits for
        them. Had a curtain held its shelf's lane at its last message, every reading after a hand left
        the shelf would wait up to the lag: measured at 300-550 ms for a few percent of a busy
        store's weight messages, the tail of the event-to-cart latency."""
        if not 0 <= jitter_ns <= lag_ns:
            raise ValueError(f"jitter ({jitter_ns} ns) must lie between 0 and the lag ({lag_ns} ns)")
        self.lag_ns = lag_ns
        self.jitter_ns = jitter_ns
        self._lane_of: dict[str, str] = dict(lanes or {})
        self._heaps: dict[str | None, list[tuple[tuple[int, str, int], int, Message]]] = {None: []}
        """Waiting messages per lane (None: the shared devices)."""
        self._waiting = 0
        self._arrivals = 0
        self._device_newest: dict[str, int] = {}
        self._expected = tuple(expected_devices)
        self.event_devices = frozenset(event_devices)
        self._progress: dict[str | None, list[tuple[int, str]]] = {None: []}
        """Per lane, (newest timestamp, device) of its devices, oldest first; entries a device has since
        passed are dropped lazily."""
        self._lane_released: dict[str, int] = {}
        self._queued: dict[str, tuple[bool, int]] = {}
        """Lanes with waiting messages, as last filed in `_open` or `_held`: (held, time). Entries of
        those heaps that no longer match this are skipped."""
        self._open: list[tuple[int, str]] = []
        """Lanes whose oldest message waits for the shared devices only, by that message's time."""
        self._held: list[tuple[int, str]] = []
        """Lanes whose oldest message waits for one of the lane's own devices, by that device's newest time."""
        self.newest_ns: int | None = None
        self.released_ns: int | None = None
        """Timestamp of the newest message handed on: no shared message older than it may follow."""
        self.late_handed_on = 0
        """Gate messages that came behind the watermark (within the lag) and were handed on out of order."""

    def __len__(self) -> int:
        return self._waiting

    def __setstate__(self, state: dict[str, Any]) -> None:
        """From a worker's snapshot: one saved before the merge had lanes would load without them and
        fail on every message; refused instead (the worker logs that the snapshot cannot be loaded)."""
        if "_heaps" not in state:
            raise ValueError("merge buffer saved by an older version (before lanes): cannot be loaded")
        self.__dict__.update({"late_handed_on": 0, "event_devices": frozenset()} | state)

    def push(self, msg: Message) -> list[Message]:
        """Buffer one message; returns those the watermark now lets through. Raises LateMessageError."""
        ts = msg.header.ts_ns
        device = msg.header.device_id
        lane = self._lane_of.get(device)
        speaks_on_events = isinstance(msg, GATE_MESSAGES) or device in self.event_devices
        released = self.released_ns if lane is None else self._lane_released.get(lane)
        if released is not None and ts < released:
            if speaks_on_events and released - ts <= self.lag_ns:
                # a gate speaks a few times per visit and carries what must not be lost: a scan or
                # decision a clock skew or network delay put behind what was handed on goes on at once
                # (the engine opens the visit a fraction of a second late, before its shopper appears).
                # So does a curtain's report: a hand's leave dropped would keep the hand "in" until the
                # curtain is taken for stuck, and the reach still names who stood there
                self.late_handed_on += 1
                return [msg]
            raise LateMessageError(released - ts)
        self._arrivals += 1
        heapq.heappush(self._heaps.setdefault(lane, []), (merge_key(msg), self._arrivals, msg))
        self._waiting += 1
        if self.newest_ns is None:
            for expected in self._expected:  # as if each had just spoken, a jitter before this first message
                self._device_newest.setdefault(expected, ts - self.jitter_ns)
                self._progressed(expected, ts - self.jitter_ns)
        self.newest_ns = ts if self.newest_ns is None else max(self.newest_ns, ts)
        if ts > self._device_newest.get(device, -1):
            self._device_newest[device] = ts
            if not speaks_on_events:
                # a gate speaks a few times a visit: its next message is later than this one anyway, and
                # one that comes late is handed on at once (above). Had it held the shared watermark at
                # its last message for the lag, every shelf would wait up to the lag after each one
                self._progressed(device, ts)
        # computed once per message: the merge runs for every message of every scale
        floor = self.newest_ns - self.lag_ns
        shared = self._shared_watermark(floor)
        out = self._pop(None, shared)
        if lane is not None:
            out += self._release_lane(lane, shared, floor)
        if self._lane_of:
            out += self._release_lanes(shared, floor)
        if len(out) > 1:
            out.sort(key=merge_key)
        return out

    def _progressed(self, device: str, ts: int) -> None:
        heapq.heappush(self._progress.setdefault(self._lane_of.get(device), []), (ts, device))

    def _slowest(self, lane: str | None, floor: int) -> int | None:
        """The oldest newest-timestamp of the lane's devices that have spoken since `floor`."""
        progress = self._progress.get(lane)
        if not progress:
            return None
        # devices silent for longer than the lag, and entries a device has since moved past, hold nothing
        while progress and (progress[0][0] < floor or progress[0][0] != self._device_newest[progress[0][1]]):
            heapq.heappop(progress)
        return progress[0][0] if progress else None

    def watermark_ns(self) -> int:
        """Shared messages at or before this time are handed on (all messages, without lanes)."""
        assert self.newest_ns is not None
        return self._shared_watermark(self.newest_ns - self.lag_ns)

    def lane_watermark_ns(self, lane: str) -> int:
        """A lane's messages at or before this time are handed on: the shared watermark, held back by
        the lane's own devices."""
        assert self.newest_ns is not None
        floor = self.newest_ns - self.lag_ns
        own = self._slowest(lane, floor)
        return self._lane_watermark(self._shared_watermark(floor), own, floor)

    def _shared_watermark(self, floor: int) -> int:
        assert self.newest_ns is not None
        slowest = self._slowest(None, floor)
        limit = self.newest_ns - self.jitter_ns
        return max(floor, limit if slowest is None else min(slowest, limit))

    @staticmethod
    def _lane_watermark(shared: int, own: int | None, floor: int) -> int:
        return max(floor, shared if own is None else min(shared, own))

    def flush(self) -> list[Message]:
        """Everything buffered: the inputs have gone quiet, nothing more is in flight."""
        out = self._pop(None, None)
        for lane in [lane for lane in self._heaps if lane is not None]:
            out += self._pop(lane, None)
        self._queued.clear()
        self._open.clear()
        self._held.clear()
        out.sort(key=merge_key)
        return out

    def _pop(self, lane: str | None, up_to_ns: int | None) -> list[Message]:
        heap = self._heaps[lane]
        out = []
        while heap and (up_to_ns is None or heap[0][0][0] <= up_to_ns):
            out.append(heapq.heappop(heap)[2])
        if out:
            self._waiting -= len(out)
            last = out[-1].header.ts_ns
            self.released_ns = last if self.released_ns is None else max(self.released_ns, last)
            if lane is not None:
                self._lane_released[lane] = last
        return out

    def _release_lane(self, lane: str, shared: int, floor: int) -> list[Message]:
        """Hand on what the lane's watermark passed; file the lane by what its oldest message waits for."""
        own = self._slowest(lane, floor)
        out = self._pop(lane, self._lane_watermark(shared, own, floor))
        heap = self._heaps[lane]
        if not heap:
            self._queued.pop(lane, None)
            return out
        head = heap[0][0][0]
        # held by a device of its own: looked at again when that device speaks or falls silent for the lag
        filed = (True, own) if own is not None and head > own else (False, head)
        if self._queued.get(lane) != filed:
            self._queued[lane] = filed
            heapq.heappush(self._held if filed[0] else self._open, (filed[1], lane))
        return out

    def _release_lanes(self, shared: int, floor: int) -> list[Message]:
        """Lanes waiting only for the shared watermark, up to it; lanes held by a device of their own,
        once that device has been silent for the lag."""
        out: list[Message] = []
        # (a device whose newest message is older than the floor is silent: it holds nothing up)
        for heap, held, limit in ((self._open, False, shared + 1), (self._held, True, floor)):
            while heap and heap[0][0] < limit:
                head, lane = heapq.heappop(heap)
                if self._queued.get(lane) == (held, head):
                    del self._queued[lane]
                    out += self._release_lane(lane, shared, floor)
        return out

    @property
    def lag_behind_ns(self) -> int:
        """How far the engine is behind the newest message seen (what waits in the buffer)."""
        if self.newest_ns is None or self.released_ns is None:
            return 0
        return self.newest_ns - self.released_ns
