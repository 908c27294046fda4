"""`store-edge run`: the fusion engine live on a store's MQTT topics.

One composition: MQTT in (paho's thread only queues) -> a worker thread that decodes, drops duplicates,
journals, merges behind the watermark and drives the engine -> cart updates and review tickets out
on MQTT, finished carts into the outbox -> a sender thread hands them to the cloud.

Messages are acknowledged to the broker only once journaled (manual acks on a persistent session), so
whatever the broker delivered is either in the journal or will be delivered again after a crash. A
thread of its own journals and acknowledges as messages arrive, apart from the engine: a broker holds
only so many unacknowledged messages for a client (Mosquitto: 1,000) and drops the rest.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
import pickle
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from store_edge import __version__
from store_edge.fusion.engine import Cart, EngineOutput, EngineParams, FusionEngine
from store_edge.fusion.engine import ReviewTicket as EngineTicket
from store_edge.fusion.evidence import WeightTraceBuffer, ticket_evidence
from store_edge.fusion.sensor_health import FaultKind, SensorFault
from store_edge.layout.model import StoreLayout
from store_edge.live.clock import ClockOffsets, ClockParams
from store_edge.live.cloud import CloudSender
from store_edge.live.ingest import Deduplicator, LateMessageError, Reorderer
from store_edge.live.input_process import InputProcess
from store_edge.live.mqtt import BrokerAddress, MqttLink
from store_edge.live.state import Journal, Outbox
from store_edge.protocol import messages as m
from store_edge.protocol.codec import ProtocolError, decode, encode
from store_edge.protocol.topics import ParsedTopic, parse_topic, store_prefix, subscription, topic_for

log = logging.getLogger(__name__)
NS = 1_000_000_000
INPUT_KINDS = {"weight", "curtain", "gate_scan", "gate_decision", "gate_passage", "shopper_tracks"}
"""What the engine consumes; the worker's own outputs and other devices' chatter are not its input."""
SENSOR_ROLES = {"scale", "curtain", "gate", "tracker"}
"""Devices whose status messages are samples of their clocks (`ClockOffsets`)."""


@dataclass(frozen=True)
class WorkerConfig:
    state_dir: Path
    lag_s: float = 0.5
    """The longest the merge waits for a device that has gone quiet."""
    jitter_s: float = 0.1
    """How far a device's message may trail its peers' (network delay spread) without being late."""
    idle_flush_s: float = 1.0
    """Inputs quiet this long (wall clock): nothing is in flight, release what waits."""
    snapshot_every_s: float = 300.0
    """How often the worker's state is saved and the journal rows it includes are deleted."""
    worker_id: str | None = None
    input_process: bool = False
    """Receive, journal and acknowledge in a child process (`store_edge.live.input_process`), so the
    engine does not share one interpreter lock with the MQTT client and the journal."""
    merge: Literal["shelf", "total"] = "shelf"
    """"shelf": each shelf's scale and curtain are merged with the shared devices (tracker, gates) only,
    so a shelf's event waits for them and not for the slowest of the store's scales (lower latency);
    "total": every device with every other, in one timestamp order (as `store-edge eval` does)."""
    engine: EngineParams = field(default_factory=EngineParams)
    clock: ClockParams = field(default_factory=ClockParams)
    """Device clock offsets: estimated from the stream, timestamps corrected before the merge
    (`store_edge.live.clock`)."""


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("edge_messages_in", "Input messages accepted, by kind", ["kind"], registry=r)
        self.duplicates = Counter("edge_duplicates", "QoS 1 repeats dropped", registry=r)
        self.sequence_gaps = Gauge("edge_sequence_gaps", "Messages devices sent that never came", registry=r)
        self.late = Counter("edge_late_messages", "Messages behind the watermark (dead-lettered)", registry=r)
        self.dead_letters = Counter("edge_dead_letters", "Messages dead-lettered, by reason", ["reason"], registry=r)
        self.lag = Gauge("edge_merge_lag_seconds", "Newest input timestamp minus the engine's", registry=r)
        self.open_visits = Gauge("edge_open_visits", "Visits whose cart is open", registry=r)
        self.review_tickets = Counter("edge_review_tickets", "Review tickets raised", registry=r)
        self.outbox_depth = Gauge("edge_outbox_depth", "Finished carts not yet acknowledged by the cloud", registry=r)
        self.input_age = Gauge(
            "edge_input_age_seconds",
            "Wall clock minus the data time of the newest input handled: while devices talk, growing means behind",
            registry=r,
        )
        self.clock_offset = Gauge(
            "edge_device_clock_offset_seconds",
            "A device's clock minus the store's (the scales' median), once its estimate is confident",
            ["device"],
            registry=r,
        )
        self.clock_corrected = Counter(
            "edge_clock_corrected_messages",
            "Messages whose timestamps were corrected for their device's clock",
            registry=r,
        )
        self.sensor_faulty = Gauge(
            "edge_sensor_faulty",
            "1 while a plate or light curtain is faulty (kind: frozen, no_reading, stuck_on), 0 once it is back",
            ["sensor", "kind"],
            registry=r,
        )
        self.sensor_faults = Counter(
            "edge_sensor_faults",
            "Sensor faults that began, by kind (not counted again when a restart replays the journal)",
            ["kind"],
            registry=r,
        )
        self.handled = Counter(
            "edge_messages_handled",
            "Input messages taken from the journal by the engine's thread (a replay paces itself by it)",
            registry=r,
        )
        self.process_seconds = Histogram(
            "edge_process_seconds",
            "Time to handle one batch of input",
            registry=r,
            buckets=(0.001, 0.01, 0.05, 0.25, 1),
        )


