"""The fusion engine: sensor messages in (in timestamp order), one cart per visit out.

Pure domain: it takes decoded messages and returns what happened (cart changes, review tickets,
closed carts). The live MQTT worker and the offline evaluator both drive it; neither does I/O here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from store_edge.fusion.products import PlateInventory, ProductHypothesis, ProductParams, score_products
from store_edge.fusion.shoppers import NS, ShopperCandidate, ShopperParams, ShopperRegistry
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
class EngineOutput:
    changed_carts: list[Cart] = field(default_factory=list)
    tickets: list[ReviewTicket] = field(default_factory=list)
    closed_carts: list[Cart] = field(default_factory=list)
    inventory_events: list[InventoryEvent] = field(default_factory=list)

    def extend(self, other: EngineOutput) -> None:
        self.changed_carts += other.changed_carts
        self.tickets += other.tickets
        self.closed_carts += other.closed_carts
        self.inventory_events += other.inventory_events


class FusionEngine:
    def __init__(self, store: StoreLayout, params: EngineParams | None = None) -> None:
        self.store = store
        self.params = params or EngineParams()
        self.inventory = PlateInventory(store)
        self.shoppers = ShopperRegistry(store, self.params.shoppers)
        self.detectors: dict[str, ShelfWeightEventDetector] = {}
        self.carts: dict[str, Cart] = {}
        self.events: list[WeightEvent] = []
        self._lines = 0
        self._tickets = 0
        self.now_ns = 0
        self.hands_in: dict[str, list[tuple[int, float]]] = {}
        """Per shelf, when and where (m along the shelf) hands entered it (from the light curtain)."""

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
            if msg.event == "enter":
                log = self.hands_in.setdefault(msg.shelf_id, [])
                log.append((msg.header.ts_ns, msg.x_m))
                del log[: max(0, len(log) - 200)]
        elif isinstance(msg, GateDecision):
            if msg.decision == "open" and msg.visit_id is not None:
                self.shoppers.open_visit(msg.header.ts_ns, msg.visit_id, msg.account_id, msg.party_size)
                self.carts.setdefault(msg.visit_id, Cart(msg.visit_id, msg.account_id))
        elif isinstance(msg, ShopperTracks):
            self.shoppers.observe(
                msg.header.ts_ns,
                [(t.track_id, t.x, t.y, (t.hand.x, t.hand.y, t.hand.z) if t.hand else None) for t in msg.tracks],
            )
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
        plates = list(event.plate_deltas_g)
        shoppers = self.shoppers.associate(plates, event.start_ns, event.end_ns)
        picking = event.total_g < 0
        returnable: set[str] = set()
        if not picking:
            for cand in shoppers:
                if cand.visit_id and cand.visit_id in self.carts and cand.probability > 0.05:
                    returnable |= set(self.carts[cand.visit_id].net(include_review=True))
        products = score_products(event, self.store, self.inventory, returnable, self.params.products)
        if not products:
            out.inventory_events.append(InventoryEvent(event, "no product fits this change", []))
            return out
        best = products[0]
        if picking:
            self._apply_pick(event, best, products, shoppers, out)
        else:
            self._apply_return(event, best, products, shoppers, out)
        return out

    def _add_lines(
        self,
        changes: list[tuple[Cart, str, int]],
        conf: float,
        event: WeightEvent,
        products: list[ProductHypothesis],
        shoppers: list[ShopperCandidate],
        reason: str,
        out: EngineOutput,
        ticket_reason: str = "",
    ) -> None:
        """Add (cart, sku, signed units) lines of one event; below the confidence threshold they go
        under review together, with one ticket for staff."""
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
            if cart not in out.changed_carts:
                out.changed_carts.append(cart)
        if status == "under_review":
            self._tickets += 1
            out.tickets.append(
                ReviewTicket(
                    f"T{self._tickets}",
                    event,
                    ticket_reason or reason or "low confidence",
                    products,
                    shoppers,
                    [line.line_id for line in lines],
                )
            )

    def _cart_for(self, visit_id: str | None) -> Cart | None:
        if visit_id is None:
            return None
        cart = self.carts.get(visit_id)
        if cart is None or cart.state == "closed":
            return None
        return cart

    def _hands_at(self, event: WeightEvent) -> int:
        """How many hands went into the shelf at the event's plates while it happened."""
        geo = [self.store.plate_geometry[p] for p in event.plate_deltas_g]
        lo = min(g.x_range_m[0] for g in geo) - 0.15
        hi = max(g.x_range_m[1] for g in geo) + 0.15
        return sum(
            1
            for t, x in self.hands_in.get(event.shelf_id, [])
            if event.start_ns - 2 * NS <= t <= event.end_ns and lo <= x <= hi
        )

    def _apply_shared_pick(
        self,
        event: WeightEvent,
        best: ProductHypothesis,
        products: list[ProductHypothesis],
        shoppers: list[ShopperCandidate],
        out: EngineOutput,
    ) -> bool:
        """Two people taking the same product from one plate at once make one event of several units;
        with as many hands seen, the units are shared out among the likely shoppers."""
        if len(best.items) != 1 or best.units < 2:
            return False
        hands = self._hands_at(event)
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
            changes,
            conf,
            event,
            products,
            shoppers,
            f"{hands} hands at once: units shared",
            out,
            f"{hands} shoppers took {qty} at once",
        )
        return True

    def _apply_pick(
        self,
        event: WeightEvent,
        best: ProductHypothesis,
        products: list[ProductHypothesis],
        shoppers: list[ShopperCandidate],
        out: EngineOutput,
    ) -> None:
        for sku, qty in best.items:
            self.inventory.take(event.plate_deltas_g, sku, qty)
        if self._apply_shared_pick(event, best, products, shoppers, out):
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
        self._add_lines(
            [(cart, sku, qty) for sku, qty in best.items], conf, event, products, shoppers, "; ".join(reasons), out
        )

    def _apply_return(
        self,
        event: WeightEvent,
        best: ProductHypothesis,
        products: list[ProductHypothesis],
        shoppers: list[ShopperCandidate],
        out: EngineOutput,
    ) -> None:
        for sku, qty in best.items:
            self.inventory.put(event.plate_deltas_g, sku, qty)
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
            [(cart, sku, -qty) for sku, qty in best.items],
            conf,
            event,
            products,
            shoppers,
            "return",
            out,
            f"return unsure: product {best.probability:.0%}, shopper {p_shopper:.0%}",
        )
