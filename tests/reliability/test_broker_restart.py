"""The store's broker restarts mid-visit under load (part of #9): Mosquitto is stopped while devices
publish at a store's pace and started again on the same port; devices and the edge worker reconnect by
themselves. With persistence on (docs/deploy.md), the worker's persistent session and what it had not
yet received survive the restart, and what the devices publish meanwhile waits in their clients. Every
input message reaches the engine once and the carts equal those of the undisturbed offline run."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from store_edge.evaluation import evaluate
from store_edge.layout import StoreLayout
from store_edge.live.mqtt import BrokerAddress, MqttLink, free_port
from store_edge.live.worker import INPUT_KINDS, RunningWorker, WorkerConfig
from store_edge.protocol.topics import parse_topic
from store_edge.recording.mcap_io import read_messages
from tests.conftest import ROOT
from tests.live.helpers import MOSQUITTO, PrivateMosquitto, wait_for
from tests.reliability.conftest import Report, full_or_fast

RECORDING = ROOT / "sample_data" / "recordings" / "demo-hard-cases.mcap"
DOWN_S = full_or_fast(30, 4)
PACE = full_or_fast(600, 1200)  # messages a second: the recording in 20 s, or 10 s in CI
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MOSQUITTO is None, reason="needs Mosquitto (the embedded amqtt broker keeps no sessions)"),
]


def store_broker(folder: Path, port: int) -> PrivateMosquitto:
    """A broker set up as docs/deploy.md says: persistent, with room for an outage's messages."""
    return PrivateMosquitto(
        folder,
        [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 200000",
            "persistence true",
            f"persistence_location {folder}/",
        ],
    )


def test_a_broker_restart_mid_visit_loses_nothing(demo_store: StoreLayout, tmp_path: Path, report: Report) -> None:
    port = free_port()
    address = BrokerAddress("127.0.0.1", port)
    mosquitto = store_broker(tmp_path, port)
    config = WorkerConfig(state_dir=tmp_path / "state", lag_s=2.0, worker_id=f"edge-restart-{time.time_ns() % 10**9}")
    running = RunningWorker(demo_store, address, None, config).start()
    pub = MqttLink(address, f"pub-restart-{time.time_ns() % 10**9}").start()
    msgs = [m for m in read_messages(RECORDING) if not m.topic.startswith("truth/")]
    inputs = sum(1 for m in msgs if (t := parse_topic(m.topic)) is not None and t.kind in INPUT_KINDS)
    published_while_down = 0
    try:
        assert running.link.subscribed.wait(10)
        stop_at = len(msgs) // 3
        down_since: float | None = None
        t0 = time.monotonic()
        for i, m in enumerate(msgs):
            if i == stop_at:
                mosquitto.stop()  # SIGTERM: Mosquitto writes its persistence file and exits
                down_since = time.monotonic()
            if down_since is not None and time.monotonic() - down_since >= DOWN_S:
                mosquitto = store_broker(tmp_path, port)
                down_since = None
            if down_since is not None:
                published_while_down += 1
            info = pub.publish(m.topic, m.data)
            if i % 100 == 99:  # a busy store's pace
                if info.rc == 0:  # sent now (rc NO_CONN: queued in the client until it reconnects)
                    info.wait_for_publish(30)
                time.sleep(max(0.0, t0 + i / PACE - time.monotonic()))
        if down_since is not None:
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_since)))
            mosquitto = store_broker(tmp_path, port)
        wait_for(lambda: pub.connected.is_set() and running.link.subscribed.is_set(), 60, "both to reconnect")
        w = running.worker
        wait_for(lambda: sum(c._value.get() for c in w._messages_in.values()) >= inputs, 90, "every input")
        wait_for(
            lambda: w.inbox.empty() and w.work.empty() and len(w.reorder) == 0 and time.monotonic() - w._last_input > 2,
            60,
            "the worker to drain",
        )
        taken = sum(c._value.get() for c in w._messages_in.values())
        assert taken == inputs, f"{inputs - taken:.0f} of {inputs} input messages never reached the engine"
        live = {v: Counter(c.receipt) for v, c in w.engine.carts.items()}
        offline = {v: Counter(c.receipt) for v, c in evaluate(RECORDING, demo_store).carts.items()}
        assert live == offline
        assert w.metrics.sequence_gaps._value.get() == 0
        late = w.metrics.late._value.get()
        assert late == 0
    finally:
        pub.stop()
        running.stop()
        mosquitto.stop()
    report(
        fault="broker restart mid-visit",
        injected=f"Mosquitto stopped for {DOWN_S:.0f} s at message {stop_at:,} of {len(msgs):,}",
        disturbed=published_while_down,
        messages=len(msgs),
        lost=0,
        charged_twice=0,
        outcome=f"{len(live)} carts equal the offline run; {taken:.0f} of {inputs} inputs taken once",
    )
