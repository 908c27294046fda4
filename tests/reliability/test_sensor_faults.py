"""Sensor faults the merge cannot undo (part of #9): device clocks skewed, a plate stuck on one value or
reading NaN, a light curtain stuck on. The invariant: no visit lost and nobody charged wrongly: each
visit's receipt equals the fault-free run's, or what differs is held for review (never an item charged
that the fault-free run did not charge, never one dropped silently).

The live worker estimates each device's clock offset and takes it off before the merge
(store_edge/live/clock.py); the engine notices a frozen or dead plate and a stuck curtain and holds
for review what depends on them (store_edge/fusion/sensor_health.py)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from store_edge.layout import StoreLayout
from store_edge.live.worker import EdgeWorker, WorkerConfig
from store_edge.recording.mcap_io import RecordedMessage, read_messages
from tests.conftest import ROOT
from tests.reliability.conftest import Report

RECORDING = ROOT / "sample_data" / "recordings" / "demo-hard-cases.mcap"
NS = 1_000_000_000
Outcome = dict[str, tuple[Counter[str], Counter[str]]]  # visit -> (charged, under review)
Fault = Callable[[list[RecordedMessage]], tuple[list[tuple[str, bytes]], int]]
NAMED = 0.05
"""A review ticket names a visit as a likely taker from this probability on (the console lists them)."""


def run(store: StoreLayout, folder: Path, messages: list[tuple[str, bytes]]) -> Outcome:
    worker = EdgeWorker(store, WorkerConfig(state_dir=folder, lag_s=3.0))
    for topic, payload in messages:
        worker.handle_raw(topic, payload)  # raises nothing: that is part of the test
    worker.flush()
    worker.engine.finish()
    # a line held for review counts for every visit its ticket names as a likely taker (staff pick among
    # them): two hands at once held on one shopper's cart still name the other
    review: dict[str, Counter[str]] = {visit: Counter() for visit in worker.engine.carts}
    for cart in worker.engine.carts.values():
        for line in cart.lines:
            if line.status != "under_review":
                continue
            named = {c.visit_id for c in line.shoppers if c.visit_id and c.probability >= NAMED} | {cart.visit_id}
            for visit in named & review.keys():
                review[visit][line.sku] += line.quantity
    return {visit: (+Counter(cart.receipt), review[visit]) for visit, cart in worker.engine.carts.items()}


@pytest.fixture(scope="module")
def messages() -> list[RecordedMessage]:
    return [m for m in read_messages(RECORDING) if not m.topic.startswith("truth/")]


@pytest.fixture(scope="module")
def fault_free(
    demo_store: StoreLayout, messages: list[RecordedMessage], tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    return run(demo_store, tmp_path_factory.mktemp("clean"), [(m.topic, m.data) for m in messages])


def wrongs(clean: Outcome, faulty: Outcome) -> list[str]:
    """What breaks the invariant: a visit lost, an item charged that the fault-free run did not charge,
    or one it charged that is neither charged nor under review now."""
    out = []
    for visit, (charged, _) in clean.items():
        if visit not in faulty:
            out.append(f"{visit} lost")
            continue
        got, review = faulty[visit]
        if extra := got - charged:
            out.append(f"{visit} charged {dict(extra)} it did not take")
        if dropped := charged - got - +review:  # a return held for review (negative) explains no missing unit
            out.append(f"{visit}: {dict(dropped)} dropped without review")
    return out


def skewed_clocks(max_s: float, seed: int) -> Fault:
    """Each device's clock off by its own random amount within ±max_s (its timestamps shifted)."""

    def apply(msgs: list[RecordedMessage]) -> tuple[list[tuple[str, bytes]], int]:
        rng = np.random.default_rng(seed)
        offsets: dict[str, int] = {}
        out = []
        for m in msgs:
            body = json.loads(m.data)
            off = offsets.setdefault(body["header"]["device_id"], int(rng.uniform(-max_s, max_s) * NS))
            body["header"]["ts_ns"] += off
            if "t0_ns" in body:
                body["t0_ns"] += off
            out.append((m.topic, json.dumps(body).encode()))
        return out, len(out)

    return apply


def plate_fault(plate_id: str, value: str, after_s: float = 5.0) -> Fault:
    """From `after_s` into the recording on, the plate reads its last value for ever (`stuck`) or NaN."""

    def apply(msgs: list[RecordedMessage]) -> tuple[list[tuple[str, bytes]], int]:
        start = json.loads(msgs[0].data)["header"]["ts_ns"]
        frozen: float | None = None
        out, touched = [], 0
        for m in msgs:
            body = json.loads(m.data)
            if body.get("kind") == "weight" and plate_id in body["plate_ids"] and body["t0_ns"] > start + after_s * NS:
                j = body["plate_ids"].index(plate_id)
                for row in body["samples"]:
                    frozen = row[j] if frozen is None else frozen
                    row[j] = frozen if value == "stuck" else math.nan
                touched += 1
                out.append((m.topic, json.dumps(body).encode()))
            else:
                out.append((m.topic, m.data))
        return out, touched

    return apply


def curtain_stuck_on(shelf_id: str) -> Fault:
    """The shelf's curtain reports a hand at the start and never clears: its `leave` events are lost."""

    def apply(msgs: list[RecordedMessage]) -> tuple[list[tuple[str, bytes]], int]:
        out, dropped = [], 0
        for m in msgs:
            body = json.loads(m.data)
            if body.get("kind") == "curtain" and body["shelf_id"] == shelf_id and body["event"] == "leave":
                dropped += 1
                continue
            out.append((m.topic, m.data))
        return out, dropped

    return apply


CASES = [
    pytest.param(
        "clock skew ±0.2 s",
        skewed_clocks(0.2, seed=1),
        # a gate's messages 0.2 s behind a shelf already handed on go on out of order (within the lag)
        id="clock-skew-0.2s",
    ),
    pytest.param(
        "clock skew ±2 s",
        skewed_clocks(2.0, seed=1),
        # device offsets are estimated from arrival order and taken off before the merge (store_edge/live/clock.py)
        id="clock-skew-2s",
    ),
    pytest.param(
        "plate stuck",
        plate_fault("G1-S1-P11", "stuck"),
        id="plate-stuck",
    ),
    pytest.param(
        "plate reads NaN",
        plate_fault("G1-S1-P11", "nan"),
        id="plate-nan",
    ),
    pytest.param(
        "light curtain stuck on",
        curtain_stuck_on("G1-S1"),
        id="curtain-stuck-on",
    ),
]


@pytest.mark.parametrize(("name", "fault"), CASES)
def test_sensor_fault_charges_nobody_wrongly(
    name: str,
    fault: Fault,
    demo_store: StoreLayout,
    messages: list[RecordedMessage],
    fault_free: Outcome,
    tmp_path: Path,
    report: Report,
) -> None:
    disturbed, count = fault(messages)
    faulty = run(demo_store, tmp_path / "faulty", disturbed)
    found = wrongs(fault_free, faulty)
    report(
        fault=name,
        injected=name,
        disturbed=count,
        messages=len(messages),
        lost=sum(1 for w in found if w.endswith("lost")),
        wrong=found,
        outcome="receipts equal or to review" if not found else "; ".join(found),
    )
    assert found == []