def cart_message(cart: Cart, header: m.Header) -> m.CartUpdate:
    return m.CartUpdate(
        header=header,
        visit_id=cart.visit_id,
        version=cart.version,
        state=cart.state,
        lines=[
            m.CartLine(
                line_id=ln.line_id,
                sku=ln.sku,
                quantity=ln.quantity,
                confidence=round(ln.confidence, 4),
                event_ids=[ln.event_id],
                status=ln.status,
            )
            for ln in cart.lines
        ],
    )


def ticket_message(t: EngineTicket, header: m.Header, evidence: m.TicketEvidence | None = None) -> m.ReviewTicket:
    return m.ReviewTicket(
        evidence=evidence,
        header=header,
        ticket_id=t.ticket_id,
        event_id=t.event.event_id,
        reason=t.reason,
        shelf_id=t.event.shelf_id,
        plate_ids=list(t.event.plate_deltas_g),
        products=[
            m.ProductCandidate(sku=sku, quantity=q, probability=round(h.probability, 4))
            for h in t.products
            for sku, q in h.items
        ],
        shoppers=[m.ShopperCandidate(visit_id=c.visit_id, probability=round(c.probability, 4)) for c in t.shoppers],
        window_ns=(t.event.start_ns, t.event.end_ns),
    )


def tune_garbage_collection() -> None:
    """For a worker process, once it has started: CPython's default collector (a young collection every
    700 new container objects, a full one every 100 of those) walks the engine's whole state (plate
    histories, trace buffers, tracks) again and again: measured at 400 shelves, 17% of the worker's
    CPU and pauses of up to 270 ms, which became the tail of the event-to-cart latency. Nearly all
    garbage here is freed by reference counting, so collections can be rare; what exists at start-up
    (the store layout, code) is never collected at all."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def shelf_lanes(store: StoreLayout) -> dict[str, str]:
    """Each shelf's scale and light curtain -> the shelf: the merge's lanes (see `Reorderer`)."""
    lanes = {shelf.scale.device_id: shelf.id for shelf in store.shelves_by_id.values()}
    lanes |= {shelf.curtain.device_id: shelf.id for shelf in store.shelves_by_id.values() if shelf.curtain}
    return lanes


class EdgeWorker:
    """The live worker. `handle_raw` is the whole input path; the MQTT and HTTP parts wrap it."""

    def __init__(self, store: StoreLayout, config: WorkerConfig, link: MqttLink | None = None) -> None:
        self.store = store
        self.config = config
        self.worker_id = config.worker_id or f"edge-{store.store_id}"
        self.boot_id = uuid.uuid4().hex[:12]
        self._seq = 0
        config.state_dir.mkdir(parents=True, exist_ok=True)
        db = config.state_dir / "edge-state.sqlite"
        self.journal = Journal(db)
        self.outbox = Outbox(db)
        self.metrics = WorkerMetrics()
        self._messages_in: dict[str, Any] = {}
        self.traces = WeightTraceBuffer()
        """The last seconds of every shelf's readings (the engine feeds it): the evidence of review tickets."""
        self.engine = FusionEngine(store, config.engine, traces=self.traces)
        self.tickets: dict[str, tuple[set[str], m.ReviewTicket]] = {}
        """Open review tickets (with their line ids) until the carts of their lines close."""
        self.dedup = Deduplicator()
        scales = [shelf.scale.device_id for shelf in store.shelves_by_id.values()]
        lanes = shelf_lanes(store) if config.merge == "shelf" else None
        self._curtains = [shelf.curtain.device_id for shelf in store.shelves_by_id.values() if shelf.curtain]
        self.reorder = Reorderer(round(config.lag_s * NS), round(config.jitter_s * NS), scales, lanes, self._curtains)
        self.clocks = ClockOffsets(scales, config.clock)
        """The scales' median clock is the store's; each device's offset from it is taken off."""
        self._faulty: set[tuple[str, FaultKind]] = set()
        """(sensor, kind) of the faults `edge_sensor_faulty` shows as 1: the engine's in force when last
        told of a change. Not in snapshots: rebuilt from the engine's monitor at recovery."""
        self.link = link
        self.sender: CloudSender | None = None
        self.inbox: queue.Queue[tuple[str, bytes, int | None]] = queue.Queue()
        """From the broker, not yet journaled."""
        self.work: queue.Queue[list[tuple[int, str, bytes]]] = queue.Queue()
        """Batches journaled (with their journal row ids) and acknowledged, not yet handled."""
        self._handled_id = 0
        """The last journal row handled: a snapshot taken now includes every row up to it."""
        self._last_snapshot = time.monotonic()
        self._stop = threading.Event()
        self._last_input = time.monotonic()
        self._replaying = False
        self.prefix = store_prefix(store.store_id)
        self._thread = threading.Thread(target=self._loop, name="edge-worker", daemon=True)
        self._journal_thread = threading.Thread(target=self._journal_loop, name="edge-journal", daemon=True)

    # --- outputs -------------------------------------------------------------------------------
    def _header(self, ts_ns: int | None = None) -> m.Header:
        self._seq += 1
        return m.Header(device_id=self.worker_id, boot_id=self.boot_id, seq=self._seq, ts_ns=ts_ns or time.time_ns())

    def _publish(self, msg: m.Message, retain: bool = False) -> None:
        if self.link is not None and not self._replaying:
            self.link.publish(topic_for(self.store.store_id, msg), encode(msg), retain=retain)

    def status_message(self, status: Literal["online", "offline"]) -> m.DeviceStatus:
        return m.DeviceStatus(header=self._header(), role="edge", status=status, software=f"store-edge {__version__}")

    def _dead_letter(self, topic: str, payload: bytes, reason: str, label: str) -> None:
        if self._replaying:
            return  # dead-lettered before the restart already
        self.metrics.dead_letters.labels(label).inc()
        log.warning("dead letter from %s: %s", topic, reason)
        self._publish(
            m.DeadLetter(
                header=self._header(),
                topic=topic,
                reason=reason,
                payload_b64=base64.b64encode(payload).decode("ascii"),
            )
        )

    def _emit(self, out: EngineOutput, data_ns: int | None = None) -> None:
        """Publish and queue what the engine decided; `data_ns`: the data time of the message that made
        it (default: the engine's newest time)."""
        data_ns = self.engine.now_ns if data_ns is None else data_ns
        for cart in out.changed_carts:
            if cart.state != "closed":
                self._publish(cart_message(cart, self._header(data_ns)), retain=True)
        for ticket in out.tickets:
            if not self._replaying:
                self.metrics.review_tickets.inc()
            ev = ticket.event
            evidence = ticket_evidence(
                self.traces, self.engine.shoppers, ev.shelf_id, list(ev.plate_deltas_g), ticket.shoppers,
                ev.start_ns, ev.end_ns,
            )  # fmt: skip
            ticket_msg = ticket_message(ticket, self._header(data_ns), evidence)
            self.tickets[ticket.ticket_id] = (set(ticket.line_ids), ticket_msg)
            self._publish(ticket_msg, retain=True)
        for ticket_id in out.withdrawn_tickets:
            withdrawn = self.tickets.pop(ticket_id, None)
            if withdrawn is not None and self.link is not None and not self._replaying:
                # an empty retained payload clears the ticket published before
                self.link.publish(topic_for(self.store.store_id, withdrawn[1]), b"", retain=True)
        for cart in out.closed_carts:
            msg = cart_message(cart, self._header(data_ns))
            self._publish(msg, retain=True)
            line_ids = {ln.line_id for ln in cart.lines}
            tickets = [t for lines, t in self.tickets.values() if lines & line_ids]
            if self.outbox.put(cart.visit_id, _settlement_payload(self.store.store_id, cart, msg, tickets)):
                log.info("cart %s closed: %s", cart.visit_id, cart.receipt)
            if self.sender is not None:
                self.sender.wake()
        if out.closed_carts:
            # after every closed cart took its tickets: one forgotten earlier would be missing from the next
            self._forget_settled_tickets()

    def _forget_settled_tickets(self) -> None:
        """A ticket goes with the carts of its lines; once they are all closed the worker lets it go."""
        open_lines = {ln.line_id for c in self.engine.carts.values() if c.state != "closed" for ln in c.lines}
        for ticket_id in [tid for tid, (lines, _) in self.tickets.items() if not lines & open_lines]:
            del self.tickets[ticket_id]

    # --- input ---------------------------------------------------------------------------------
    def handle_raw(self, topic: str, payload: bytes) -> bool:
        """One message as it came off the broker. True if the engine takes it."""
        parsed = parse_topic(topic)
        if parsed is not None and parsed.kind not in INPUT_KINDS:
            if parsed.kind == "device_status" and parsed.store_id == self.store.store_id:
                self._clock_sample(topic, payload, parsed)
            return False  # our own outputs, device status, camera data for the vision worker
        try:
            msg = decode(topic, payload, parsed)
        except ProtocolError as e:
            self._dead_letter(topic, payload, e.reason, "malformed")
            return False
        if parsed is not None and parsed.store_id != self.store.store_id:
            self._dead_letter(topic, payload, f"message for store {parsed.store_id!r} on {self.prefix}", "store")
            return False
        if not self.dedup.accept(msg):
            self.metrics.duplicates.inc()
            return False
        corrected = self.clocks.correct(msg)
        if corrected is not msg:
            self.metrics.clock_corrected.inc()
            msg = corrected
        self._clock_changes()
        try:
            ready = self.reorder.push(msg)
        except LateMessageError as e:
            self.metrics.late.inc()
            self._dead_letter(topic, payload, f"late: {e}", "late")
            return False
        counter = self._messages_in.get(msg.kind)
        if counter is None:  # one labelled child per kind, looked up once (labels() takes a lock)
            counter = self._messages_in[msg.kind] = self.metrics.messages_in.labels(msg.kind)
        counter.inc()
        self._feed(ready)
        return True

    def _clock_sample(self, topic: str, payload: bytes, parsed: ParsedTopic) -> None:
        """A sensor's status message (its birth at connect, its goodbye) is a sample of its clock: a
        curtain or a gate may say nothing else before its first event. Not dead-lettered when it
        cannot be read: the engine does not use it."""
        try:
            msg = decode(topic, payload, parsed)
        except ProtocolError:
            return
        if isinstance(msg, m.DeviceStatus) and msg.role in SENSOR_ROLES:
            self.clocks.observe(msg.header.device_id, msg.header.ts_ns)
            self._clock_changes()

    def _clock_changes(self) -> None:
        """Where a device's clock estimate or correction changed: its gauge, and a warning for the
        operator when it is off by more than `clock.warn_s` (not again while replaying the journal)."""
        if not self.clocks.changes:
            return
        for c in self.clocks.take_changes():
            self.metrics.clock_offset.labels(c.device).set(c.offset_ns / NS)
            if c.warn and not self._replaying:
                log.warning(
                    "device %s: clock %+.3f s off the store's (the scales' median); its timestamps are corrected by "
                    "%+.3f s: check its time sync (NTP)",
                    c.device,
                    c.offset_ns / NS,
                    c.shift_ns / NS,
                )

    def _feed(self, ready: list[m.Message]) -> None:
        for msg in ready:
            out = self.engine.handle(msg)
            if out.sensor_faults:
                self._sensor_faults(out.sensor_faults)
            if out.changed_carts or out.tickets or out.withdrawn_tickets or out.closed_carts:
                # stamped with the data time of the message that made the change (with shelf lanes
                # the engine's newest time may be a shared device's, ahead of this shelf)
                self._emit(out, msg.header.ts_ns)

    def _sensor_faults(self, changes: list[SensorFault]) -> None:
        """Faults that began or ended with one message: a warning or a note for the operator, the counter
        (neither again while replaying the journal), and the gauge brought to the faults now in force."""
        if not self._replaying:
            for f in changes:
                if f.until_ns is None:
                    self.metrics.sensor_faults.labels(f.kind).inc()
                    log.warning(
                        "sensor %s faulty (%s): %s; what depends on it goes to review", f.sensor, f.kind, f.describe()
                    )
                else:
                    log.info("sensor %s back (%s for %.1f s)", f.sensor, f.kind, (f.until_ns - f.since_ns) / NS)
        self._sync_sensor_gauge()

    def _sync_sensor_gauge(self) -> None:
        """`edge_sensor_faulty` to the engine's faults in force: only the series that changed. A fault that
        began and ended with one message never shows (the counter has it)."""
        now = {(f.sensor, f.kind) for f in self.engine.health.active()}
        if now == self._faulty:
            return
        for sensor, kind in now - self._faulty:
            self.metrics.sensor_faulty.labels(sensor, kind).set(1)
        for sensor, kind in self._faulty - now:
            self.metrics.sensor_faulty.labels(sensor, kind).set(0)
        self._faulty = now

    def open_visits(self) -> int:
        return sum(1 for c in self.engine.carts.values() if c.state != "closed")

    def _update_gauges(self) -> None:
        """Once per batch, not per message: counting open carts walks them all."""
        self.metrics.lag.set(self.reorder.lag_behind_ns / NS)
        self.metrics.open_visits.set(self.open_visits())
        self.metrics.sequence_gaps.set(self.dedup.gaps)
        if self.reorder.newest_ns is not None:
            self.metrics.input_age.set((time.time_ns() - self.reorder.newest_ns) / NS)

    def _inputs_quiet(self) -> bool:
        """Nothing has come for a while and nothing can be on its way. Not while the broker link is down
        (the broker keeps what the devices send meanwhile), nor just after it came back (the backlog is
        about to arrive): a flush then would make the backlog late."""
        link = self.link
        if link is not None and not link.connected.is_set():
            return False
        since = max(self._last_input, link.connected_since if link is not None else 0.0)
        return time.monotonic() - since >= self.config.idle_flush_s

    def flush(self) -> None:
        """Inputs have gone quiet: release what waits behind the watermark."""
        self._feed(self.reorder.flush())
        self._update_gauges()

    def snapshot(self) -> int:
        """Save the whole state (engine, deduplicator, merge buffer, clock estimates) and delete the
        journal rows it includes. Called between messages on the worker thread. Returns the rows deleted."""
        state = pickle.dumps(
            (self.engine, self.dedup, self.reorder, self.traces, self.tickets, self.clocks),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        removed = self.journal.save_snapshot(self._handled_id, __version__, state, time.time_ns())
        self._last_snapshot = time.monotonic()
        log.info(
            "snapshot: %d bytes of state up to journal row %d; %d rows pruned", len(state), self._handled_id, removed
        )
        return removed

    def _load_snapshot(self) -> int:
        """Restore the last snapshot; returns the journal row it includes (0: none)."""
        snap = self.journal.snapshot()
        if snap is None:
            return 0
        if snap.software != __version__:
            log.warning("snapshot written by %s, this is %s: loading it anyway", snap.software, __version__)
        try:
            state = pickle.loads(snap.state)  # ours: trusted
            # a snapshot from before clock offsets has no estimates: they start again from the journal
            self.engine, self.dedup, self.reorder, self.traces, self.tickets = state[:5]
            # which devices are event devices is the store's, not the saved state's (one saved before
            # curtains were would keep them holding their shelves for good)
            self.reorder.event_devices = frozenset(self._curtains)
            self.engine.traces = self.traces  # the same buffer (one saved before the engine fed it: not yet)
            if len(state) > 5:
                self.clocks = state[5]
        except Exception:
            # the rows it covered are gone: say loudly what is lost rather than refuse to run the store
            log.exception(
                "the snapshot of %s cannot be loaded; carts open then lose the lines before it", snap.software
            )
        return snap.journal_id

    def recover(self) -> int:
        """Rebuild the state after a restart: the last snapshot, then the journal rows after it (outputs
        are not published again; finished carts already in the outbox are not queued twice)."""
        self._replaying = True
        n = 0
        try:
            self._handled_id = self._load_snapshot()
            for row_id, topic, payload in self.journal.replay(after_id=self._handled_id):
                n += self.handle_raw(topic, payload)
                self._handled_id = row_id
        finally:
            self._replaying = False
        # faults in force in the snapshot (metrics are not in it) or found again in the journal
        self._sync_sensor_gauge()
        for f in self.engine.health.active():
            log.warning("sensor %s faulty (%s) after recovery: %s", f.sensor, f.kind, f.describe())
        for cart in self.engine.carts.values():
            if cart.state != "closed":
                self._publish(cart_message(cart, self._header(self.engine.now_ns)), retain=True)
        self._last_input = time.monotonic()  # the broker redelivers what the journal lacks: not quiet yet
        self._update_gauges()
        if n:
            log.info("recovered %d journaled messages; %d carts open", n, self.open_visits())
        return n

    # --- threads -------------------------------------------------------------------------------
    def enqueue(self, topic: str, payload: bytes, mid: int | None = None) -> None:
        """paho's network thread: queue and return."""
        self.inbox.put((topic, payload, mid))

    def start(self, sender: CloudSender | None = None, journal_thread: bool = True) -> None:
        """`journal_thread`: False where another process journals the input (`InputProcess`)."""
        self.sender = sender
        self.recover()
        if sender is not None:
            sender.start()
        if journal_thread:
            self._journal_thread.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._journal_thread.is_alive():
            self._journal_thread.join(timeout=10)
        self._thread.join(timeout=10)
        if self.sender is not None:
            self.sender.stop()

    @staticmethod
    def _drain(q: queue.Queue[Any], first: Any, most: int = 1000) -> list[Any]:
        batch = [first]
        while len(batch) < most:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        return batch

    def _journal_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = self._drain(self.inbox, first)
            now = time.time_ns()
            ids = self.journal.append([(now, topic, payload) for topic, payload, _ in batch])
            if self.link is not None:
                for _, _, mid in batch:
                    if mid is not None:
                        self.link.ack(mid)
            self.work.put([(row_id, topic, payload) for row_id, (topic, payload, _) in zip(ids, batch, strict=True)])

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.work.get(timeout=0.05)
            except queue.Empty:
                if len(self.reorder) and self._inputs_quiet():
                    self.flush()
                self.metrics.outbox_depth.set(self.outbox.depth())
                continue
            batch = [item for part in self._drain(self.work, first, 20) for item in part]
            self._last_input = time.monotonic()
            with self.metrics.process_seconds.time():
                for row_id, topic, payload in batch:
                    try:
                        self.handle_raw(topic, payload)
                    except Exception as e:  # a bug must not stop the store: keep the message, say why
                        log.exception("error handling a message on %s", topic)
                        self._dead_letter(topic, payload, f"edge error: {type(e).__name__}: {e}", "error")
                    self._handled_id = row_id
            self.metrics.handled.inc(len(batch))
            self._update_gauges()
            if time.monotonic() - self._last_snapshot >= self.config.snapshot_every_s:
                self.snapshot()


def _settlement_payload(store_id: str, cart: Cart, msg: m.CartUpdate, tickets: Sequence[m.ReviewTicket] = ()) -> bytes:
    """What the cloud receives for a finished visit: the charged receipt, the lines with their status
    (lines under review must not be charged until staff decide), and the review tickets of those lines
    with their evidence (weight traces, where the candidates stood)."""
    body: dict[str, Any] = {
        "store_id": store_id,
        "visit_id": cart.visit_id,
        "account_id": cart.account_id,
        "closed_ns": cart.closed_ns,
        "receipt": [{"sku": s, "quantity": q} for s, q in cart.receipt.items()],
        "cart": json.loads(encode(msg)),
        "tickets": [json.loads(encode(t)) for t in tickets],
    }
    return json.dumps(body, sort_keys=True).encode()


class HealthServer:
    """`/metrics` (Prometheus) and `/healthz` (JSON: broker connected, lag, outbox depth)."""

    def __init__(self, worker: EdgeWorker, host: str, port: int) -> None:
        self.worker = worker
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, ctype, code = generate_latest(worker.metrics.registry), "text/plain; version=0.0.4", 200
                elif self.path == "/healthz":
                    health = outer.health()
                    body, ctype = json.dumps(health).encode(), "application/json"
                    code = 200 if health["ok"] else 503
                else:
                    body, ctype, code = b'{"message": "not found: try /healthz or /metrics"}', "application/json", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def health(self) -> dict[str, Any]:
        w = self.worker
        connected = w.link is not None and w.link.connected.is_set()
        return {
            "ok": connected and w._thread.is_alive(),
            "broker_connected": connected,
            "merge_lag_s": w.reorder.lag_behind_ns / NS,
            "open_visits": w.open_visits(),
            "outbox_depth": w.outbox.depth(),
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()


class RunningWorker:
    """A worker wired to its broker, cloud sender and health server; `stop()` shuts it down cleanly."""

    def __init__(
        self,
        store: StoreLayout,
        broker: BrokerAddress,
        cloud_url: str | None,
        config: WorkerConfig,
        health_port: int | None = None,
        cloud_key: str | None = None,
    ) -> None:
        self.worker = worker = EdgeWorker(store, config)
        offline = worker.status_message("offline")
        subscriptions = (subscription(store.store_id),)
        will = (topic_for(store.store_id, offline), encode(offline))
        self.input: InputProcess | None = None
        if config.input_process:
            # the child holds the worker's session; this process only publishes, on a session of its own
            self.input = InputProcess(broker, worker.worker_id, subscriptions, will, worker.journal.path, worker.work)
            self.link = MqttLink(broker, client_id=f"{worker.worker_id}-out")
        else:
            self.link = MqttLink(
                broker,
                client_id=worker.worker_id,
                on_message=worker.enqueue,
                subscriptions=subscriptions,
                will=will,
                persistent_session=True,  # the broker queues QoS 1 input while the worker restarts
                manual_ack=True,
            )
        worker.link = self.link
        self.sender = CloudSender(worker.outbox, cloud_url, cloud_key) if cloud_url else None
        self.health = HealthServer(worker, "127.0.0.1", health_port) if health_port is not None else None

    def start(self, wait_s: float = 10.0) -> RunningWorker:
        self.worker.start(self.sender, journal_thread=self.input is None)
        self.link.start(wait_s)
        if self.input is not None:
            self.input.start(wait_s)  # after recovery
        else:
            self.link.subscribed.wait(wait_s)
        self.worker._publish(self.worker.status_message("online"), retain=True)
        if self.health is not None:
            self.health.start()
        return self

    @property
    def failed(self) -> bool:
        """The input process has ended on its own: this worker takes no more input and should exit."""
        return self.input is not None and self.input.ended.is_set()

    def stop(self) -> None:
        self.worker._publish(self.worker.status_message("offline"), retain=True)
        if self.input is not None:
            self.input.stop()
        self.worker.stop()
        self.link.stop()
        if self.health is not None:
            self.health.stop()
