"""Sustained ingest on a real broker: a large store's load through a live edge worker.

    .venv/bin/python benchmarks/bench_ingest.py [--shelves 1000] [--seconds 90] [--publishers 3]
                                                [--broker mqtt://HOST:PORT] [--worker-args "--lag 0.5"]

The store is the demo store, with its shoppers and their picks simulated, plus copies of its gondolas
set out beyond its north wall until the store has `--shelves` shelves. Every shelf's scale sends
12 samples at 60 Hz per message (5 messages/s, as in the field notes); the copies' plates are quiet
(tare, noise, drift) and their clocks are not aligned with each other, like independent controllers.

The load generator is `--publishers` processes, each with its own MQTT connection, publishing
pre-encoded payloads with QoS 1 (what the scales use) at the recorded pace with the recorded network
delays: one process the simulated shoppers' store (scales, curtains, gates, tracker), the others the
quiet copies, split by shelf (so each device's messages keep their order, as on one device's
connection). Each reports how far it fell behind its schedule, so an offered rate below the asked one
shows. Without `--broker` the benchmark starts a Mosquitto of its own configured as docs/deploy.md
says (`max_queued_messages 200000`, `max_inflight_messages 200`), or the embedded broker where
Mosquitto is not installed. The worker runs in its own process (`store-edge run`).

Measured:
- throughput: input messages per second offered and taken in while publishing; the age of the newest
  input the worker has handled (wall clock minus its data time: a growing age is a growing backlog,
  most of it queued in the broker) at its largest and at the end of publishing, and how long the worker
  took to drain; messages lost (the worker's sequence-gap count);
- latency: for every new cart line, from publishing the weight message that completed the event (the
  cart update's timestamp is the data time of the message being handled, and the line's event names
  its shelf) to receiving the cart update on the broker: p50, p99, max;
- CPU: seconds of CPU per second of publishing used by the worker, the broker and the publishers,
  and the load average, so a run on a busy machine can be told from one on a quiet one.
Prints a markdown table. Not a test: no thresholds.
"""

from __future__ import annotations

import argparse
import ctypes
import getpass
import json
import multiprocessing as mp
import os
import platform
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from raw_publisher import RawPublisher, publish_packet

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
EARLY_NS = 2_000_000
"""A message due within this is sent now (with the others due by then, in one write)."""
HANDLED = ("edge_messages_in_total", "edge_late_messages_total", "edge_duplicates_total")
"""The worker's counters that together count the input messages it has handled."""
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@dataclass(frozen=True)
class Outgoing:
    send_ns: int
    """When to publish, relative to the start (recorded arrival time at the broker)."""
    topic: str
    payload: bytes
    device_id: str
    ts_ns: int
    timed: bool = False
    """A weight message of a shelf shoppers use: its publish time is kept for the latency."""


@dataclass(frozen=True)
class QuietShelf:
    """What a publisher process needs to make a quiet copied shelf's readings."""

    shelf_id: str
    device_id: str
    plate_ids: tuple[str, ...]
    rate_hz: float
    samples_per_message: int


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
    store_id: str, shelves: list[QuietShelf], start_ns: int, seconds: float, seed: int
) -> list[Outgoing]:
    """Readings of untouched shelves: tare, white noise, slow drift; each controller on its own clock
    phase, each message with its own network delay (2-40 ms, in order per device). Each shelf has its
    own random stream, so a shelf's readings do not depend on which process makes them."""
    out: list[Outgoing] = []
    prefix = store_prefix(store_id)
    boot = uuid.uuid4().hex[:12]
    for shelf in shelves:
        rng = np.random.default_rng([seed, zlib.crc32(shelf.shelf_id.encode())])
        rate, batch = shelf.rate_hz, shelf.samples_per_message
        period_ns = round(NS / rate)
        n = int(seconds * rate) // batch * batch
        plates = list(shelf.plate_ids)
        tare = rng.uniform(600, 1400, len(plates))
        drift = rng.normal(0, 8.0 / 3600, len(plates))
        t_s = np.arange(n) / rate
        values = (tare + np.outer(t_s, drift) + rng.normal(0, 1.2, (n, len(plates)))).round(1)
        phase = int(rng.integers(0, batch * period_ns))
        last_send = 0
        topic = f"{prefix}/weight/{shelf.shelf_id}"
        for seq, i0 in enumerate(range(0, n, batch)):
            t0 = start_ns + phase + i0 * period_ns
            ts = t0 + (batch - 1) * period_ns
            body = {
                "kind": "weight",
                "header": {"device_id": shelf.device_id, "boot_id": boot, "seq": seq, "ts_ns": ts},
                "shelf_id": shelf.shelf_id,
                "plate_ids": plates,
                "t0_ns": t0,
                "period_ns": period_ns,
                "samples": values[i0 : i0 + batch].tolist(),
            }
            send = max(last_send + 1, ts - start_ns + int(rng.uniform(2e6, 40e6)))
            last_send = send
            out.append(Outgoing(send, topic, json.dumps(body).encode(), shelf.device_id, ts))
    return out


