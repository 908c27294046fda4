"""The worker exports the engine's sensor faults: `edge_sensor_faulty{sensor,kind}` (1 while faulty, 0 once
back) and `edge_sensor_faults{kind}` (faults begun), read from /metrics as an operator's Prometheus would;
a warning when a fault begins and a note when it ends; the faults in force rebuilt after a restart."""

from __future__ import annotations

import logging
import pickle
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from store_edge.fusion.engine import FusionEngine
from store_edge.layout import StoreLayout
from store_edge.live.mqtt import BrokerAddress, MqttLink, free_port
from store_edge.live.worker import EdgeWorker, RunningWorker, WorkerConfig
from store_edge.protocol.codec import encode
from store_edge.protocol.messages import Header, WeightBatch
from tests.live.helpers import wait_for

NS = 1_000_000_000
PERIOD = 16_666_667  # 60 Hz, 12 samples a batch: as the demo store's scales
SHELF = "G1-S1"
PLATE = "G1-S1-P11"
TOPIC = f"cl/v1/demo/weight/{SHELF}"
OLD_ENGINE_LACKS = ("health", "_blind", "_blind_seen", "_faulty_plates", "_stands", "_faulty_events")
"""What an engine pickled before sensor health lacks (as tests/fusion/test_sensor_health.py)."""


class Scale:
    """Shelf G1-S1's scale: idle plates with 1.5 g of noise read in 1 g steps; one plate may freeze
    on one reading (`frozen`) or read nothing (`dead`)."""

    def __init__(self, plate_ids: list[str], start_ns: int, seed: int = 1) -> None:
        self.plate_ids = plate_ids
        self.t0_ns = start_ns
        self.seq = 0
        self.rng = np.random.default_rng(seed)
        self.levels = 800.0 + 10.0 * np.arange(len(plate_ids))

    def batches(self, seconds: float, fault: str | None = None) -> list[bytes]:
        out = []
        j = self.plate_ids.index(PLATE)
        for _ in range(round(seconds * NS / (12 * PERIOD))):
            values = np.round(self.levels + self.rng.normal(0, 1.5, (12, len(self.plate_ids))))
            rows: list[list[float | None]] = [[float(v) for v in row] for row in values]
            for row in rows:
                if fault == "frozen":
                    row[j] = 1234.0
                elif fault == "dead":
                    row[j] = None
            self.seq += 1
            header = Header(device_id=f"scale-{SHELF}", boot_id="boot1", seq=self.seq, ts_ns=self.t0_ns + 11 * PERIOD)
            msg = WeightBatch(
                header=header,
                shelf_id=SHELF,
                plate_ids=self.plate_ids,
                t0_ns=self.t0_ns,
                period_ns=PERIOD,
                samples=rows,
            )
            out.append(encode(msg))
            self.t0_ns += 12 * PERIOD
        return out


def scale_of(store: StoreLayout) -> Scale:
    return Scale([p.id for p in store.shelves_by_id[SHELF].plates], start_ns=1_700_000_000 * NS)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def faulty(text: str, kind: str = "frozen") -> float | None:
    return samples(text).get(("edge_sensor_faulty", (("kind", kind), ("sensor", PLATE))))


def begun(text: str, kind: str = "frozen") -> float | None:
    return samples(text).get(("edge_sensor_faults_total", (("kind", kind),)))


def scrape(worker: EdgeWorker) -> str:
    return generate_latest(worker.metrics.registry).decode()


# --- the live worker -----------------------------------------------------------------------------


@pytest.fixture
def metrics_port(demo_store: StoreLayout, broker: BrokerAddress, tmp_path: Path) -> Iterator[int]:
    """A running worker (`store-edge run --health-port`): the port of its /metrics."""
    port = free_port()
    config = WorkerConfig(state_dir=tmp_path / "state", lag_s=0.5, worker_id=f"edge-test-{uuid.uuid4().hex[:8]}")
    worker = RunningWorker(demo_store, broker, None, config, health_port=port).start()
    yield port
    worker.stop()


def test_a_plate_that_freezes_then_recovers_shows_on_metrics_then_clears(
    metrics_port: int,
    broker: BrokerAddress,
    demo_store: StoreLayout,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="store_edge.live.worker")

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    pub = MqttLink(broker, f"pub-{uuid.uuid4().hex[:8]}").start()
    scale = scale_of(demo_store)

    def publish(payloads: list[bytes]) -> None:
        for payload in payloads:
            pub.publish(TOPIC, payload).wait_for_publish(5)

    try:
        publish(scale.batches(2.0) + scale.batches(1.6, "frozen"))  # 1 s of one reading makes it frozen
        wait_for(lambda: faulty(metrics()) == 1.0, 20, "edge_sensor_faulty to be 1")
        assert begun(metrics()) == 1.0
        publish(scale.batches(1.0))  # noisy again: back
        wait_for(lambda: faulty(metrics()) == 0.0, 20, "edge_sensor_faulty back to 0")
        text = metrics()
        assert begun(text) == 1.0
        assert [k for (name, k), v in samples(text).items() if name == "edge_sensor_faulty" and v] == []
    finally:
        pub.stop()
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "store_edge.live.worker"]
    assert any(lvl == logging.WARNING and m.startswith(f"sensor {PLATE} faulty (frozen): plate") for lvl, m in logged)
    assert any(lvl == logging.INFO and m.startswith(f"sensor {PLATE} back (frozen for") for lvl, m in logged)


