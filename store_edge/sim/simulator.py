"""`store-edge simulate`: run a scenario in a store and write an MCAP recording of every sensor
message plus the ground truth. The same store, scenario and seed give the same bytes."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from tqdm import tqdm

from store_edge import __version__
from store_edge.layout.loader import RESERVED_TRACKER_ID
from store_edge.layout.model import StoreLayout
from store_edge.protocol import truth as tr
from store_edge.protocol.codec import encode, schema_name
from store_edge.protocol.messages import (
    CameraFrame,
    CurtainEvent,
    DeviceStatus,
    FoxgloveTime,
    GateDecision,
    GatePassage,
    GateScan,
    HandPoint,
    Header,
    Message,
    ShopperTrack,
    ShopperTracks,
    WeightBatch,
)
from store_edge.protocol.topics import topic_for
from store_edge.recording.mcap_io import RecordingWriter
from store_edge.sim.physics import curtain_reports, gate_counts, shelf_signal, track_frames
from store_edge.sim.plan import Plan, build_plan, rng_for, uniform
from store_edge.sim.scenario import Scenario

NS = 1_000_000_000
TRACKER_DEVICE = RESERVED_TRACKER_ID
WIRE_DECIMALS = 2
"""Weight samples go on the wire rounded to 0.01 g."""


@dataclass(order=True)
class _Out:
    log_ns: int
    topic: str
    seq: int
    publish_ns: int = field(compare=False)
    schema: str = field(compare=False)
    model: type[BaseModel] = field(compare=False)
    payload: bytes = field(compare=False)


@dataclass
class _Pending:
    """A device message waiting for its header: sequence numbers go in device time order."""

    true_ns: int
    device_ns: int
    model: type[Message]
    fields: dict[str, Any]
    trusted: bool

    def build(self, header: Header) -> Message:
        if self.trusted:  # bulk sensor data the simulator computed itself: skip re-validation
            return self.model.model_construct(header=header, **self.fields)
        return self.model(header=header, **self.fields)


@dataclass
class SimulationResult:
    out: Path
    plan: Plan
    messages_by_topic_kind: Counter[str]
    truth_counts: Counter[str]
    duration_s: float

    @property
    def message_count(self) -> int:
        return sum(self.messages_by_topic_kind.values()) + sum(self.truth_counts.values())


class _Emitter:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.seed = plan.scenario.seed
        self.start_ns = plan.scenario.start_ns
        self.pending: dict[str, list[_Pending]] = defaultdict(list)
        self.offsets: dict[str, int] = {}
        self.truth: list[_Out] = []
        # shelf devices keep their own clocks; the tracker, gates and cameras sit on the edge's clock
        self.skewed_devices = {s.scale.device_id for g in plan.store.gondolas for s in g.shelves} | {
            s.curtain.device_id for g in plan.store.gondolas for s in g.shelves if s.curtain is not None
        }

    def ns(self, t_s: float) -> int:
        return self.start_ns + round(t_s * NS)

    def clock_offset_ns(self, device: str) -> int:
        if device not in self.offsets:
            std_ms = self.plan.scenario.noise.load_cell.clock_offset_ms_std if device in self.skewed_devices else 0.0
            self.offsets[device] = round(rng_for(self.seed, "clock", device).normal(0, std_ms) * 1e6) if std_ms else 0
        return self.offsets[device]

    def device(
        self,
        device: str,
        t_s: float,
        model: type[Message],
        *,
        trusted: bool = False,
        **fields: Any,
    ) -> None:
        """Queue a message from `device` about time `t_s`; its header is filled in by `finish`."""
        true_ns = self.ns(t_s)
        device_ns = true_ns + self.clock_offset_ns(device)
        self.pending[device].append(_Pending(true_ns, device_ns, model, fields, trusted))

    def add_truth(self, topic: str, t_s: float, item: BaseModel) -> None:
        ns = self.ns(t_s)
        self.truth.append(
            _Out(
                ns,
                topic,
                len(self.truth),
                ns,
                f"cl.v1.{type(item).__name__}",
                type(item),
                item.model_dump_json().encode(),
            )
        )

    def finish(self) -> list[_Out]:
        store_id = self.plan.store.store_id
        lat = self.plan.scenario.noise.network.latency_ms
        out: list[_Out] = []
        for device in sorted(self.pending):
            items = sorted(self.pending[device], key=lambda p: (p.device_ns, p.true_ns))
            boot = hashlib.sha256(f"{self.seed}/{device}".encode()).hexdigest()[:16]
            rng = rng_for(self.seed, "latency", device)
            last_log = 0
            for seq, p in enumerate(items):
                msg = p.build(Header(device_id=device, boot_id=boot, seq=seq, ts_ns=p.device_ns))
                # MQTT keeps one device's messages in order, so arrival times never cross
                log_ns = max(last_log + 1, p.true_ns + round(uniform(rng, lat) * 1e6))
                last_log = log_ns
                out.append(
                    _Out(
                        log_ns,
                        topic_for(store_id, msg),
                        seq,
                        p.device_ns,
                        schema_name(type(msg)),
                        type(msg),
                        encode(msg),
                    )
                )
        return out + self.truth


def _weight_messages(em: _Emitter, plan: Plan, duration_s: float, progress: bool) -> None:
    shelves = [s for g in plan.store.gondolas for s in g.shelves]
    for shelf in tqdm(shelves, desc="load cells", unit="shelf", disable=not progress, leave=False):
        sig = shelf_signal(plan, shelf, duration_s)
        batch = shelf.scale.samples_per_message
        period_ns = round(NS / shelf.scale.rate_hz)
        rows = sig.values.round(WIRE_DECIMALS)
        for i0 in range(0, len(sig.t_s) - batch + 1, batch):
            t0 = float(sig.t_s[i0])
            offset = em.clock_offset_ns(shelf.scale.device_id)
            em.device(
                shelf.scale.device_id,
                float(sig.t_s[i0 + batch - 1]),
                WeightBatch,
                trusted=True,
                kind="weight",
                shelf_id=shelf.id,
                plate_ids=sig.plate_ids,
                t0_ns=em.ns(t0) + offset,
                period_ns=period_ns,
                samples=rows[i0 : i0 + batch].tolist(),
            )
        if shelf.curtain is not None:
            for r in curtain_reports(plan, shelf, duration_s):
                em.device(
                    shelf.curtain.device_id,
                    r.t_s,
                    CurtainEvent,
                    shelf_id=shelf.id,
                    event=r.event,
                    x_m=r.x_m,
                )


def _gate_messages(em: _Emitter, plan: Plan) -> None:
    gates = {g.id: g for g in plan.store.gates}
    crossings: dict[str, list[float]] = defaultdict(list)
    for v in plan.visits:
        gate = gates[v.entry_gate_id]
        assert gate.scanner_id is not None
        em.device(gate.scanner_id, v.scan_s, GateScan, gate_id=gate.id, token=v.token)
        decided = v.scan_s + float(rng_for(em.seed, "decision", v.visit_id).uniform(0.05, 0.25))
        em.device(
            f"gatectl-{gate.id}",
            decided,
            GateDecision,
            gate_id=gate.id,
            decision="open",
            visit_id=v.visit_id,
            account_id=v.account_id,
            party_size=len(v.shopper_ids),
        )
    for p in plan.shoppers:
        visit = next(v for v in plan.visits if v.visit_id == p.visit_id)
        crossings[visit.entry_gate_id].append(p.enter_s)
        crossings[p.exit_gate_id].append(p.exit_s)
    for gate_id, times in sorted(crossings.items()):
        gate = gates[gate_id]
        direction = "in" if gate.kind == "entry" else "out"
        for t, count in gate_counts(plan, gate_id, times):
            em.device(gate.counter_id, t, GatePassage, gate_id=gate_id, direction=direction, count=count)


def _track_messages(em: _Emitter, plan: Plan, duration_s: float) -> None:
    visit_of = {p.shopper.id: p.visit_id for p in plan.shoppers}
    for t, points in track_frames(plan, duration_s):
        tracks = [
            ShopperTrack(
                track_id=p.track_id,
                x=round(p.x, 3),
                y=round(p.y, 3),
                hand=HandPoint(x=round(p.hand[0], 3), y=round(p.hand[1], 3), z=round(p.hand[2], 3)) if p.hand else None,
                appearance=[round(c, 3) for c in p.appearance] if p.appearance else None,
            )
            for p in points
            if p.track_id is not None
        ]
        em.device(TRACKER_DEVICE, t, ShopperTracks, tracks=tracks)
        if points:
            em.add_truth(
                tr.TRUTH_POSITIONS,
                t,
                tr.TruthPositions(
                    t_ns=em.ns(t),
                    shoppers=[
                        tr.ShopperPosition(
                            shopper_id=p.shopper_id,
                            visit_id=visit_of[p.shopper_id],
                            x=round(p.true_x, 3),
                            y=round(p.true_y, 3),
                            track_id=p.track_id,
                        )
                        for p in points
                    ],
                ),
            )


def _truth(em: _Emitter, plan: Plan) -> None:
    for v in plan.visits:
        em.add_truth(
            tr.TRUTH_VISITS,
            v.scan_s,
            tr.TruthVisit(
                visit_id=v.visit_id,
                account_id=v.account_id,
                token=v.token,
                shopper_ids=v.shopper_ids,
                entry_gate_id=v.entry_gate_id,
                scan_ns=em.ns(v.scan_s),
                exit_ns=em.ns(v.exit_s),
            ),
        )
        lines = [tr.ReceiptLine(sku=sku, quantity=q) for sku, q in sorted(plan.receipts[v.visit_id].items()) if q]
        em.add_truth(
            tr.TRUTH_RECEIPTS,
            v.exit_s,
            tr.TruthReceipt(visit_id=v.visit_id, account_id=v.account_id, exit_ns=em.ns(v.exit_s), lines=lines),
        )
    for a in plan.actions:
        em.add_truth(
            tr.TRUTH_ACTIONS,
            a.end,
            tr.TruthAction(
                action_id=a.action_id,
                kind=a.kind,
                shopper_id=a.shopper_id,
                visit_id=a.visit_id,
                start_ns=em.ns(a.start),
                end_ns=em.ns(a.end),
                sku=a.sku,
                quantity=a.quantity,
                shelf_id=a.shelf_id,
                plate_deltas_g=a.plate_deltas_g,
                unit_weights_g=a.unit_weights_g,
                misplaced=a.misplaced,
                to_shopper_id=a.to_shopper_id,
                to_visit_id=a.to_visit_id,
            ),
        )


def _births(em: _Emitter, plan: Plan, cameras: bool) -> None:
    roles: dict[str, str] = {TRACKER_DEVICE: "tracker"}
    for g in plan.store.gondolas:
        for s in g.shelves:
            roles[s.scale.device_id] = "scale"
            if s.curtain is not None:
                roles[s.curtain.device_id] = "curtain"
    for gate in plan.store.gates:
        roles[gate.counter_id] = "gate"
        if gate.scanner_id:
            roles[gate.scanner_id] = "gate"
            roles[f"gatectl-{gate.id}"] = "gate"
    if cameras:
        roles.update({c.id: "camera" for c in plan.store.cameras})
    for device, role in sorted(roles.items()):
        em.device(device, 0.0, DeviceStatus, role=role, status="online", software=f"store-edge-sim {__version__}")


def _frame_messages(em: _Emitter, plan: Plan, duration_s: float, fps: float | None, progress: bool) -> None:
    from store_edge.sim.frames import render_frames  # needs OpenCV (the `vision` extra)

    for f in render_frames(plan, duration_s, fps=fps, progress=progress):
        ns = em.ns(f.t_s)
        em.device(
            f.camera_id,
            f.t_s,
            CameraFrame,
            timestamp=FoxgloveTime.from_ns(ns),
            frame_id=f.camera_id,
            format="jpeg",
            data=base64.b64encode(f.jpeg).decode(),
        )
        em.add_truth(
            tr.TRUTH_BOXES,
            f.t_s,
            tr.TruthBoxes(
                camera_id=f.camera_id,
                frame_ts_ns=ns,
                boxes=[
                    tr.PersonBox(shopper_id=b.shopper_id, box=b.box, visible_fraction=b.visible_fraction)
                    for b in f.boxes
                ],
            ),
        )


def simulate(
    store: StoreLayout,
    scenario: Scenario,
    out: str | Path,
    *,
    store_text: str | None = None,
    scenario_source: str | Path = "<scenario>",
    frames: bool = False,
    frame_fps: float | None = None,
    progress: bool = False,
) -> SimulationResult:
    plan = build_plan(store, scenario, scenario_source)
    duration = scenario.duration_s
    em = _Emitter(plan)
    _births(em, plan, frames)
    _weight_messages(em, plan, duration, progress)
    _gate_messages(em, plan)
    _track_messages(em, plan, duration)
    if frames:
        _frame_messages(em, plan, duration, frame_fps, progress)
    _truth(em, plan)
    items = sorted(em.finish())
    out = Path(out)
    by_kind: Counter[str] = Counter()
    truth: Counter[str] = Counter()
    with RecordingWriter(out) as w:
        start = scenario.start_ns
        w.metadata(
            "simulation",
            {
                "simulator": f"store-edge {__version__}",
                "store_id": store.store_id,
                "scenario": scenario.name,
                "seed": str(scenario.seed),
                "duration_s": f"{duration:g}",
                "start_ns": str(start),
            },
        )
        text = store_text if store_text is not None else yaml.safe_dump(store.model_dump(mode="json"), sort_keys=False)
        w.attach("store.yaml", "application/yaml", text.encode(), start)
        w.attach(
            "scenario.yaml",
            "application/yaml",
            yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False).encode(),
            start,
        )
        for item in tqdm(items, desc="writing", unit="msg", disable=not progress, leave=False, mininterval=0.5):
            w.write(item.topic, item.schema, item.model, item.payload, item.log_ns, item.publish_ns, item.seq)
            if item.topic.startswith("truth/"):
                truth[item.topic] += 1
            else:
                by_kind[item.schema] += 1
    return SimulationResult(out, plan, by_kind, truth, duration)
