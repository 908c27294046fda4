"""The fusion engine: sensor messages in (in timestamp order), one cart per visit out.

Pure domain: it takes decoded messages and returns what happened (cart changes, review tickets,
closed carts). The live MQTT worker and the offline evaluator both drive it; neither does I/O here.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

from store_edge.fusion.products import PlateInventory, ProductHypothesis, ProductParams, score_products
from store_edge.fusion.shoppers import NS, ShopperCandidate, ShopperParams, ShopperRegistry, TrackObservation
from store_edge.fusion.weight_events import ShelfWeightEventDetector, WeightEvent, WeightEventParams
from store_edge.layout.model import StoreLayout
from store_edge.protocol.messages import (
    CurtainEvent,
    GateDecision,
    Message,
    ShopperTracks,
    WeightBatch,
)

REACH_M = 1.0
REACH_SPAN_M = 0.6
"""A hand that went in this far beside the plates that changed may still have taken from them (a
multi-unit pick along a wide facing)."""
"""A shopper standing further than this from the shelf front cannot have taken from it."""


@dataclass(frozen=True)
class EngineParams:
    review_below: float = 0.75
    """A line whose confidence (product x shopper) is below this goes to staff instead of the bill."""
    close_grace_s: float = 3.0
    """After the last person of a visit leaves, late evidence may still arrive this long."""
    weight: WeightEventParams = field(default_factory=WeightEventParams)
    products: ProductParams = field(default_factory=ProductParams)
    shoppers: ShopperParams = field(default_factory=ShopperParams)


@dataclass
class CartLine:
    line_id: str
    sku: str
    quantity: int
    """Negative: an earlier item came back to the shelf."""
    confidence: float
    event_id: str
    status: Literal["confirmed", "under_review"]
    products: list[ProductHypothesis]
    shoppers: list[ShopperCandidate]
    reason: str = ""


@dataclass
class Cart:
    visit_id: str
    account_id: str | None
    lines: list[CartLine] = field(default_factory=list)
    version: int = 0
    state: Literal["open", "closing", "closed"] = "open"
    closed_ns: int | None = None

    def net(self, include_review: bool = False) -> Counter[str]:
        out: Counter[str] = Counter()
        for line in self.lines:
            if line.status == "confirmed" or include_review:
                out[line.sku] += line.quantity
        return +out  # drop zero and negative counts

    @property
    def receipt(self) -> dict[str, int]:
        """What the visit is charged for: confirmed lines only. Uncertain lines are never charged silently."""
        return dict(sorted(self.net().items()))


@dataclass
class ReviewTicket:
    ticket_id: str
    event: WeightEvent
    reason: str
    products: list[ProductHypothesis]
    shoppers: list[ShopperCandidate]
    line_ids: list[str]


@dataclass
class InventoryEvent:
    """A change that belongs to no cart: a return nobody could have made, a restock, a glitch."""

    event: WeightEvent
    reason: str
    products: list[ProductHypothesis]


@dataclass
class Decision:
    """What one weight event was, and the cart lines (and ticket) it made; kept a while so that the
    lines can be moved when the tracker's ids turn out to have been swapped."""

    event: WeightEvent
    products: list[ProductHypothesis]
    shoppers: list[ShopperCandidate]
    hands: int = 0
    """Hands the light curtain saw enter at the event's plates while it happened."""
    lines: list[tuple[Cart, CartLine]] = field(default_factory=list)
    ticket: ReviewTicket | None = None


@dataclass
class Reach:
    """One hand in a shelf, as the light curtain saw it: when it went in and out, and where."""

    in_ns: int
    x_m: float
    out_ns: int | None = None


@dataclass
class EngineOutput:
    changed_carts: list[Cart] = field(default_factory=list)
    tickets: list[ReviewTicket] = field(default_factory=list)
    withdrawn_tickets: list[str] = field(default_factory=list)
    """Tickets raised earlier that no longer stand (their event was re-decided)."""
    closed_carts: list[Cart] = field(default_factory=list)
    inventory_events: list[InventoryEvent] = field(default_factory=list)

    def extend(self, other: EngineOutput) -> None:
        self.changed_carts += [c for c in other.changed_carts if c not in self.changed_carts]
        self.tickets += other.tickets
        self.withdrawn_tickets += other.withdrawn_tickets
        self.closed_carts += other.closed_carts
        self.inventory_events += other.inventory_events

    def open_tickets(self) -> list[ReviewTicket]:
        withdrawn = set(self.withdrawn_tickets)
        return [t for t in self.tickets if t.ticket_id not in withdrawn]


