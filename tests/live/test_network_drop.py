"""The network between the edge worker and the broker drops mid-visit (part of #9): a TCP proxy the test
controls cuts every connection and refuses new ones for a while, as a pulled cable would, while the
store's devices keep publishing to the broker. The worker reconnects by itself, its persistent session
hands it everything it missed, and the carts equal those of an undisturbed run.

The broker is a private Mosquitto configured as docs/deploy.md says a store's should be: with the
default `max_queued_messages` (1,000) an outage of a few seconds at a store's pace overflows the
session's queue and the broker drops the rest (a first version of this test, on the default, lost
58% of the messages and still passed on receipts alone: it now counts every message)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
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

RECORDING = ROOT / "sample_data" / "recordings" / "demo-hard-cases.mcap"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        MOSQUITTO is None, reason="needs Mosquitto (the embedded amqtt broker keeps no persistent session)"
    ),
]
OUTAGE_S = float(os.environ.get("NETWORK_DROP_S", "8"))  # the full fault suite sets 30


class CuttableProxy:
    """Forwards 127.0.0.1:port to the broker; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: BrokerAddress) -> None:
        self.target = target
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the proxy was stopped
            if not self.up.is_set():
                client.close()  # the cable is out: the connection goes nowhere
                continue
            upstream = socket.create_connection((self.target.host, self.target.port))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.conns.clear()

    def restore(self) -> None:
        self.up.set()

    def stop(self) -> None:
        self._stop.set()
        self.cut()
        self.server.close()


@pytest.fixture
def store_broker(tmp_path: Path) -> Iterator[BrokerAddress]:
    """A private Mosquitto with a store's settings: a session queue that holds an outage's messages."""
    port = free_port()
    broker = PrivateMosquitto(
        tmp_path, [f"listener {port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 200000"]
    )
    yield BrokerAddress("127.0.0.1", port)
    broker.stop()


def test_a_dropped_network_loses_nothing(demo_store: StoreLayout, tmp_path: Path, store_broker: BrokerAddress) -> None:
    broker = store_broker
    proxy = CuttableProxy(broker)
    config = WorkerConfig(state_dir=tmp_path / "state", lag_s=2.0, worker_id=f"edge-drop-{time.time_ns() % 10**9}")
    running = RunningWorker(demo_store, BrokerAddress("127.0.0.1", proxy.port), None, config).start()
    pub = MqttLink(broker, f"pub-drop-{time.time_ns() % 10**9}").start()
    msgs = [m for m in read_messages(RECORDING) if not m.topic.startswith("truth/")]
    try:
        assert running.link.subscribed.wait(10)
        cut_at, restore_at = len(msgs) // 3, None
        t0 = time.monotonic()
        for i, m in enumerate(msgs):
            if i == cut_at:
                proxy.cut()
                cut_time = time.monotonic()
                wait_for(lambda: not running.link.connected.is_set(), 10, "the worker to notice the cut")
            if restore_at is None and i > cut_at and time.monotonic() - cut_time >= OUTAGE_S:
                proxy.restore()
                restore_at = i
            info = pub.publish(m.topic, m.data)
            if i % 100 == 99:  # the store's pace, give or take (the whole recording in about 20 s)
                info.wait_for_publish(10)
                time.sleep(max(0.0, t0 + i / 600 - time.monotonic()))
        if restore_at is None:
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_time)))
            proxy.restore()
        # back (reconnect backoff is at most 30 s) with what the broker kept for it
        wait_for(lambda: running.link.subscribed.is_set(), 45, "the worker to reconnect")
        w = running.worker
        wait_for(
            lambda: w.inbox.empty() and w.work.empty() and len(w.reorder) == 0 and time.monotonic() - w._last_input > 2,
            60,
            "the worker to drain",
        )
        inputs = sum(1 for m in msgs if (t := parse_topic(m.topic)) is not None and t.kind in INPUT_KINDS)
        assert (
            w.journal.rows() == len(msgs) - sum(1 for m in msgs if "/status/" in m.topic) or w.journal.rows() >= inputs
        )
        taken = sum(c._value.get() for c in w._messages_in.values())
        assert taken == inputs, f"{inputs - taken:.0f} of {inputs} input messages never reached the engine"  # ...and it
        live = {v: Counter(c.receipt) for v, c in w.engine.carts.items()}
        offline = evaluate(RECORDING, demo_store)
        assert live == {v: Counter(c.receipt) for v, c in offline.carts.items()}
        assert w.metrics.sequence_gaps._value.get() == 0  # nothing lost on the way
    finally:
        pub.stop()
        running.stop()
        proxy.stop()
