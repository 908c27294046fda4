"""Device clock offsets (part of #9): estimated from the stream in arrival order, taken off before the
merge once confident, never reordering a device's own messages, and replayed the same from the journal."""

from __future__ import annotations

import itertools
import json
import logging
import pickle
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from store_edge.layout import StoreLayout
from store_edge.live.clock import ClockOffsets, ClockParams
from store_edge.live.ingest import LateMessageError, Reorderer
from store_edge.live.worker import EdgeWorker, WorkerConfig
from store_edge.protocol.messages import CurtainEvent, GateDecision, Header, Message, WeightBatch
from store_edge.recording.mcap_io import read_messages
from tests.conftest import ROOT

MS = 1_000_000
S = 1_000_000_000
PERIOD = 200 * MS  # a scale's batch: 12 samples at 60 Hz
SCALES = [f"scale-{i}" for i in range(12)]
RECORDING = ROOT / "sample_data" / "recordings" / "demo-hard-cases.mcap"


def weight(device: str, seq: int, ts: int) -> WeightBatch:
    period = PERIOD // 12
    return WeightBatch(
        header=Header(device_id=device, boot_id="b1", seq=seq, ts_ns=ts),
        shelf_id=f"S-{device}",
        plate_ids=["P1"],
        t0_ns=ts - 11 * period,
        period_ns=period,
        samples=[[100.0]] * 12,
    )


def curtain(device: str, seq: int, ts: int) -> CurtainEvent:
    return CurtainEvent(
        header=Header(device_id=device, boot_id="b1", seq=seq, ts_ns=ts), shelf_id="S1", event="enter", x_m=0.2
    )


def gate(device: str, seq: int, ts: int) -> GateDecision:
    return GateDecision(
        header=Header(device_id=device, boot_id="b1", seq=seq, ts_ns=ts),
        gate_id="entry-1",
        decision="open",
        visit_id=f"v{seq}",
    )


@dataclass(frozen=True)
class Sent:
    arrival: int
    """True time it reached the worker."""
    true_ns: int
    """True time it happened."""
    msg: Message


def store_stream(
    seconds: float,
    offsets: dict[str, int] | None = None,
    quiet: dict[str, list[float]] | None = None,
    seed: int = 0,
    start_s: float = 100.0,
    stall: tuple[str, float, float] | None = None,
    jump: tuple[str, float, int] | None = None,
) -> list[Sent]:
    """A store's input in arrival order: the scales batching at 5 Hz, each at its own phase, and quiet
    devices (curtains, a gate) speaking at the given seconds. Each device's clock is off by its offset;
    network delays 2-40 ms. `stall`: (device, from s, for s): its link delivers nothing meanwhile, then
    all at once. `jump`: (device, at s, by ns): its clock steps then."""
    rng = np.random.default_rng(seed)
    offsets = offsets or {}
    out = []

    def send(device: str, seq: int, true_s: float, make: Callable[[str, int, int], Message]) -> None:
        true_ns = round((start_s + true_s) * S)
        off = offsets.get(device, 0) + (jump[2] if jump and jump[0] == device and true_s >= jump[1] else 0)
        arrival = true_ns + round(rng.uniform(2, 40) * MS)
        if stall and stall[0] == device and stall[1] <= true_s < stall[1] + stall[2]:
            arrival = round((start_s + stall[1] + stall[2]) * S) + seq  # delivered together, in order
        out.append(Sent(arrival, true_ns, make(device, seq, true_ns + off)))

    for device in SCALES:
        phase = rng.uniform(0, 0.2)
        for i in range(int(seconds * 5)):
            send(device, i + 1, phase + i * 0.2, weight)
    for device, times in (quiet or {}).items():
        for i, t in enumerate(times):
            send(device, i + 1, t, gate if device.startswith("gate") else curtain)
    out.sort(key=lambda s: s.arrival)
    return out


def feed(clocks: ClockOffsets, stream: list[Sent]) -> list[tuple[Sent, Message]]:
    return [(s, clocks.correct(s.msg)) for s in stream]