class FusionEngine:
    def __init__(self, store: StoreLayout, params: EngineParams | None = None) -> None:
        self.store = store
        self.params = params or EngineParams()
        self.inventory = PlateInventory(store)
        self.shoppers = ShopperRegistry(store, self.params.shoppers)
        self.detectors: dict[str, ShelfWeightEventDetector] = {}
        self.carts: dict[str, Cart] = {}
        self.events: list[WeightEvent] = []
        self.decisions: deque[Decision] = deque()
        self._corrections_seen = 0
        self._lines = 0
        self._tickets = 0
        self.now_ns = 0
        self.hands_in: dict[str, list[tuple[int, float]]] = {}
        """Per shelf, when and where (m along the shelf) hands entered it (from the light curtain)."""
        self.reaches: dict[str, list[Reach]] = {}
        """Per shelf, the hands' visits (the last 200)."""

    # --- input ---------------------------------------------------------------------------------
    def handle(self, msg: Message) -> EngineOutput:
        out = EngineOutput()
        self.now_ns = max(self.now_ns, msg.header.ts_ns)
        if isinstance(msg, WeightBatch):
            det = self._detector(msg)
            times = [msg.t0_ns + i * msg.period_ns for i in range(len(msg.samples))]
            for event in det.add_batch(times, msg.samples):
                out.extend(self._decide(event))
        elif isinstance(msg, CurtainEvent):
            if msg.shelf_id in self.detectors:
                self.detectors[msg.shelf_id].curtain(msg.header.ts_ns, msg.event, msg.x_m)
            reaches = self.reaches.setdefault(msg.shelf_id, [])
            if msg.event == "enter":
                log = self.hands_in.setdefault(msg.shelf_id, [])
                log.append((msg.header.ts_ns, msg.x_m))
                del log[: max(0, len(log) - 200)]
                reaches.append(Reach(msg.header.ts_ns, msg.x_m))
                del reaches[: max(0, len(reaches) - 200)]
            else:
                # a leave closes the nearest open hand (curtains report where the beam cleared)
                open_ = [r for r in reaches[-20:] if r.out_ns is None]
                if open_:
                    min(open_, key=lambda r: abs(r.x_m - msg.x_m)).out_ns = msg.header.ts_ns
        elif isinstance(msg, GateDecision):
            if msg.decision == "open" and msg.visit_id is not None:
                self.shoppers.open_visit(msg.header.ts_ns, msg.visit_id, msg.account_id, msg.party_size)
                self.carts.setdefault(msg.visit_id, Cart(msg.visit_id, msg.account_id))
        elif isinstance(msg, ShopperTracks):
            self.shoppers.observe(
                msg.header.ts_ns,
                [
                    TrackObservation(
                        t.track_id,
                        t.x,
                        t.y,
                        (t.hand.x, t.hand.y, t.hand.z) if t.hand else None,
                        tuple(t.appearance) if t.appearance else None,
                    )
                    for t in msg.tracks
                ],
            )
            self._revisit_corrected(out)
            out.closed_carts += self._close_finished(msg.header.ts_ns)
        return out

    def finish(self) -> EngineOutput:
        """End of input: settle pending events and close every cart."""
        out = EngineOutput()
        for det in self.detectors.values():
            for event in det.flush():
                out.extend(self._decide(event))
        for cart in self.carts.values():
            if cart.state != "closed":
                cart.state = "closed"
                cart.closed_ns = self.now_ns
                out.closed_carts.append(cart)
        return out

    def _detector(self, msg: WeightBatch) -> ShelfWeightEventDetector:
        det = self.detectors.get(msg.shelf_id)
        if det is None:
            det = ShelfWeightEventDetector(msg.shelf_id, list(msg.plate_ids), NS / msg.period_ns, self.params.weight)
            self.detectors[msg.shelf_id] = det
        return det

    def _close_finished(self, now_ns: int) -> list[Cart]:
        closed = []
        for visit in self.shoppers.visits.values():
            cart = self.carts.get(visit.visit_id)
            exit_ns = visit.exit_ns
            if cart is None or cart.state == "closed" or exit_ns is None:
                continue
            if now_ns - exit_ns >= self.params.close_grace_s * NS:
                cart.state = "closed"
                cart.closed_ns = now_ns
                closed.append(cart)
        return closed

    # --- deciding one event --------------------------------------------------------------------
    def _decide(self, event: WeightEvent) -> EngineOutput:
        out = EngineOutput()
        self.events.append(event)
        shoppers = self._associate(event)
        returnable: set[str] = set()
        if event.total_g >= 0:
            for cand in shoppers:
                if cand.visit_id and cand.visit_id in self.carts and cand.probability > 0.05:
                    returnable |= set(self.carts[cand.visit_id].net(include_review=True))
        hands = self._hands_at(event)
        products = score_products(event, self.store, self.inventory, returnable, self.params.products, hands=hands)
        if not products:
            out.inventory_events.append(InventoryEvent(event, "no product fits this change", []))
            return out
        shoppers = self._associate(event, products=products)
        for sku, qty in products[0].items:
            if event.total_g < 0:
                self.inventory.take(event.plate_deltas_g, sku, qty)
            else:
                self.inventory.put(event.plate_deltas_g, sku, qty)
        decision = Decision(event, products, shoppers, hands)
        self.decisions.append(decision)
        while self.decisions and self.decisions[0].event.end_ns < event.end_ns - self.params.shoppers.history_s * NS:
            self.decisions.popleft()
        self._assign(decision, out)
        return out

    def _associate(
        self,
        event: WeightEvent,
        plate_deltas_g: dict[str, float] | None = None,
        products: list[ProductHypothesis] | None = None,
    ) -> list[ShopperCandidate]:
        """Who made this event (or, given a subset of its plates, the change on those plates). With the
        products known, a hand the curtain saw go in where they lie places the reach."""
        deltas = plate_deltas_g or event.plate_deltas_g
        skus = {s for s, _ in products[0].items} if products else set()
        r = self._reach(event, deltas, skus)
        reach = (r.x_m, r.in_ns, r.out_ns) if r is not None else None
        return self.shoppers.associate(deltas, event.start_ns, event.end_ns, reach)

    def _reaches_during(self, event: WeightEvent, plate_deltas_g: dict[str, float], beside_m: float) -> list[Reach]:
        """The hands the curtain saw in the shelf while these plates changed, at most `beside_m` beside them:
        in before the plates settled (grip, lift, ringing) and still in after the change began."""
        geo = [self.store.plate_geometry[p] for p in plate_deltas_g]
        lo = min(g.x_range_m[0] for g in geo) - beside_m
        hi = max(g.x_range_m[1] for g in geo) + beside_m
        latest_in = event.end_ns - NS // 2
        earliest_out = event.start_ns + NS // 5
        return [
            r
            for r in self.reaches.get(event.shelf_id, [])
            if r.in_ns <= latest_in
            and (r.out_ns is None or r.out_ns >= earliest_out)
            and event.end_ns - r.in_ns <= 30 * NS
            and lo <= r.x_m <= hi
        ]

    def _reach(self, event: WeightEvent, plate_deltas_g: dict[str, float], skus: set[str]) -> Reach | None:
        """The one hand that was in the shelf while these plates changed, if it went in at those plates
        or at a plate holding the product; None when there were none or several (a missed hand is as
        likely as a stray one: then the weight places the reach)."""
        during = self._reaches_during(event, plate_deltas_g, REACH_SPAN_M)
        geo = [self.store.plate_geometry[p] for p in plate_deltas_g]
        lo, hi = min(g.x_range_m[0] for g in geo) - 0.05, max(g.x_range_m[1] for g in geo) + 0.05
        at_plates = [r for r in during if lo <= r.x_m <= hi]
        if len(during) > 1 and len(at_plates) == 1:
            return at_plates[0]  # two hands in the shelf (two people side by side): the one at these plates
        if len(during) != 1:
            return None
        x = during[0].x_m
        if at_plates:
            return during[0]
        # beside the plates that changed: only where the same product lies (one reach along a wide facing)
        for p in self.store.shelves_by_id[event.shelf_id].plates:
            lo, hi = self.store.plate_geometry[p.id].x_range_m
            if lo <= x <= hi:
                return during[0] if any(self.inventory.holds(p.id, s, reach=0) for s in skus) else None
        return None

    def _assign(self, decision: Decision, out: EngineOutput) -> None:
        if decision.event.total_g < 0:
            self._apply_pick(decision, out)
        else:
            self._apply_return(decision, out)

    def _revisit_corrected(self, out: EngineOutput) -> None:
        """The tracker swapped two people's ids and the registry has undone it: events since then
        may have gone to the wrong cart. Re-associate them and move their lines (open carts only: a
        closed cart has been handed on for settlement)."""
        corrections = self.shoppers.corrections[self._corrections_seen :]
        if not corrections:
            return
        self._corrections_seen += len(corrections)
        since_ns = min(since for since, *_ in corrections)
        for decision in self.decisions:
            if decision.event.end_ns < since_ns - NS:
                continue
            shoppers = self._associate(decision.event, products=decision.products)
            before = [(c.visit_id, round(c.probability, 3)) for c in decision.shoppers]
            if [(c.visit_id, round(c.probability, 3)) for c in shoppers] == before:
                continue
            if any(cart.state == "closed" for cart, _ in decision.lines):
                continue
            for cart, line in decision.lines:
                cart.lines.remove(line)
                cart.version += 1
                if cart not in out.changed_carts:
                    out.changed_carts.append(cart)
            if decision.ticket is not None:
                out.withdrawn_tickets.append(decision.ticket.ticket_id)
            decision.lines, decision.ticket, decision.shoppers = [], None, shoppers
            self._assign(decision, out)

    def _add_lines(
        self,
        decision: Decision,
        changes: list[tuple[Cart, str, int]],
        conf: float,
        reason: str,
        out: EngineOutput,
        ticket_reason: str = "",
    ) -> None:
        """Add (cart, sku, signed units) lines of one event; below the confidence threshold they go
        under review together, with one ticket for staff."""
        event, products, shoppers = decision.event, decision.products, decision.shoppers
        status: Literal["confirmed", "under_review"] = (
            "confirmed" if conf >= self.params.review_below else "under_review"
        )
        lines = []
        for cart, sku, qty in changes:
            self._lines += 1
            line = CartLine(f"L{self._lines}", sku, qty, conf, event.event_id, status, products, shoppers, reason)
            cart.lines.append(line)
            cart.version += 1
            lines.append(line)
            decision.lines.append((cart, line))
            if cart not in out.changed_carts:
                out.changed_carts.append(cart)
        if status == "under_review":
            self._tickets += 1
            decision.ticket = ReviewTicket(
                f"T{self._tickets}",
                event,
                ticket_reason or reason or "low confidence",
                products,
                shoppers,
                [line.line_id for line in lines],
            )
            out.tickets.append(decision.ticket)

    def _cart_for(self, visit_id: str | None) -> Cart | None:
        if visit_id is None:
            return None
        cart = self.carts.get(visit_id)
        if cart is None or cart.state == "closed":
            return None
        return cart

    def _hands_at(self, event: WeightEvent) -> int:
        """How many hands were in the shelf at the event's plates while it happened."""
        return len(self._reaches_during(event, event.plate_deltas_g, 0.15))

    def _apply_shared_pick(self, decision: Decision, out: EngineOutput) -> bool:
        """Two people taking the same product from one plate at once make one event of several units;
        with as many hands seen, the units are shared out among the likely shoppers."""
        shoppers, best = decision.shoppers, decision.products[0]
        if len(best.items) != 1 or best.units < 2:
            return False
        hands = decision.hands
        if hands < 2:
            return False
        # with several hands seen, whoever stood within reach took part, however the hand evidence split
        takers = [
            c
            for c in shoppers
            if c.distance_m is not None and c.distance_m <= REACH_M and self._cart_for(c.visit_id) is not None
        ][: min(hands, best.units)]
        if len(takers) < 2:
            return False
        sku, qty = best.items[0]
        nobody = next((c.probability for c in shoppers if c.visit_id is None), 0.0)
        conf = best.probability * (1.0 - nobody)
        shares = [qty // len(takers) + (1 if i < qty % len(takers) else 0) for i in range(len(takers))]
        changes = []
        for c, q in zip(takers, shares, strict=True):
            cart = self._cart_for(c.visit_id)
            assert cart is not None
            changes.append((cart, sku, q))
        self._add_lines(
            decision,
            changes,
            conf,
            f"{hands} hands at once: units shared",
            out,
            f"{hands} shoppers took {qty} at once",
        )
        return True

    def _apply_two_hand_pick(self, decision: Decision, out: EngineOutput) -> bool:
        """Two products taken with two hands at once (often two shoppers side by side): each product
        goes to whoever stood and reached where that product lay."""
        event, best = decision.event, decision.products[0]
        if len(best.items) < 2 or decision.hands < 2:
            return False
        changes: list[tuple[Cart, str, int]] = []
        conf = best.probability
        whos = []
        for sku, qty in best.items:
            where = {p: d for p, d in event.plate_deltas_g.items() if self.inventory.holds(p, sku, reach=0)}
            cands = self._associate(event, where, [ProductHypothesis(((sku, qty),), 1.0, 0.0)])
            top = cands[0]
            cart = self._cart_for(top.visit_id)
            if cart is None:
                return False
            conf = min(conf, best.probability * top.probability)
            changes.append((cart, sku, qty))
            whos.append(f"{sku} {top.visit_id} {top.probability:.0%}")
        self._add_lines(decision, changes, conf, "two hands, two products: " + ", ".join(whos), out)
        return True

    def _apply_pick(self, decision: Decision, out: EngineOutput) -> None:
        event, products, shoppers = decision.event, decision.products, decision.shoppers
        best = products[0]
        if self._apply_shared_pick(decision, out) or self._apply_two_hand_pick(decision, out):
            return
        top = shoppers[0]
        cart = self._cart_for(top.visit_id)
        if cart is None:
            reason = "nobody near the shelf" if top.visit_id is None else "the likely shopper's visit is closed"
            if top.probability >= self.params.review_below:
                out.inventory_events.append(InventoryEvent(event, reason, products))
                return
            # someone may still have taken it: ask staff, charge nobody meanwhile
            cart = next((self._cart_for(c.visit_id) for c in shoppers if self._cart_for(c.visit_id)), None)
            if cart is None:
                out.inventory_events.append(InventoryEvent(event, reason, products))
                return
        conf = best.probability * (top.probability if top.visit_id == cart.visit_id else 0.0)
        reasons = []
        if best.probability < self.params.review_below:
            alt = products[1] if len(products) > 1 else None
            reasons.append(
                f"product unsure: {best.probability:.0%}" + (f" vs {alt.items} {alt.probability:.0%}" if alt else "")
            )
        if top.probability < self.params.review_below:
            reasons.append(f"shopper unsure: {top.probability:.0%}")
        self._add_lines(decision, [(cart, sku, qty) for sku, qty in best.items], conf, "; ".join(reasons), out)

    def _apply_return(self, decision: Decision, out: EngineOutput) -> None:
        event, products, shoppers = decision.event, decision.products, decision.shoppers
        best = products[0]
        # who could have returned it: only someone whose cart holds it
        holders = [
            c
            for c in shoppers
            if c.visit_id
            and self._cart_for(c.visit_id) is not None
            and all(self.carts[c.visit_id].net(include_review=True)[s] >= q for s, q in best.items)
        ]
        if not holders:
            out.inventory_events.append(InventoryEvent(event, "returned item matches no nearby cart", products))
            return
        total = sum(c.probability for c in holders)
        top = holders[0]
        p_shopper = top.probability / total if total > 0 else 0.0
        # an item nobody near was carrying is not refunded to someone at random
        p_shopper *= 1.0 - next((c.probability for c in shoppers if c.visit_id is None), 0.0)
        cart = self.carts[str(top.visit_id)]
        conf = best.probability * p_shopper
        self._add_lines(
            decision,
            [(cart, sku, -qty) for sku, qty in best.items],
            conf,
            "return",
            out,
            f"return unsure: product {best.probability:.0%}, shopper {p_shopper:.0%}",
        )