def simulated_messages(
    store: StoreLayout, shoppers: int, seconds: float, seed: int, tmp: Path
) -> tuple[list[Outgoing], int]:
    """The simulated shoppers' store's messages, and the recorded arrival time of the first (on the
    edge's clock, which the tracker and gates share): the data time the load starts at."""
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
        is_weight = "/weight/" in rec.topic
        out.append(
            Outgoing(rec.log_time_ns - first, rec.topic, rec.data, header["device_id"], header["ts_ns"], is_weight)
        )
    assert first is not None, "the simulation produced no messages"
    return out, first


@dataclass(frozen=True)
class PublisherJob:
    name: str
    broker: BrokerAddress
    store_id: str
    messages: list[Outgoing]
    """Ready-made messages (the simulated shoppers' store)."""
    quiet: list[QuietShelf]
    """Quiet shelves whose readings this process makes before the start."""
    start_ns: int
    seconds: float
    seed: int


@dataclass
class PublisherReport:
    name: str
    published: int
    inputs: int
    """Of them, messages the engine consumes."""
    seconds: float
    behind_s: float
    """The furthest this process fell behind its schedule."""
    cpu_s: float
    sent_at: dict[tuple[str, int], int] = field(default_factory=dict)
    """(device, data time) -> wall-clock publish time, for the timed weight messages."""


def run_publisher(
    job: PublisherJob, ready: mp.Queue[str], go_at: Synchronized[int], results: mp.Queue[PublisherReport]
) -> None:
    """One publisher process: make its messages, connect, wait for the common start, publish on time."""
    load = job.messages + quiet_shelf_messages(job.store_id, job.quiet, job.start_ns, job.seconds, job.seed)
    load.sort(key=lambda o: o.send_ns)
    inputs = sum(1 for o in load if (t := parse_topic(o.topic)) is not None and t.kind in INPUT_KINDS)
    packets = [publish_packet(o.topic, o.payload, i % 65535 + 1) for i, o in enumerate(load)]
    publisher = RawPublisher(job.broker, f"bench-{job.name}-{uuid.uuid4().hex[:6]}")
    ready.put(job.name)
    while go_at.value == 0:
        time.sleep(0.005)
    t0 = go_at.value
    cpu0 = time.process_time()
    sent_at: dict[tuple[str, int], int] = {}
    behind = 0
    i = 0
    while i < len(load):
        now = time.monotonic_ns()
        due = t0 + load[i].send_ns
        if due - now > EARLY_NS:
            time.sleep((due - now) / NS)
            continue
        behind = max(behind, now - due)
        j = i + 1  # with it, everything else due by now: one write
        while j < len(load) and t0 + load[j].send_ns - now <= EARLY_NS:
            j += 1
        stamp = time.time_ns()
        for o in load[i:j]:
            if o.timed:
                sent_at[(o.device_id, o.ts_ns)] = stamp
        publisher.send(packets[i:j])
        i = j
    seconds = (time.monotonic_ns() - t0) / NS
    publisher.wait_acked(60)
    results.put(PublisherReport(job.name, len(load), inputs, seconds, behind / NS, time.process_time() - cpu0, sent_at))
    publisher.close()


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