def test_an_offset_is_estimated_within_a_scales_period_after_a_second_of_messages() -> None:
    offsets = {d: round(np.random.default_rng(1).uniform(-20, 20)) * MS for d in SCALES}
    offsets |= {"scale-7": 1200 * MS, "curtain-1": -800 * MS}
    stream = store_stream(4, offsets, quiet={"curtain-1": [0.5, 1.0, 2.5, 3.0]})
    clocks = ClockOffsets(SCALES)
    # a second of the scales' messages (5 each): the slow one is known and taken off
    first_second = [s for s in stream if s.true_ns < 101.2 * S and s.msg.header.device_id != "curtain-1"]
    feed(clocks, first_second)
    assert clocks.offset_ns("scale-7") == pytest.approx(1200 * MS, abs=150 * MS)
    assert clocks.shift_ns("scale-7") == pytest.approx(-1200 * MS, abs=150 * MS)
    assert all(clocks.shift_ns(d) == 0 for d in SCALES if d != "scale-7")  # within the dead band: untouched
    feed(clocks, [s for s in stream if s not in first_second])
    assert clocks.offset_ns("curtain-1") == pytest.approx(-800 * MS, abs=150 * MS)
    assert clocks.shift_ns("curtain-1") == pytest.approx(800 * MS, abs=150 * MS)


def test_nothing_is_corrected_until_the_estimate_is_confident() -> None:
    stream = store_stream(6, {"curtain-1": -1500 * MS}, quiet={"curtain-1": [2.0, 2.4, 4.0]})
    clocks = ClockOffsets(SCALES)
    out = {s.msg.header.seq: (s, got) for s, got in feed(clocks, stream) if s.msg.header.device_id == "curtain-1"}
    # one sample is no estimate (a stalled message looks the same); two agreeing 0.4 s apart could be
    # one stall's burst: the first two go on as stamped
    assert out[1][1] is out[1][0].msg
    assert out[2][1] is out[2][0].msg
    # a third agreeing with them over more than a second of its own time: corrected
    sent, got = out[3]
    assert got.header.ts_ns == pytest.approx(sent.true_ns, abs=150 * MS)
    assert clocks.devices["curtain-1"].confident


def test_a_status_message_is_a_sample_so_a_quiet_devices_first_event_is_corrected() -> None:
    stream = store_stream(4, {"gate-1": -1500 * MS}, quiet={"gate-1": [3.0]})
    clocks = ClockOffsets(SCALES)
    # every device's birth at connect, as the worker observes device status messages
    for device in [*SCALES, "gate-1"]:
        clocks.observe(device, round(100 * S) + (-1500 * MS if device == "gate-1" else 0))
    # the birth and its first decision, seconds later, agree
    sent, corrected = next((s, got) for s, got in feed(clocks, stream) if s.msg.header.device_id == "gate-1")
    assert corrected.header.ts_ns == pytest.approx(sent.true_ns, abs=150 * MS)
    assert clocks.offset_ns("gate-1") == pytest.approx(-1500 * MS, abs=150 * MS)


def test_a_fault_free_store_is_left_alone() -> None:
    offsets = {d: round(np.random.default_rng(2).uniform(-30, 30)) * MS for d in SCALES}
    stream = store_stream(20, offsets, quiet={"curtain-1": [1, 1.5, 5, 5.8, 12], "gate-1": [0.5, 7, 15]})
    clocks = ClockOffsets(SCALES)
    assert all(got is s.msg for s, got in feed(clocks, stream))
    assert clocks.corrected == 0
    assert all(abs(d.offset_ns or 0) < ClockParams().dead_band_s * S for d in clocks.devices.values())


