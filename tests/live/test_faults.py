"""Sensor faults on the way in (part of #9): a recording delivered with duplicates, devices whose link
stalls for seconds (their messages late but in order, as MQTT keeps one publisher's order), and
malformed messages mixed in, each at 10%; the worker's receipts equal the fault-free run's, and every
fault is accounted for: duplicates dropped, malformed dead-lettered, and no streaming device's
message late. (A quiet device's message, a curtain's or a gate's, stalled longer than the jitter
allowance comes behind what was handed on: it is handed on at once, out of order, and dead-lettered as
late only beyond the lag: the price of not waiting a fixed lag for every event.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from store_edge.layout import StoreLayout
from store_edge.live.worker import INPUT_KINDS, EdgeWorker, WorkerConfig
from store_edge.protocol.topics import parse_topic
from store_edge.recording.mcap_io import RecordedMessage, read_messages
from tests.conftest import ROOT

RECORDING = ROOT / "sample_data" / "recordings" / "demo-random-8x4min-seed1.mcap"
NS = 1_000_000_000


class LetterKeepingWorker(EdgeWorker):
    """The worker, keeping a note of each dead letter's topic and label."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.letters: list[tuple[str, str]] = []

    def _dead_letter(self, topic: str, payload: bytes, reason: str, label: str) -> None:
        self.letters.append((topic, label))
        super()._dead_letter(topic, payload, reason, label)


def receipts_of(worker: EdgeWorker) -> dict[str, Counter[str]]:
    worker.flush()
    worker.engine.finish()
    return {v: +Counter(c.receipt) for v, c in worker.engine.carts.items()}


def with_faults(msgs: list[RecordedMessage], seed: int) -> tuple[list[tuple[int, str, bytes]], Counter[str]]:
    """(arrival ns, topic, payload) with faults, and how many of each were injected."""
    rng = np.random.default_rng(seed)
    injected: Counter[str] = Counter()
    stalled_until: dict[str, int] = {}  # topic -> its link delivers nothing before this
    out: list[tuple[int, str, bytes]] = []
    for m in msgs:
        t = m.log_time_ns
        parsed = parse_topic(m.topic)
        is_input = parsed is not None and parsed.kind in INPUT_KINDS  # the worker ignores device status
        if rng.random() < 0.10 and m.topic not in stalled_until:
            stalled_until[m.topic] = t + int(rng.uniform(0.5, 2.0) * NS)  # the device's link stalls
            injected["stalled"] += 1
        arrive = max(t, stalled_until.get(m.topic, 0))
        if arrive == t:
            stalled_until.pop(m.topic, None)
        out.append((arrive, m.topic, m.data))
        if rng.random() < 0.10:  # QoS 1 redelivery: the same bytes again a little later
            out.append((arrive + int(rng.uniform(1e6, 300e6)), m.topic, m.data))
            injected["duplicate"] += 1
            injected["input duplicate"] += is_input
        if rng.random() < 0.10:  # a corrupted message on the same topic (the good one still comes)
            cut = m.data[: int(rng.integers(1, max(2, len(m.data) - 1)))]
            out.append((arrive + 1, m.topic, cut + b"\x00garbage"))
            injected["malformed"] += 1
            injected["input malformed"] += is_input
    # the broker delivers in arrival order; one topic's messages keep their order (stable sort)
    out.sort(key=lambda a: a[0])
    return out, injected


def test_duplicates_stalls_and_malformed_at_ten_percent_change_no_receipt(
    demo_store: StoreLayout, tmp_path: Path
) -> None:
    msgs = [m for m in read_messages(RECORDING) if not m.topic.startswith("truth/")]
    clean = EdgeWorker(demo_store, WorkerConfig(state_dir=tmp_path / "clean", lag_s=3.0))
    for m in msgs:
        clean.handle_raw(m.topic, m.data)
    expected = receipts_of(clean)
    assert sum(sum(r.values()) for r in expected.values()) > 0

    faulty_input, injected = with_faults(msgs, seed=7)
    assert min(injected["duplicate"], injected["malformed"], injected["stalled"]) > 0.05 * len(msgs)
    worker = LetterKeepingWorker(demo_store, WorkerConfig(state_dir=tmp_path / "faulty", lag_s=3.0))
    for _, topic, payload in faulty_input:
        worker.handle_raw(topic, payload)
    assert receipts_of(worker) == expected
    metrics = worker.metrics
    assert metrics.duplicates._value.get() == injected["input duplicate"]
    assert metrics.dead_letters.labels("malformed")._value.get() == injected["input malformed"]
    late = [topic for topic, label in worker.letters if label == "late"]
    assert metrics.late._value.get() == len(late)
    streaming = {"weight", "tracks"}
    assert not [t for t in late if (parsed := parse_topic(t)) is None or parsed.kind.split("_")[0] in streaming], late