def metric(port: int, *names: str) -> float:
    """The sum of the worker's metrics of these names (over all their labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(names))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and the processes it started (Linux /proc): the
    worker with --input-process is two."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # gone meanwhile
    return total


class PrivateMosquitto:
    """A Mosquitto of the benchmark's own, set up as docs/deploy.md says for a store's broker (a large
    per-client queue), so the shared broker's settings and traffic do not enter the figures."""

    def __init__(self, folder: Path) -> None:
        assert MOSQUITTO is not None
        self.address = BrokerAddress("127.0.0.1", free_port())
        conf = folder / "mosquitto.conf"
        settings = [
            f"user {getpass.getuser()}",
            f"listener {self.address.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 200000",
            "max_inflight_messages 200",
        ]
        conf.write_text("\n".join(settings) + "\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise SystemExit(f"mosquitto did not start (exit code {self.proc.returncode})")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def split_quiet(store: StoreLayout, quiet: list[str], parts: int) -> list[list[QuietShelf]]:
    shelves = [
        QuietShelf(s.id, s.scale.device_id, tuple(p.id for p in s.plates), s.scale.rate_hz, s.scale.samples_per_message)
        for s in (store.shelves_by_id[sid] for sid in quiet)
    ]
    return [shelves[k::parts] for k in range(parts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shelves", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--shoppers", type=int, default=60, help="over 3 minutes; the first --seconds are sent")
    parser.add_argument("--publishers", type=int, default=3, help="load generator processes (at least 2)")
    parser.add_argument("--broker", help="default: a private Mosquitto, else the embedded broker")
    parser.add_argument("--worker-args", default="", help="more arguments for store-edge run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    base = load_store(ROOT / "sample_data" / "stores" / "demo.yaml")
    store, quiet = large_store(base, args.shelves)
    n_shelves = len(store.shelves_by_id)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        private = PrivateMosquitto(tmp) if args.broker is None and MOSQUITTO else None
        embedded = EmbeddedBroker().start() if args.broker is None and private is None else None
        broker = (
            private.address if private else embedded.address if embedded else parse_broker_url(args.broker, os.environ)
        )
        print(f"building the load: {n_shelves} shelves, {store.plate_count} plates", file=sys.stderr)
        # the quiet copies' clocks run with the edge's, as the simulated store's tracker does (had they
        # run ahead of it, the merge would see a later "newest" and hand shelves on sooner)
        sim, start_ns = simulated_messages(base, args.shoppers, args.seconds, args.seed, tmp)
        store_file = tmp / "large-store.yaml"
        store_file.write_text(yaml.safe_dump(store.model_dump(mode="json", exclude_none=True), sort_keys=False))
        worker_id = f"bench-edge-{uuid.uuid4().hex[:6]}"
        health = free_port()
        worker = subprocess.Popen(
            [sys.executable, "-m", "store_edge.cli", "run", "--store", str(store_file), "--broker", broker.url,
             "--state-dir", str(tmp / "state"), "--health-port", str(health), "--worker-id", worker_id,
             *shlex.split(args.worker_args)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        listener = CartListener(broker, store.store_id, worker_id)
        jobs = [PublisherJob("shoppers", broker, store.store_id, sim, [], start_ns, args.seconds, args.seed)]
        for k, part in enumerate(split_quiet(store, quiet, max(1, args.publishers - 1))):
            jobs.append(PublisherJob(f"quiet{k}", broker, store.store_id, [], part, start_ns, args.seconds, args.seed))
        try:
            wait_healthy(health, worker)
            listener.link.start()
            listener.link.subscribed.wait(10)
            result = publish_and_measure(jobs, health, store, listener, worker.pid, private)
        finally:
            worker.terminate()
            worker.wait(30)
            listener.link.stop()
            if private:
                private.stop()
            if embedded:
                embedded.stop()
    print_table(args, n_shelves, store.plate_count, broker, result)


@dataclass
class Result:
    inputs: int
    """Offered messages the engine consumes (device status messages are not its input)."""
    offered: int
    publish_s: float
    publishers_behind_s: float
    taken_in: float
    taken_in_during: float
    lost: float
    age_max: float
    age_end: float
    drain_s: float
    plate_samples_per_s: float
    """As scheduled: every plate of every shelf at its scale's rate."""
    latencies_ms: list[float]
    cpu: dict[str, float]
    load_avg: tuple[float, float]


def publish_and_measure(
    jobs: list[PublisherJob],
    health: int,
    store: StoreLayout,
    listener: CartListener,
    worker_pid: int,
    private: PrivateMosquitto | None,
) -> Result:
    ctx = mp.get_context("spawn")  # this process runs MQTT threads: no fork
    ready: mp.Queue[str] = ctx.Queue()
    results: mp.Queue[PublisherReport] = ctx.Queue()
    go_at: Synchronized[int] = ctx.Value(ctypes.c_longlong, 0)
    procs = [ctx.Process(target=run_publisher, args=(job, ready, go_at, results), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    for _ in procs:
        print(f"publisher {ready.get(timeout=600)} ready", file=sys.stderr)
    before = metric(health, *HANDLED)
    load0 = os.getloadavg()[0]
    pids = {"worker": worker_pid} | ({"broker": private.proc.pid} if private else {})
    cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
    go_at.value = time.monotonic_ns() + NS // 2  # CLOCK_MONOTONIC is the same in every process
    # the load's data times start at start_ns, not now: what the worker's input age gauge reads beyond
    # this offset is how far behind it is
    data_clock_offset_s = (time.time_ns() + NS // 2 - jobs[0].start_ns) / NS
    time.sleep(0.5)
    started = time.monotonic()
    age_max = 0.0
    reports: list[PublisherReport] = []
    while len(reports) < len(jobs):
        try:
            reports.append(results.get(timeout=1.0))
        except queue.Empty:  # still publishing
            age_max = max(age_max, metric(health, "edge_input_age_seconds") - data_clock_offset_s)
    publish_s = time.monotonic() - started
    during = metric(health, *HANDLED) - before
    age_end = metric(health, "edge_input_age_seconds") - data_clock_offset_s
    cpu = {k: cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
    cpu["publishers"] = sum(r.cpu_s for r in reports)
    load1 = os.getloadavg()[0]
    for p in procs:
        p.join(30)
    inputs = sum(r.inputs for r in reports)
    end = time.monotonic()
    total = during
    while time.monotonic() - end < 120:
        total = metric(health, *HANDLED) - before
        if total >= inputs:
            break
        time.sleep(0.1)
    drain_s = time.monotonic() - end
    time.sleep(2)
    lost = metric(health, "edge_sequence_gaps")
    sent_at = {k: v for r in reports for k, v in r.sent_at.items()}
    scale_of = {s.id: s.scale.device_id for s in store.shelves_by_id.values()}
    latencies: list[float] = []
    with listener.lock:
        for recv_ns, msg, events in listener.new_lines:
            for event_id in events:
                shelf = event_id.rsplit("-e", 1)[0]
                sent = sent_at.get((scale_of.get(shelf, ""), msg.header.ts_ns))
                if sent is not None:
                    latencies.append((recv_ns - sent) / 1e6)
    return Result(
        inputs=inputs,
        offered=sum(r.published for r in reports),
        publish_s=publish_s,
        publishers_behind_s=max(r.behind_s for r in reports),
        taken_in=total,
        taken_in_during=during,
        lost=lost,
        age_max=age_max,
        age_end=age_end,
        drain_s=drain_s,
        plate_samples_per_s=sum(len(s.plates) * s.scale.rate_hz for s in store.shelves_by_id.values()),
        latencies_ms=latencies,
        cpu={k: v / publish_s for k, v in cpu.items()},
        load_avg=(load0, load1),
    )


def print_table(args: argparse.Namespace, shelves: int, plates: int, broker: BrokerAddress, r: Result) -> None:
    lat = sorted(r.latencies_ms)

    def pct(q: float) -> str:
        return f"{lat[min(len(lat) - 1, int(q * len(lat)))]:.0f}" if lat else "-"

    rate = r.inputs / r.publish_s
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, {broker.url}")
    print(f"load average (1 min) before / after publishing: {r.load_avg[0]:.2f} / {r.load_avg[1]:.2f}")
    print(
        "CPU (cores busy while publishing): " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu.items()) + "; "
        f"publishers at most {r.publishers_behind_s * 1000:.0f} ms behind schedule"
    )
    print()
    print(
        "| shelves | plates | seconds | input msg/s offered | plate samples/s | taken in while publishing | "
        "input age max / end | drain after | lost | new lines | latency p50 ms | p99 ms | max ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {shelves:,} | {plates:,} | {r.publish_s:.0f} | {rate:,.0f} | {r.plate_samples_per_s:,.0f} | "
        f"{r.taken_in_during / r.inputs:.0%} | {r.age_max:.2f} / {r.age_end:.2f} s | {r.drain_s:.1f} s | "
        f"{r.lost:,.0f} | {len(lat)} | {pct(0.5)} | {pct(0.99)} | {(lat[-1] if lat else 0):.0f} |"
    )
    if 0 < len(lat) <= 100:  # few lines: the percentiles are rough, so show them all
        print("\nlatencies ms: " + " ".join(f"{x:.0f}" for x in lat))
    elif lat:  # the tail, which the p99 of a few hundred lines is made of
        print("\nslowest 10 latencies ms: " + " ".join(f"{x:.0f}" for x in lat[-10:]))
    if r.taken_in < r.inputs:
        print(f"\nthe worker took in {r.taken_in:,.0f} of {r.inputs:,} input messages within 120 s of the end")


if __name__ == "__main__":
    main()