def test_corrected_timestamps_merge_in_true_order() -> None:
    rng = np.random.default_rng(3)
    offsets = {d: round(rng.uniform(-1500, 1500)) * MS for d in SCALES}
    offsets |= {"curtain-1": -1400 * MS, "gate-1": 1300 * MS}
    quiet = {"curtain-1": [3, 3.6, 6, 6.5, 9, 9.2], "gate-1": [4.0, 7.0, 10.0]}
    stream = store_stream(12, offsets, quiet, seed=3)
    true_of = {(s.msg.header.device_id, s.msg.header.seq): s.true_ns for s in stream}
    settled = 102.5 * S  # from the scales' first messages on, 2.5 s to be estimated and the merge to settle

    def merged(params: ClockParams) -> tuple[list[int], int]:
        clocks = ClockOffsets(SCALES, params)
        for device, off in offsets.items():  # every device's birth, as the worker observes status messages
            clocks.observe(device, 100 * S + off)
        merge = Reorderer(lag_ns=500 * MS, jitter_ns=100 * MS)  # one total order, the live defaults
        order, late = [], 0
        for s in stream:
            try:
                out = merge.push(clocks.correct(s.msg))
            except LateMessageError:
                late += s.true_ns > settled
                continue
            order += [true_of[(m.header.device_id, m.header.seq)] for m in out]
        order += [true_of[(m.header.device_id, m.header.seq)] for m in merge.flush()]
        return [t for t in order if t > settled], late

    _, late = merged(ClockParams(enabled=False))
    assert late > 50  # as sent: the slow clocks' messages are late (the finding)
    order, late = merged(ClockParams())
    assert late == 0
    assert len(order) == sum(1 for s in stream if s.true_ns > settled)
    # in true order within what the estimate is accurate to (the stream clock's step, a scale's
    # period) and the dead band left uncorrected
    assert max(a - b for a, b in itertools.pairwise(order)) < 300 * MS


def test_a_clock_that_jumps_is_estimated_again() -> None:
    stream = store_stream(12, jump=("scale-3", 5.0, 1000 * MS))
    clocks = ClockOffsets(SCALES)
    feed(clocks, [s for s in stream if s.true_ns < 104.9 * S])
    assert clocks.shift_ns("scale-3") == 0
    feed(clocks, [s for s in stream if 104.9 * S <= s.true_ns < 107 * S])  # two seconds after the jump
    assert clocks.offset_ns("scale-3") == pytest.approx(1000 * MS, abs=150 * MS)
    tail = feed(clocks, [s for s in stream if s.true_ns >= 107 * S])
    for s, got in tail:
        if s.msg.header.device_id == "scale-3":
            assert got.header.ts_ns == pytest.approx(s.true_ns, abs=150 * MS)


def test_a_quiet_device_whose_clock_jumps_is_estimated_again() -> None:
    quiet = {"curtain-1": [1, 2.5, 4, 8, 9.5, 11]}
    stream = store_stream(12, quiet=quiet, jump=("curtain-1", 6.0, -1200 * MS))
    clocks = ClockOffsets(SCALES)
    got = [(s, m) for s, m in feed(clocks, stream) if s.msg.header.device_id == "curtain-1"]
    assert clocks.offset_ns("curtain-1") == pytest.approx(-1200 * MS, abs=150 * MS)
    # the first message after the jump goes on with the old correction, the next two confirm the jump
    for s, m in got[5:]:
        assert m.header.ts_ns == pytest.approx(s.true_ns, abs=150 * MS)


def test_a_stalled_link_is_not_taken_for_a_slow_clock() -> None:
    stream = store_stream(12, stall=("scale-3", 5.0, 2.0))
    clocks = ClockOffsets(SCALES)
    for s, got in feed(clocks, stream):
        assert got is s.msg  # its burst lags the others' by up to 2 s: not a clock
    assert clocks.shift_ns("scale-3") == 0
    assert abs(clocks.offset_ns("scale-3") or 0) < 150 * MS


@pytest.mark.parametrize("seed", range(5))
def test_a_correction_never_reorders_a_devices_own_messages(seed: int) -> None:
    rng = np.random.default_rng(seed)
    offsets = {d: round(rng.uniform(-2000, 2000)) * MS for d in SCALES}
    stream = store_stream(
        15,
        offsets,
        quiet={"curtain-1": sorted(rng.uniform(0, 15, 8))},
        seed=seed,
        stall=(SCALES[seed], 4.0, float(rng.uniform(0.5, 2))),
        jump=(SCALES[seed + 1], 8.0, round(rng.uniform(-1500, 1500)) * MS),
    )
    clocks = ClockOffsets(SCALES)
    last: dict[str, int] = {}
    for _, got in feed(clocks, stream):
        h = got.header
        assert h.ts_ns >= last.get(h.device_id, -1)  # (the merge keeps a device's equal times by sequence)
        last[h.device_id] = h.ts_ns
        if isinstance(got, WeightBatch):
            assert got.t0_ns == h.ts_ns - 11 * got.period_ns  # the batch moves as a whole
    assert clocks.corrected > 0


