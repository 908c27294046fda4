"""`store-edge eval`: run the fusion engine on a recording and score it against its truth channels.

Scored the way the AutoCheckout competition scored (field notes): per item unit, a unit counts only
if both the product and the visit are right, put-backs netted out. Lines under review are not
charged; `after_review` assumes staff resolve every ticket correctly.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store_edge.fusion.engine import Cart, EngineOutput, EngineParams, FusionEngine, ReviewTicket
from store_edge.fusion.weight_events import WeightEvent
from store_edge.layout.model import StoreLayout
from store_edge.live.ingest import merge_key
from store_edge.protocol.codec import decode
from store_edge.protocol.messages import Message, WeightBatch
from store_edge.protocol.truth import TRUTH_RECEIPTS, TruthAction, TruthReceipt
from store_edge.recording.contents import read_actions, store_from_recording
from store_edge.recording.mcap_io import read_messages

Receipts = dict[str, Counter[str]]


@dataclass
class ItemScore:
    true_positive: int
    predicted: int
    actual: int

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.actual if self.actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_items(predicted: Receipts, truth: Receipts) -> ItemScore:
    tp = 0
    for visit, lines in truth.items():
        got = predicted.get(visit, Counter())
        tp += sum(min(q, got[sku]) for sku, q in lines.items())
    return ItemScore(tp, sum(sum(c.values()) for c in predicted.values()), sum(sum(c.values()) for c in truth.values()))


@dataclass
class Evaluation:
    recording: str
    items: ItemScore
    exact_match: float
    visits: int
    review_units: int
    line_units: int
    after_review: ItemScore
    plate_samples: int
    engine_s: float
    recording_s: float
    tickets: list[ReviewTicket]
    carts: dict[str, Cart]
    events: dict[str, WeightEvent]
    truth: Receipts
    actions: list[TruthAction]
    explain_lines: list[str] = field(default_factory=list)

    @property
    def review_rate(self) -> float:
        return self.review_units / self.line_units if self.line_units else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "items": {
                "precision": round(self.items.precision, 4),
                "recall": round(self.items.recall, 4),
                "f1": round(self.items.f1, 4),
                "true_positive": self.items.true_positive,
                "predicted": self.items.predicted,
                "actual": self.items.actual,
            },
            "receipts": {"exact_match": round(self.exact_match, 4), "visits": self.visits},
            "review_rate": round(self.review_rate, 4),
            "review_tickets": len(self.tickets),
            "after_review": {
                "precision": round(self.after_review.precision, 4),
                "recall": round(self.after_review.recall, 4),
                "f1": round(self.after_review.f1, 4),
            },
            "speed": {
                "samples_per_s": round(self.plate_samples / self.engine_s) if self.engine_s else None,
                "realtime_factor": round(self.recording_s / self.engine_s, 1) if self.engine_s else None,
                "plate_samples": self.plate_samples,
                "engine_s": round(self.engine_s, 3),
            },
        }


def load_messages(path: str | Path) -> list[Message]:
    """Every sensor message of a recording, decoded, in device-timestamp order (what a live worker
    reorders to behind its watermark)."""
    msgs = [decode(m.topic, m.data) for m in read_messages(path) if not m.topic.startswith("truth/")]
    msgs.sort(key=merge_key)
    return msgs


def _matching_actions(ticket: ReviewTicket, actions: list[TruthAction]) -> list[TruthAction]:
    ev = ticket.event
    return [
        a
        for a in actions
        if a.shelf_id == ev.shelf_id
        and a.kind in ("pick", "put_back")
        and a.start_ns <= ev.end_ns + 10**9
        and a.end_ns >= ev.start_ns - 10**9
        and set(a.plate_deltas_g) & set(ev.plate_deltas_g)
    ]


def _units_under_review(tickets: list[ReviewTicket], actions: list[TruthAction]) -> list[tuple[TruthAction, int]]:
    """How many units of each real action staff see in the tickets: an action whose plates the engine
    split into several events counts only for the share of its weight on the plates of held events (the
    other events' confirmed lines already count it)."""
    plates: dict[str, set[str]] = {}
    by_id: dict[str, TruthAction] = {}
    for ticket in tickets:
        for a in _matching_actions(ticket, actions):
            plates.setdefault(a.action_id, set()).update(ticket.event.plate_deltas_g)
            by_id[a.action_id] = a
    units: list[tuple[TruthAction, int]] = []
    for action_id, seen in plates.items():
        a = by_id[action_id]
        total = sum(abs(d) for d in a.plate_deltas_g.values())
        share = sum(abs(d) for p, d in a.plate_deltas_g.items() if p in seen) / total if total else 1.0
        units.append((a, math.floor(a.quantity * share + 0.5)))
    return units


def evaluate(
    path: str | Path,
    store: StoreLayout | None = None,
    params: EngineParams | None = None,
    explain: bool = False,
    engine_class: type[FusionEngine] = FusionEngine,
) -> Evaluation:
    store = store or store_from_recording(path)
    messages = load_messages(path)
    engine = engine_class(store, params)
    out = EngineOutput()
    t0 = time.perf_counter()
    for msg in messages:
        out.extend(engine.handle(msg))
    out.extend(engine.finish())
    engine_s = time.perf_counter() - t0
    samples = sum(len(m.samples) * len(m.plate_ids) for m in messages if isinstance(m, WeightBatch))
    span_s = (messages[-1].header.ts_ns - messages[0].header.ts_ns) / 1e9 if messages else 0.0

    truth: Receipts = {}
    for m in read_messages(path, [TRUTH_RECEIPTS]):
        r = TruthReceipt.model_validate_json(m.data)
        truth[r.visit_id] = Counter({ln.sku: ln.quantity for ln in r.lines})
    actions = read_actions(path)

    carts = engine.carts
    predicted: Receipts = {v: Counter(c.receipt) for v, c in carts.items()}
    items = score_items(predicted, truth)
    exact = sum(predicted.get(v, Counter()) == +t for v, t in truth.items()) / len(truth) if truth else 1.0
    line_units = sum(abs(ln.quantity) for c in carts.values() for ln in c.lines)
    review_units = sum(abs(ln.quantity) for c in carts.values() for ln in c.lines if ln.status == "under_review")

    # after review: each ticket's event is replaced by what really happened at that shelf then, its
    # confirmed lines too (an event may charge the hand that is clear and hold the other for staff)
    tickets = out.open_tickets()
    reviewed = {t.event.event_id for t in tickets}
    resolved: Receipts = {v: Counter() for v in carts}
    for c in carts.values():
        for ln in c.lines:
            if ln.status == "confirmed" and ln.event_id not in reviewed:
                resolved[c.visit_id][ln.sku] += ln.quantity
    for a, units in _units_under_review(tickets, actions):
        sign = 1 if a.kind == "pick" else -1
        if a.sku is not None:
            resolved.setdefault(a.visit_id, Counter())[a.sku] += sign * units
    after = score_items({v: +c for v, c in resolved.items()}, truth)

    ev = Evaluation(
        str(path),
        items,
        exact,
        len(truth),
        review_units,
        line_units,
        after,
        samples,
        engine_s,
        span_s,
        out.open_tickets(),
        carts,
        {e.event_id: e for e in engine.events},
        truth,
        actions,
    )
    if explain:
        ev.explain_lines = explain_errors(ev, store)
    return ev


def explain_errors(ev: Evaluation, store: StoreLayout) -> list[str]:
    names = {p.sku: p.name for p in store.products}
    lines: list[str] = []
    for visit in sorted(set(ev.truth) | set(ev.carts)):
        want = +ev.truth.get(visit, Counter())
        cart = ev.carts.get(visit)
        got = Counter(cart.receipt) if cart else Counter()
        reviewed = [ln for ln in cart.lines if ln.status == "under_review"] if cart else []
        if want == got and not reviewed:
            continue
        lines.append(f"visit {visit}:")
        for sku in sorted(set(want) | set(got)):
            if want[sku] != got[sku]:
                lines.append(f"  {names.get(sku, sku)}: charged {got[sku]}, carried out {want[sku]}")
        for ln in cart.lines if cart else []:
            if ln.status != "under_review" and want[ln.sku] == got[ln.sku]:
                continue
            prods = ", ".join(
                f"{'+'.join(f'{q}x{names.get(s, s)}' for s, q in h.items)} {h.probability:.0%}" for h in ln.products[:3]
            )
            who = ", ".join(f"{c.visit_id or 'nobody'} {c.probability:.0%}" for c in ln.shoppers[:3])
            event = ev.events.get(ln.event_id)
            deltas = ", ".join(f"{p} {d:+.1f} g" for p, d in event.plate_deltas_g.items()) if event else "?"
            lines.append(
                f"  line {ln.line_id} {ln.status} {ln.quantity:+d} x {names.get(ln.sku, ln.sku)} "
                f"(conf {ln.confidence:.0%}) event {ln.event_id} [{deltas}]"
            )
            lines.append(f"    products: {prods}")
            lines.append(f"    shoppers: {who}" + (f"; {ln.reason}" if ln.reason else ""))
            if event:
                for a in ev.actions:
                    if (
                        a.shelf_id == event.shelf_id
                        and a.start_ns <= event.end_ns + 10**9
                        and a.end_ns >= event.start_ns - 10**9
                    ):
                        lines.append(
                            f"    truth: {a.action_id} {a.kind} {a.quantity} x {names.get(a.sku or '', a.sku)}"
                            f" by {a.shopper_id} ({a.visit_id}) {a.plate_deltas_g}"
                        )
    return lines
