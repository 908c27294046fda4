"""`store-edge record` and `store-edge replay`: a store's MQTT traffic to MCAP and back.

Replay publishes each message on its recorded topic, byte for byte, at its recorded time offset
(divided by `speed`), so a recording of a replay holds the same messages. Truth channels of simulated
recordings stay in the file: they are for the evaluator, never on the wire.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from tqdm import tqdm

from store_edge.live.mqtt import BrokerAddress, MqttLink
from store_edge.protocol.codec import schema_name
from store_edge.protocol.topics import ROUTES, parse_topic, subscription
from store_edge.recording.mcap_io import RecordingWriter, read_messages

log = logging.getLogger(__name__)


def _is_wire_topic(topic: str) -> bool:
    return not topic.startswith("truth/")


def replay(
    path: str | Path,
    broker: BrokerAddress,
    speed: float | None = 1.0,
    progress: bool = True,
    client_id: str | None = None,
) -> int:
    """Publish a recording; `speed=None`: as fast as the broker takes it. Returns messages sent."""
    total = sum(1 for m in read_messages(path) if _is_wire_topic(m.topic))
    link = MqttLink(broker, client_id or f"replay-{time.time_ns() % 10**9}").start()
    if not link.connected.is_set():
        link.stop()
        raise ConnectionError(f"MQTT broker {broker.url} not reachable")
    sent = 0
    t0_log: int | None = None
    t0_wall = time.monotonic()
    pending = []
    try:
        with tqdm(total=total, unit="msg", disable=not progress, desc=f"replaying {Path(path).name}") as bar:
            for msg in read_messages(path):
                if not _is_wire_topic(msg.topic):
                    continue
                if t0_log is None:
                    t0_log = msg.log_time_ns
                if speed:
                    due = t0_wall + (msg.log_time_ns - t0_log) / 1e9 / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                pending.append(link.publish(msg.topic, msg.data))
                sent += 1
                bar.update()
                if len(pending) >= 1000:  # keep paho's queue bounded: wait for the broker to take these
                    for info in pending:
                        info.wait_for_publish(timeout=30)
                    pending.clear()
            for info in pending:
                info.wait_for_publish(timeout=30)
    finally:
        link.stop()
    return sent


class Recorder:
    """Subscribes to everything of one store and writes it to MCAP as it arrives."""

    def __init__(self, broker: BrokerAddress, store_id: str, out: str | Path) -> None:
        self.writer = RecordingWriter(out)
        self.lock = threading.Lock()
        self.count = 0
        self.skipped = 0
        self.link = MqttLink(
            broker,
            f"recorder-{store_id}-{time.time_ns() % 10**9}",
            on_message=self._message,
            subscriptions=(subscription(store_id),),
            skip_retained=True,  # the last cart updates and statuses before recording began are not traffic
        )

    def _message(self, topic: str, payload: bytes, mid: int) -> None:
        parsed = parse_topic(topic)
        if parsed is None:
            self.skipped += 1
            return
        model = ROUTES[parsed.kind].model
        now = time.time_ns()
        with self.lock:
            self.writer.write(topic, schema_name(model), model, payload, now, now, self.count)
            self.count += 1

    def start(self) -> Recorder:
        self.link.start()
        if not self.link.subscribed.wait(10):
            raise ConnectionError(f"MQTT broker {self.link.address.url} not reachable")
        return self

    def stop(self) -> int:
        self.link.stop()
        with self.lock:
            self.writer.close()
        if self.skipped:
            log.warning("%d messages on topics outside the protocol were not recorded", self.skipped)
        return self.count