def test_the_estimates_survive_a_snapshot() -> None:
    offsets = {"scale-2": 900 * MS, "curtain-1": -700 * MS}
    stream = store_stream(8, offsets, quiet={"curtain-1": [1, 2.5, 5, 7]})
    whole = ClockOffsets(SCALES)
    expected = feed(whole, stream)
    half = len(stream) // 2
    first = ClockOffsets(SCALES)
    got = feed(first, stream[:half])
    got += feed(pickle.loads(pickle.dumps(first)), stream[half:])
    assert [m.header.ts_ns for _, m in got] == [m.header.ts_ns for _, m in expected]


# --- the worker ------------------------------------------------------------------------------------


def skewed(offsets: dict[str, float]) -> list[tuple[str, bytes]]:
    """The recording's wire messages (device status included) with these devices' clocks off."""
    out = []
    for m in read_messages(RECORDING):
        if m.topic.startswith("truth/"):
            continue
        body = json.loads(m.data)
        off = round(offsets.get(body["header"]["device_id"], 0.0) * S)
        body["header"]["ts_ns"] += off
        if "t0_ns" in body:
            body["t0_ns"] += off
        out.append((m.topic, json.dumps(body).encode()))
    return out


def test_the_worker_corrects_a_slow_gate_logs_it_and_publishes_the_offset(
    demo_store: StoreLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = EdgeWorker(demo_store, WorkerConfig(state_dir=tmp_path, lag_s=0.5))
    caplog.set_level(logging.WARNING, logger="store_edge.live.worker")
    for topic, payload in skewed({"gatectl-entry-1": -1.5, "scale-G1-S3": 1.2})[:3000]:
        worker.handle_raw(topic, payload)
    gauge = worker.metrics.clock_offset
    assert gauge.labels("gatectl-entry-1")._value.get() == pytest.approx(-1.5, abs=0.15)
    assert gauge.labels("scale-G1-S3")._value.get() == pytest.approx(1.2, abs=0.15)
    assert worker.metrics.clock_corrected._value.get() > 0
    warned = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert any(w.startswith("device gatectl-entry-1: clock -1.") for w in warned), warned
    # its decisions came 1.5 s behind the scales: trusted as sent they are dead-lettered at this lag
    assert worker.metrics.dead_letters.labels("late")._value.get() == 0
    assert len(worker.engine.carts) == 4


@pytest.mark.slow
def test_a_restart_replays_the_same_corrections(demo_store: StoreLayout, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    devices = {
        json.loads(m.data)["header"]["device_id"] for m in read_messages(RECORDING) if not m.topic.startswith("truth/")
    }
    msgs = skewed({d: float(rng.uniform(-2, 2)) for d in sorted(devices)})

    def receipts(worker: EdgeWorker) -> dict[str, Counter[str]]:
        worker.flush()
        worker.engine.finish()
        return {v: +Counter(c.receipt) for v, c in worker.engine.carts.items()}

    config = WorkerConfig(state_dir=tmp_path / "whole", lag_s=3.0)
    whole = EdgeWorker(demo_store, config)
    for topic, payload in msgs:
        whole.handle_raw(topic, payload)
    offsets = {d: c.offset_ns for d, c in whole.clocks.devices.items()}
    expected = receipts(whole)

    config = WorkerConfig(state_dir=tmp_path / "killed", lag_s=3.0)
    first = EdgeWorker(demo_store, config)
    third = len(msgs) // 3
    for topic, payload in msgs[:third]:  # as the worker thread does: journal, handle, then snapshot
        first.journal.append([(0, topic, payload)])
        first.handle_raw(topic, payload)
        first._handled_id += 1
    first.snapshot()
    first.journal.append([(0, topic, payload) for topic, payload in msgs[third:]])  # then killed
    restarted = EdgeWorker(demo_store, config)
    restarted.recover()
    assert {d: c.offset_ns for d, c in restarted.clocks.devices.items()} == offsets
    assert restarted.clocks.corrected == whole.clocks.corrected
    assert receipts(restarted) == expected