# --- the worker's input path, no broker ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["frozen", "dead"])
def test_the_gauge_follows_the_engine_and_changes_only_with_it(
    demo_store: StoreLayout,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    kind = {"frozen": "frozen", "dead": "no_reading"}[fault]
    worker = EdgeWorker(demo_store, WorkerConfig(state_dir=tmp_path, lag_s=0.5))
    caplog.set_level(logging.INFO, logger="store_edge.live.worker")
    scale = scale_of(demo_store)
    gauge = worker.metrics.sensor_faulty
    touched: list[tuple[str, ...]] = []
    real_labels = gauge.labels

    def labels(*values: str) -> Gauge:
        touched.append(values)
        return real_labels(*values)

    monkeypatch.setattr(gauge, "labels", labels)
    for payload in scale.batches(2.0):
        worker.handle_raw(TOPIC, payload)
    worker.flush()
    assert faulty(scrape(worker), kind) is None  # no series before any fault
    for payload in scale.batches(3.0, fault):
        worker.handle_raw(TOPIC, payload)
    worker.flush()
    assert worker.engine.health.report()[0][0::2] == (PLATE, kind)
    assert faulty(scrape(worker), kind) == 1.0
    assert begun(scrape(worker), kind) == 1.0
    for payload in scale.batches(1.0):
        worker.handle_raw(TOPIC, payload)
    worker.flush()
    assert worker.engine.health.report() == []
    assert faulty(scrape(worker), kind) == 0.0
    assert begun(scrape(worker), kind) == 1.0
    assert touched == [(PLATE, kind), (PLATE, kind)]  # once on, once off: not per message
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [m for lvl, m in logged if lvl == logging.WARNING and m.startswith(f"sensor {PLATE} faulty ({kind})")]
    assert [m for lvl, m in logged if lvl == logging.INFO and m.startswith(f"sensor {PLATE} back ({kind} for")]


def test_a_restart_shows_the_faults_in_force_again_and_counts_none_twice(
    demo_store: StoreLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Metrics are not in snapshots: the gauge comes back from the engine's monitor (snapshot and journal)."""
    config = WorkerConfig(state_dir=tmp_path, lag_s=0.5)
    first = EdgeWorker(demo_store, config)
    scale = scale_of(demo_store)
    msgs = scale.batches(2.0) + scale.batches(2.0, "frozen")
    for payload in msgs:  # as the worker thread does: journal, handle, then snapshot between messages
        first.journal.append([(0, TOPIC, payload)])
        first.handle_raw(TOPIC, payload)
        first._handled_id += 1
    first.flush()
    assert faulty(scrape(first)) == 1.0
    first.snapshot()
    more = scale.batches(0.6, "frozen")
    first.journal.append([(0, TOPIC, payload) for payload in more])  # journaled, then killed

    caplog.set_level(logging.WARNING, logger="store_edge.live.worker")
    restarted = EdgeWorker(demo_store, config)
    assert restarted.recover() == len(more)
    text = scrape(restarted)
    assert faulty(text) == 1.0
    assert begun(text) is None  # counted by the process that saw it begin
    assert any(r.getMessage().startswith(f"sensor {PLATE} faulty (frozen) after recovery") for r in caplog.records)
    for payload in scale.batches(1.0):
        restarted.handle_raw(TOPIC, payload)
    restarted.flush()
    assert faulty(scrape(restarted)) == 0.0


def test_a_snapshot_from_before_sensor_health_loads_and_its_faults_are_exported(
    demo_store: StoreLayout, tmp_path: Path
) -> None:
    config = WorkerConfig(state_dir=tmp_path, lag_s=0.5)
    first = EdgeWorker(demo_store, config)
    scale = scale_of(demo_store)
    for payload in scale.batches(2.0):
        first.handle_raw(TOPIC, payload)
    first.flush()
    # the snapshot as a worker from before sensor health (and before clock offsets) wrote it
    engine = FusionEngine.__new__(FusionEngine)
    engine.__dict__.update({k: v for k, v in first.engine.__dict__.items() if k not in OLD_ENGINE_LACKS})
    for det in engine.detectors.values():
        det.__dict__.pop("_ignored", None)  # as a detector pickled before `ignore_plate`
    state = pickle.dumps((engine, first.dedup, first.reorder, first.traces, first.tickets))
    first.journal.save_snapshot(0, "0.0.0", state, 0)

    restarted = EdgeWorker(demo_store, config)
    restarted.recover()
    assert type(restarted.engine) is FusionEngine
    assert restarted.engine.health.report() == []
    assert faulty(scrape(restarted)) is None
    for payload in scale.batches(2.0, "frozen"):
        restarted.handle_raw(TOPIC, payload)
    restarted.flush()
    assert faulty(scrape(restarted)) == 1.0
    assert begun(scrape(restarted)) == 1.0
