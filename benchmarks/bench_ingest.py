"""Sustained ingest on a real broker: a large store's load through a live edge worker.

    .venv/bin/python benchmarks/bench_ingest.py [--shelves 1000] [--seconds 60] [--broker mqtt://127.0.0.1:1883]

The store is the demo store, with its shoppers and their picks simulated, plus copies of its gondolas
set out beyond its north wall until the store has `--shelves` shelves. Every shelf's scale sends
12 samples at 60 Hz per message (5 messages/s, as in the field notes); the copies' plates are quiet
(tare, noise, drift) and their clocks are not aligned with each other, like independent controllers.
The worker runs in its own process (`store-edge run`) on the broker; this process publishes at the
recorded pace (with the recorded network delays) and listens for the worker's cart updates.

Measured:
- throughput: messages and plate samples per second the worker took in, and how far behind it was
  when the publisher stopped (how long it took to drain);
- latency: for every new cart line, from publishing the weight message that completed the event (the
  cart update's timestamp is the data time of the message being handled, and the line's event names
  its shelf) to receiving the cart update on the broker: p50, p99, max.
Prints a markdown table. Not a test: no thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from store_edge.layout import StoreLayout, load_store
from store_edge.live.mqtt import BrokerAddress, EmbeddedBroker, MqttLink, free_port, parse_broker_url
from store_edge.live.worker import INPUT_KINDS
from store_edge.protocol.codec import decode
from store_edge.protocol.messages import CartUpdate
from store_edge.protocol.topics import parse_topic, store_prefix
from store_edge.recording.mcap_io import read_messages
from store_edge.sim.generate import random_scenario
from store_edge.sim.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000


@dataclass(frozen=True)
class Outgoing:
    send_ns: int
    """When to publish, relative to the first message (recorded arrival time at the broker)."""
    topic: str
    payload: bytes
    device_id: str
    ts_ns: int


def large_store(base: StoreLayout, shelves: int) -> tuple[StoreLayout, list[str]]:
    """`base` plus copies of its gondolas north of it until the store has `shelves` shelves. Returns the
    layout and the ids of the copied shelves (quiet in this benchmark)."""
    data: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    xs = [p[0] for p in data["floor"]["outline"]]
    ys = [p[1] for p in data["floor"]["outline"]]
    depth = max(ys) - min(ys)
    per_tile = sum(len(g["shelves"]) for g in data["gondolas"])
    tiles = max(0, -(-(shelves - per_tile) // per_tile))
    copied: list[str] = []
    extra_gondolas: list[dict[str, Any]] = []
    extra_facings: list[dict[str, Any]] = []
    plate_sku = {pid: f["sku"] for f in data["planogram"] for pid in f["plates"]}
    plate_units = {pid: n for f in data["planogram"] for pid, n in f["plates"].items()}
    for k in range(1, tiles + 1):
        prefix = f"T{k:02d}"
        for g in data["gondolas"]:
            if per_tile + len(copied) >= shelves:
                break
            gc = json.loads(json.dumps(g))
            gc["id"] = f"{prefix}{g['id']}"
            gc["front"] = [[x, y + k * depth] for x, y in g["front"]]
            for s in gc["shelves"]:
                s["id"] = f"{prefix}{s['id']}"
                s["scale"]["device_id"] = f"{prefix}{s['scale']['device_id']}"
                if "curtain" in s:
                    s["curtain"]["device_id"] = f"{prefix}{s['curtain']['device_id']}"
                for p in s["plates"]:
                    old = p["id"]
                    p["id"] = f"{prefix}{old}"
                    if old in plate_sku:
                        extra_facings.append({"sku": plate_sku[old], "plates": {p["id"]: plate_units[old]}})
                copied.append(s["id"])
            extra_gondolas.append(gc)
    data["gondolas"] += extra_gondolas
    data["planogram"] += extra_facings
    top = max(ys) + tiles * depth
    data["floor"]["outline"] = [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), top], [min(xs), top]]
    data["store_id"] = base.store_id  # the simulated shoppers' topics name the base store
    return StoreLayout.model_validate(data), copied


def quiet_shelf_messages(
    store: StoreLayout, shelf_ids: list[str], start_ns: int, seconds: float, seed: int
) -> list[Outgoing]:
    """Readings of untouched shelves: tare, white noise, slow drift; each controller on its own clock
    phase, each message with its own network delay (2-40 ms, in order per device)."""
    rng = np.random.default_rng(seed)
    out: list[Outgoing] = []
    prefix = store_prefix(store.store_id)
    boot = uuid.uuid4().hex[:12]
    for shelf_id in tqdm(shelf_ids, desc="quiet shelves", unit="shelf", leave=False):
        shelf = store.shelves_by_id[shelf_id]
        rate, batch = shelf.scale.rate_hz, shelf.scale.samples_per_message
        period_ns = round(NS / rate)
        n = int(seconds * rate) // batch * batch
        plates = [p.id for p in shelf.plates]
        tare = rng.uniform(600, 1400, len(plates))
        drift = rng.normal(0, 8.0 / 3600, len(plates))
        t_s = np.arange(n) / rate
        values = (tare + np.outer(t_s, drift) + rng.normal(0, 1.2, (n, len(plates)))).round(1)
        phase = int(rng.integers(0, batch * period_ns))
        last_send = 0
        for seq, i0 in enumerate(range(0, n, batch)):
            t0 = start_ns + phase + i0 * period_ns
            ts = t0 + (batch - 1) * period_ns
            body = {
                "kind": "weight",
                "header": {"device_id": shelf.scale.device_id, "boot_id": boot, "seq": seq, "ts_ns": ts},
                "shelf_id": shelf_id,
                "plate_ids": plates,
                "t0_ns": t0,
                "period_ns": period_ns,
                "samples": values[i0 : i0 + batch].tolist(),
            }
            send = max(last_send + 1, ts - start_ns + int(rng.uniform(2e6, 40e6)))
            last_send = send
            topic = f"{prefix}/weight/{shelf_id}"
            out.append(Outgoing(send, topic, json.dumps(body).encode(), shelf.scale.device_id, ts))
    return out


def simulated_messages(store: StoreLayout, shoppers: int, seconds: float, seed: int, tmp: Path) -> list[Outgoing]:
    path = tmp / "shoppers.mcap"
    # shoppers need a few minutes to come and go: simulate long enough, publish the first `seconds`
    simulate(store, random_scenario(store, shoppers, max(seconds, 180) / 60, seed), path, progress=True)
    out: list[Outgoing] = []
    first: int | None = None
    for rec in read_messages(path):
        if rec.topic.startswith("truth/"):
            continue
        first = rec.log_time_ns if first is None else first
        if rec.log_time_ns - first > seconds * NS:
            break
        header = json.loads(rec.data)["header"]
        out.append(Outgoing(rec.log_time_ns - first, rec.topic, rec.data, header["device_id"], header["ts_ns"]))
    return out


class CartListener:
    """Cart updates from one worker (by its device id); a receive time per update with a new line."""

    def __init__(self, broker: BrokerAddress, store_id: str, worker_id: str) -> None:
        self.worker_id = worker_id
        self.lines_seen: dict[str, set[str]] = {}
        self.new_lines: list[tuple[int, CartUpdate, list[str]]] = []
        self.lock = threading.Lock()
        self.link = MqttLink(
            broker,
            f"bench-listener-{uuid.uuid4().hex[:6]}",
            on_message=self._message,
            subscriptions=(f"{store_prefix(store_id)}/cart/#",),
        )

    def _message(self, topic: str, payload: bytes, mid: int) -> None:
        now = time.time_ns()
        msg = decode(topic, payload)
        if not isinstance(msg, CartUpdate) or msg.header.device_id != self.worker_id:
            return
        with self.lock:
            seen = self.lines_seen.setdefault(msg.visit_id, set())
            fresh = [ln.event_ids[0] for ln in msg.lines if ln.line_id not in seen]
            seen.update(ln.line_id for ln in msg.lines)
            if fresh:
                self.new_lines.append((now, msg, fresh))


def wait_healthy(port: int, worker: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    """Until the worker answers /healthz with 200: store loaded, broker connected, threads running."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode} while starting")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the worker was not healthy within {timeout_s:.0f} s")


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shelves", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--shoppers", type=int, default=30, help="over 3 minutes; the first --seconds are sent")
    parser.add_argument("--broker", default=os.environ.get("MQTT_URL"), help="default: MQTT_URL, else embedded")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    embedded = None if args.broker else EmbeddedBroker().start()
    broker = embedded.address if embedded else parse_broker_url(args.broker, os.environ)
    base = load_store(ROOT / "sample_data" / "stores" / "demo.yaml")
    store, quiet = large_store(base, args.shelves)
    n_shelves = len(store.shelves_by_id)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"building the load: {n_shelves} shelves, {store.plate_count} plates", file=sys.stderr)
        sim = simulated_messages(base, args.shoppers, args.seconds, args.seed, tmp)
        start_ns = min(o.ts_ns for o in sim if "/weight/" in o.topic)
        load = sim + quiet_shelf_messages(store, quiet, start_ns, args.seconds, args.seed)
        load.sort(key=lambda o: o.send_ns)
        store_file = tmp / "large-store.yaml"
        store_file.write_text(yaml.safe_dump(store.model_dump(mode="json", exclude_none=True), sort_keys=False))
        worker_id = f"bench-edge-{uuid.uuid4().hex[:6]}"
        health = free_port()
        worker = subprocess.Popen(
            [sys.executable, "-m", "store_edge.cli", "run", "--store", str(store_file), "--broker", broker.url,
             "--state-dir", str(tmp / "state"), "--health-port", str(health), "--worker-id", worker_id],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        listener = CartListener(broker, store.store_id, worker_id)
        try:
            wait_healthy(health, worker)
            listener.link.start()
            listener.link.subscribed.wait(10)
            time.sleep(1.0)
            result = publish_and_measure(load, broker, health, store, listener)
        finally:
            worker.terminate()
            worker.wait(30)
            listener.link.stop()
            if embedded:
                embedded.stop()
    print_table(args, n_shelves, store.plate_count, broker, result)


@dataclass
class Result:
    inputs: int
    """Offered messages the engine consumes (device status messages are not its input)."""
    offered: int
    publish_s: float
    taken_in: float
    taken_in_during: float
    drain_s: float
    samples_per_msg: float
    latencies_ms: list[float]
    lines: int


def publish_and_measure(
    load: list[Outgoing], broker: BrokerAddress, health: int, store: StoreLayout, listener: CartListener
) -> Result:
    link = MqttLink(broker, f"bench-publisher-{uuid.uuid4().hex[:6]}").start()
    sent_at: dict[tuple[str, int], int] = {}
    pending = []
    inputs = sum(1 for o in load if (t := parse_topic(o.topic)) is not None and t.kind in INPUT_KINDS)
    before = metric(health, "edge_messages_in_total")
    t0 = time.monotonic_ns()
    for o in tqdm(load, desc="publishing", unit="msg", unit_scale=True, mininterval=1.0):
        delay = (t0 + o.send_ns - time.monotonic_ns()) / NS
        if delay > 0.002:
            time.sleep(delay)
        sent_at[(o.device_id, o.ts_ns)] = time.time_ns()
        pending.append(link.publish(o.topic, o.payload))
        if len(pending) >= 2000:
            pending = [p for p in pending if not p.is_published()]
    publish_s = (time.monotonic_ns() - t0) / NS
    during = metric(health, "edge_messages_in_total") - before
    end = time.monotonic()
    total = during
    while time.monotonic() - end < 120:
        total = metric(health, "edge_messages_in_total") - before
        if total >= inputs:
            break
        time.sleep(0.1)
    drain_s = time.monotonic() - end
    time.sleep(2)
    link.stop()
    scale_of = {s.id: s.scale.device_id for s in store.shelves_by_id.values()}
    latencies: list[float] = []
    with listener.lock:
        for recv_ns, msg, events in listener.new_lines:
            for event_id in events:
                shelf = event_id.rsplit("-e", 1)[0]
                sent = sent_at.get((scale_of.get(shelf, ""), msg.header.ts_ns))
                if sent is not None:
                    latencies.append((recv_ns - sent) / 1e6)
    weight = [o for o in load if "/weight/" in o.topic]
    bodies = [json.loads(o.payload) for o in weight[:200]]
    samples = sum(len(b["samples"]) * len(b["plate_ids"]) for b in bodies)
    return Result(
        inputs=inputs,
        offered=len(load),
        publish_s=publish_s,
        taken_in=total,
        taken_in_during=during,
        drain_s=drain_s,
        samples_per_msg=samples / min(200, len(weight)) * len(weight) / len(load),
        latencies_ms=latencies,
        lines=len(latencies),
    )


def print_table(args: argparse.Namespace, shelves: int, plates: int, broker: BrokerAddress, r: Result) -> None:
    lat = sorted(r.latencies_ms)

    def pct(q: float) -> str:
        return f"{lat[min(len(lat) - 1, int(q * len(lat)))]:.0f}" if lat else "-"

    rate = r.offered / r.publish_s
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, {broker.url}")
    print()
    print(
        "| shelves | plates | seconds | offered msg/s | plate samples/s | taken in while publishing | drain after | "
        "new lines | latency p50 ms | p99 ms | max ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {shelves:,} | {plates:,} | {r.publish_s:.0f} | {rate:,.0f} | {rate * r.samples_per_msg:,.0f} | "
        f"{r.taken_in_during / r.inputs:.0%} | {r.drain_s:.1f} s | {r.lines} | {pct(0.5)} | {pct(0.99)} | "
        f"{(lat[-1] if lat else 0):.0f} |"
    )
    if r.taken_in < r.inputs:
        print(f"\nthe worker took in {r.taken_in:,.0f} of {r.inputs:,} input messages within 120 s of the end")


if __name__ == "__main__":
    main()
