"""The fusion engine: sensor messages in (in timestamp order), one cart per visit out.

Pure domain: it takes decoded messages and returns what happened (cart changes, review tickets,
closed carts). The live MQTT worker and the offline evaluator both drive it; neither does I/O here.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from store_edge.fusion.evidence import WeightTraceBuffer
from store_edge.fusion.products import PlateInventory, ProductHypothesis, ProductParams, score_products
from store_edge.fusion.sensor_health import SensorFault, SensorHealthMonitor, SensorHealthParams
from store_edge.fusion.shoppers import NS, ShopperCandidate, ShopperParams, ShopperRegistry, TrackObservation
from store_edge.fusion.weight_events import (
    PlateChange,
    ShelfWeightEventDetector,
    WeightEvent,
    WeightEventParams,
    readings_array,
)
from store_edge.layout.model import StoreLayout, distance_to_segment
from store_edge.protocol.messages import (
    CurtainEvent,
    GateDecision,
    GatePassage,
    Message,
    ShopperTracks,
    WeightBatch,
)

REACH_M = 1.0
"""A shopper standing further than this from the shelf front cannot have taken from it."""
REACH_SPAN_M = 0.6
"""A hand that went in this far beside the plates that changed may still have taken from them (a
multi-unit pick along a wide facing)."""
AT_PLATES_M = 0.05
"""A hand that went in this close to the plates that changed went in at them (the curtain's error)."""


@dataclass(frozen=True)
class EngineParams:
    review_below: float = 0.75
    """A line whose confidence (product x shopper) is below this goes to staff instead of the bill."""
    close_grace_s: float = 3.0
    """After the last person of a visit leaves, late evidence may still arrive this long."""
    weight: WeightEventParams = field(default_factory=WeightEventParams)
    products: ProductParams = field(default_factory=ProductParams)
    shoppers: ShopperParams = field(default_factory=ShopperParams)
    health: SensorHealthParams = field(default_factory=SensorHealthParams)
    """Frozen and dead plates; a curtain is stuck after `weight.max_hand_s`."""


FAULT_AFTER_S = 2.0
"""A change a plate shows within this long after its fault ended was measured from a level read
during the fault (a frozen plate's jump back to its true load)."""
BLIND_REACH_MARGIN_M = 0.1
"""A hand that went in this close to a faulty plate may have taken from it or put something on it."""
STAND_M = 0.75
STAND_S = 1.5
"""Where a faulty plate's shelf has no working curtain to see hands go in, someone who stood this close
to the plate's front (a reacher stands ShopperParams.reach_m + body_std_m out) this long may have
reached it. With a working curtain only its hands count: standing is too common near a shelf."""
FAULT_MIN_P = 0.1
"""With a faulty sensor, who made an event or a reach is blurred: every shopper at least this likely to
have made it gets its lines under review."""


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
    departed_by_ns: int | None = None
    """Once asked again: who walked off after the event until then counts too."""
    lines: list[tuple[Cart, CartLine]] = field(default_factory=list)
    ticket: ReviewTicket | None = None

    @property
    def held(self) -> bool:
        """Some of its lines wait for staff."""
        return any(line.status == "under_review" for _, line in self.lines)


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
    sensor_faults: list[SensorFault] = field(default_factory=list)
    """Sensor faults that began (`until_ns` None) or ended (`FusionEngine.health` has those in force)."""

    def extend(self, other: EngineOutput) -> None:
        self.changed_carts += [c for c in other.changed_carts if c not in self.changed_carts]
        self.tickets += other.tickets
        self.withdrawn_tickets += other.withdrawn_tickets
        self.closed_carts += other.closed_carts
        self.inventory_events += other.inventory_events
        self.sensor_faults += other.sensor_faults

    def open_tickets(self) -> list[ReviewTicket]:
        withdrawn = set(self.withdrawn_tickets)
        return [t for t in self.tickets if t.ticket_id not in withdrawn]


def _likely_then_nearest(c: ShopperCandidate) -> tuple[float, float]:
    return -round(c.probability, 2), math.inf if c.distance_m is None else c.distance_m


class FusionEngine:
    def __init__(
        self, store: StoreLayout, params: EngineParams | None = None, traces: WeightTraceBuffer | None = None
    ) -> None:
        """`traces`: where to keep the raw readings a while (the live worker's ticket evidence)."""
        self.store = store
        self.params = params or EngineParams()
        self.traces = traces
        self.inventory = PlateInventory(store)
        self.shoppers = ShopperRegistry(store, self.params.shoppers)
        self.detectors: dict[str, ShelfWeightEventDetector] = {}
        self.carts: dict[str, Cart] = {}
        self.events: list[WeightEvent] = []
        self.decisions: deque[Decision] = deque()
        self._awaiting_departure: deque[Decision] = deque()
        """Decisions to weigh again once the tracks show who walked off (in event-end order)."""
        self._corrections_seen = 0
        self._lines = 0
        self._tickets = 0
        self.now_ns = 0
        self.hands_in: dict[str, list[tuple[int, float]]] = {}
        """Per shelf, when and where (m along the shelf) hands entered it (from the light curtain)."""
        self.reaches: dict[str, list[Reach]] = {}
        """Per shelf, the hands' visits (the last 200)."""
        self._watch_sensors()

    def _watch_sensors(self) -> None:
        self.health = SensorHealthMonitor(
            self.params.weight.max_hand_s, getattr(self.params, "health", None) or SensorHealthParams()
        )
        """Which plates and curtains are faulty (`health.report()`: sensor, since, kind of each)."""
        self._blind: list[tuple[SensorFault, Reach, str | None]] = []
        """Hands that went in at a faulty plate, to be put to the shoppers once their tracks are in (with
        the track that stood there, where no curtain saw the hand)."""
        self._blind_seen: set[tuple[str, int, float]] = set()
        self._faulty_plates: dict[str, SensorFault] = {}
        """Plates faulty now, by id."""
        self._stands: dict[tuple[str, str], tuple[SensorFault, int, int]] = {}
        """(plate, track) -> (fault, from, until): someone standing at a faulty plate."""
        self._faulty_events = 0
        self._attended: dict[tuple[str, float], int] = {}
        """(shelf, where) of a curtain's open hand -> when a track last stood near it."""

    def __setstate__(self, state: dict[str, object]) -> None:
        """An engine saved (a worker's snapshot) before sensor health had no monitor: it starts watching
        from the next readings."""
        self.__dict__.update(state)
        if "health" not in state:
            self._watch_sensors()
        self.__dict__.setdefault("_attended", {})
        self.__dict__.setdefault("traces", None)
        self.__dict__.setdefault("_awaiting_departure", deque())

    # --- input ---------------------------------------------------------------------------------
    def handle(self, msg: Message) -> EngineOutput:
        out = EngineOutput()
        self.now_ns = max(self.now_ns, msg.header.ts_ns)
        if isinstance(msg, WeightBatch):
            det = self._detector(msg)
            values = readings_array(msg.samples)  # once per message
            times = range(msg.t0_ns, msg.t0_ns + len(values) * msg.period_ns, msg.period_ns)
            if self.traces is not None:
                self.traces.add(msg.shelf_id, msg.plate_ids, msg.t0_ns, msg.period_ns, values)
            faults = self.health.weight(
                msg.shelf_id, msg.header.device_id, list(msg.plate_ids), msg.t0_ns, msg.period_ns, values
            )
            faults += self.health.check_curtain(msg.shelf_id, times[-1])
            for fault in faults:
                self._sensor_fault(fault, out)
            for event in det.add_batch(times, values):
                out.extend(self._decide(event))
        elif isinstance(msg, CurtainEvent):
            trusted, faults = self.health.curtain(
                msg.shelf_id, msg.header.device_id, msg.header.ts_ns, msg.event, msg.x_m
            )
            for fault in faults:
                self._sensor_fault(fault, out)
            if trusted:
                self._curtain(msg)
        elif isinstance(msg, GateDecision):
            if msg.decision == "open" and msg.visit_id is not None:
                self.shoppers.open_visit(msg.header.ts_ns, msg.visit_id, msg.account_id, msg.party_size)
                self.carts.setdefault(msg.visit_id, Cart(msg.visit_id, msg.account_id))
        elif isinstance(msg, GatePassage):
            self.shoppers.passage(msg.header.ts_ns, msg.gate_id, msg.direction)
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
            self._weigh_departures(out)
            if self._faulty_plates or self._stands:
                self._stood_at_faulty_plates(msg)
            self._unattended_hands(msg, out)
            self._blind_reaches(out)
            out.closed_carts += self._close_finished(msg.header.ts_ns)
        return out

    def _curtain(self, msg: CurtainEvent) -> None:
        if msg.shelf_id in self.detectors:
            self.detectors[msg.shelf_id].curtain(msg.header.ts_ns, msg.event, msg.x_m)
        reaches = self.reaches.setdefault(msg.shelf_id, [])
        if msg.event == "enter":
            log = self.hands_in.setdefault(msg.shelf_id, [])
            log.append((msg.header.ts_ns, msg.x_m))
            del log[: max(0, len(log) - 200)]
            reach = Reach(msg.header.ts_ns, msg.x_m)
            reaches.append(reach)
            del reaches[: max(0, len(reaches) - 200)]
            for fault in self.health.faults_on(msg.shelf_id):
                if fault.until_ns is None and fault.plate_id is not None:
                    self._note_blind_reach(fault, reach)
        else:
            # a leave closes the nearest open hand (curtains report where the beam cleared)
            open_ = [r for r in reaches[-20:] if r.out_ns is None]
            if open_:
                min(open_, key=lambda r: abs(r.x_m - msg.x_m)).out_ns = msg.header.ts_ns

    def finish(self) -> EngineOutput:
        """End of input: settle pending events and close every cart."""
        out = EngineOutput()
        for det in self.detectors.values():
            for event in det.flush():
                out.extend(self._decide(event))
        self._blind_reaches(out, final=True)
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
        at_plates = self._reaches_during(event, event.plate_deltas_g, AT_PLATES_M)
        products = score_products(
            event,
            self.store,
            self.inventory,
            returnable,
            self.params.products,
            hands=hands,
            reach_x_m=at_plates[0].x_m if len(at_plates) == 1 else None,
        )
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
        self._awaiting_departure.append(decision)
        return out

    def _associate(
        self,
        event: WeightEvent,
        plate_deltas_g: dict[str, float] | None = None,
        products: list[ProductHypothesis] | None = None,
        departed_by_ns: int | None = None,
    ) -> list[ShopperCandidate]:
        """Who made this event (or, given a subset of its plates, the change on those plates). With the
        products known, a hand the curtain saw go in where they lie places the reach."""
        deltas = plate_deltas_g or event.plate_deltas_g
        skus = {s for s, _ in products[0].items} if products else set()
        r = self._reach(event, deltas, skus)
        reach = (r.x_m, r.in_ns, r.out_ns) if r is not None else None
        return self.shoppers.associate(deltas, event.start_ns, event.end_ns, reach, departed_by_ns)

    def _x_span(self, plate_ids: Iterable[str], margin_m: float) -> tuple[float, float]:
        """Where along their shelf these plates lie, widened by `margin_m` on each side."""
        geo = [self.store.plate_geometry[p] for p in plate_ids]
        return min(g.x_range_m[0] for g in geo) - margin_m, max(g.x_range_m[1] for g in geo) + margin_m

    def _reaches_during(self, event: WeightEvent, plate_deltas_g: dict[str, float], beside_m: float) -> list[Reach]:
        """The hands the curtain saw in the shelf while these plates changed, at most `beside_m` beside them:
        in before the plates settled (grip, lift, ringing) and still in after the change began."""
        lo, hi = self._x_span(plate_deltas_g, beside_m)
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
        lo, hi = self._x_span(plate_deltas_g, AT_PLATES_M)
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
        since_ns = min(since for since, _ in corrections)
        moved = {track_id for _, tracks in corrections for track_id in tracks}
        for decision in self.decisions:
            if decision.event.end_ns < since_ns - NS:
                continue
            event = decision.event
            if not self.shoppers.had_a_say(moved, event.plate_deltas_g, event.start_ns, event.end_ns):
                continue  # asked again, it would give the same answer (and it takes a while in a busy store)
            shoppers = self._associate(
                decision.event, products=decision.products, departed_by_ns=decision.departed_by_ns
            )
            if self._same_lines(decision, shoppers):
                decision.shoppers = shoppers  # for what asks about the candidates later (a fault's hold)
            else:
                self._redecide(decision, shoppers, out)

    def _same_lines(self, decision: Decision, shoppers: list[ShopperCandidate]) -> bool:
        """Whether deciding again with these candidates would give the decision's lines as they stand: a
        pick charged to (or held for) its likeliest shopper alone, who is still the likeliest, and still
        as sure (or unsure) against the review threshold. A shift in the odds alone changes nothing: the
        tracker's samples that came after the decision move them a little, and taking every line back and
        making it again (and raising its ticket again) for that cost a busy store 100-300 ms per tracker
        message. Anything else (a return, several hands, a faulty sensor, no lines, a line another event
        holds) is compared candidate by candidate, as every candidate's odds may shape its lines."""
        top = decision.shoppers[0]
        held = decision.held
        simple = (
            decision.event.total_g < 0
            and decision.hands < 2
            and bool(decision.lines)
            and all(cart.visit_id == top.visit_id for cart, _ in decision.lines)
            and not self._held_whatever_the_odds(decision)
        )
        if not simple:
            before = [(c.visit_id, round(c.probability, 3)) for c in decision.shoppers]
            return [(c.visit_id, round(c.probability, 3)) for c in shoppers] == before
        return shoppers[0].visit_id == top.visit_id and self._sure_of(decision, shoppers) != held

    def _weigh_departures(self, out: EngineOutput) -> None:
        """Once the tracks show who walked off after an event, and what else the people there reached for
        meanwhile, ask again who made it. Its lines change only where that names someone else, settles a
        line held for staff, or finds the one charged surely busy with another reach: a line is not taken
        back and made again (nor its ticket raised again) for a shift in its odds. Staff decide what a
        faulty sensor or another event holds: deciding again would charge it silently."""
        window_ns = round(self.params.shoppers.departure_window_s * NS)
        while self._awaiting_departure and self._awaiting_departure[0].event.end_ns + window_ns <= self.now_ns:
            decision = self._awaiting_departure.popleft()
            if not decision.lines or decision.hands >= 2:
                # went to inventory, or its carts were re-decided away; or several hands took part, and
                # each of their people walks off with something
                continue
            if self._held_whatever_the_odds(decision):
                continue
            decision.departed_by_ns = decision.event.end_ns + window_ns
            shoppers = self._associate(
                decision.event, products=decision.products, departed_by_ns=decision.departed_by_ns
            )
            weighed = self._weigh_other_reaches(decision, shoppers)
            if weighed[0].visit_id is not None and self._cart_for(weighed[0].visit_id) is None:
                # they left the store soon after and their cart has been handed on: staff decide
                continue
            settles = decision.held and self._sure_of(decision, weighed)
            # who walked off alone does not take back a charge; someone's other reach may
            unsettles = not decision.held and self._sure_of(decision, shoppers) and not self._sure_of(decision, weighed)
            if settles or unsettles or weighed[0].visit_id != decision.shoppers[0].visit_id:
                self._redecide(decision, weighed, out)

    def _weigh_other_reaches(self, decision: Decision, shoppers: list[ShopperCandidate]) -> list[ShopperCandidate]:
        """Someone standing by who was surely the one of another event meanwhile (surer of it than of this
        one), without walking off in between, stood there for that reach: they are less likely to have made
        this one too. It may hold a charge for staff, or settle a held line. Not for an event whose plates
        moved both ways: a put-back and a pick at once, often two people, one of them the busy one."""
        p = self.params.shoppers
        event = decision.event
        if len({d > 0 for d in event.plate_deltas_g.values()}) > 1:
            return shoppers
        window_ns = round(p.departure_window_s * NS)
        weighed: list[ShopperCandidate] = []
        for c in shoppers:
            odds = 1.0
            if c.track_id is not None:
                for other in self.decisions:
                    o = other.event
                    if other is decision or abs(o.start_ns - event.start_ns) > window_ns or not other.shoppers:
                        continue
                    top = other.shoppers[0]
                    if (
                        top.track_id != c.track_id
                        or top.probability <= c.probability
                        or not self._sure_of(other, other.shoppers)
                    ):
                        continue
                    lo, hi = min(event.start_ns, o.start_ns), max(event.end_ns, o.end_ns)
                    if self.shoppers.stayed_put(c.track_id, lo, hi, p.departure_m):
                        odds = p.another_reach_odds
                        break
            weighed.append(ShopperCandidate(c.visit_id, c.probability * odds, c.distance_m, c.track_id))
        total = sum(c.probability for c in weighed) or 1.0
        return sorted(
            (ShopperCandidate(c.visit_id, c.probability / total, c.distance_m, c.track_id) for c in weighed),
            key=lambda c: -c.probability,
        )

    def _held_whatever_the_odds(self, decision: Decision) -> bool:
        """Staff decide this decision's lines however sure the shoppers' odds become: the event depends on
        a faulty sensor, or some of its lines wait on another event's ticket (a return that was not
        weighed right holds the pick it returns)."""
        if self._fault_of(decision.event) is not None:
            return True
        own = set(decision.ticket.line_ids) if decision.ticket is not None else set()
        return any(line.status == "under_review" and line.line_id not in own for _, line in decision.lines)

    def _sure_of(self, decision: Decision, shoppers: list[ShopperCandidate]) -> bool:
        """Whether a decision's lines would be charged without review with these candidates: the likeliest
        shopper with the likeliest product, against the review threshold (a split of several units is
        judged differently: such a line may still be held once decided again)."""
        return shoppers[0].probability * decision.products[0].probability >= self.params.review_below

    def _redecide(self, decision: Decision, shoppers: list[ShopperCandidate], out: EngineOutput) -> None:
        """Take back a decision's lines and ticket and assign it again with these candidates (open carts
        only: a closed cart has been handed on for settlement)."""
        if any(cart.state == "closed" for cart, _ in decision.lines):
            return
        for cart, line in decision.lines:
            cart.lines.remove(line)
            _changed(cart, out)
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
        """Add (cart, sku, signed units) lines of one event; below the confidence threshold, or when the
        event depends on a faulty sensor, they go under review together, with one ticket for staff."""
        event, products, shoppers = decision.event, decision.products, decision.shoppers
        fault = self._fault_of(event)
        if fault is not None:
            ticket_reason = "; ".join(r for r in (fault.describe(), ticket_reason or reason) if r)
            reason = "; ".join(r for r in (fault.describe(), reason) if r)
        status: Literal["confirmed", "under_review"] = (
            "confirmed" if conf >= self.params.review_below and fault is None else "under_review"
        )
        lines = []
        for cart, sku, qty in changes:
            line = self._new_line(cart, sku, qty, conf, decision, reason, out, status)
            lines.append(line)
            decision.lines.append((cart, line))
        if fault is not None:
            # a return not weighed right must not refund silently, nor leave its item charged
            lines += self._hold_lines(self._returned_picks(decision.lines), fault.describe(), out)
            lines += self._others_under_fault(decision, fault, out)
        if status == "under_review":
            decision.ticket = self._ticket(
                event, ticket_reason or reason or "low confidence", products, shoppers, lines, out
            )

    def _ticket(
        self,
        event: WeightEvent,
        reason: str,
        products: list[ProductHypothesis],
        shoppers: list[ShopperCandidate],
        lines: list[CartLine],
        out: EngineOutput,
    ) -> ReviewTicket:
        self._tickets += 1
        ticket = ReviewTicket(f"T{self._tickets}", event, reason, products, shoppers, [ln.line_id for ln in lines])
        out.tickets.append(ticket)
        return ticket

    # --- sensor faults -------------------------------------------------------------------------
    def _sensor_fault(self, fault: SensorFault, out: EngineOutput) -> None:
        """A sensor became faulty, or is back. From the fault's start on, what depends on it goes to review:
        lines already decided are moved there, a stuck curtain's open hands are no longer waited for, and
        the hands that went in at a faulty plate are put to the shoppers (`_blind_reaches`)."""
        out.sensor_faults.append(fault)
        det = self.detectors.get(fault.shelf_id)
        if fault.until_ns is not None:
            if fault.plate_id is not None:
                self._faulty_plates.pop(fault.plate_id, None)
                if det is not None:
                    det.ignore_plate(fault.plate_id, False)
            return
        if fault.plate_id is None:
            # stuck on: the hands it reported will never leave, and where they went in is not known
            if det is not None:
                det.drop_hands()
            reaches = self.reaches.get(fault.shelf_id, [])
            reaches[:] = [r for r in reaches if r.out_ns is not None]
        else:
            self._faulty_plates[fault.plate_id] = fault
            if det is not None and fault.kind == "no_reading":
                det.ignore_plate(fault.plate_id, True)  # a dead plate is not a neighbour still changing
            for reach in self.reaches.get(fault.shelf_id, []):
                self._note_blind_reach(fault, reach)
        for decision in self.decisions:
            found = self._fault_of(decision.event)
            if found is not None:
                self._hold_decision(decision, found, out)

    def _unattended_hands(self, msg: ShopperTracks, out: EngineOutput) -> None:
        """A curtain that says a hand is in where, for `unattended_s`, the tracks show nobody standing is
        stuck on: flagged now instead of after `max_hand_s`, which holds the shelf's events back."""
        hands = self.health.open_hands()
        if not hands:
            self._attended.clear()
            return
        p = self.health.params
        now = msg.header.ts_ns
        self._attended = {k: t for k, t in self._attended.items() if k in {(s, x) for s, x, _ in hands}}
        for shelf_id, x_m, since_ns in hands:
            hx, hy, _ = self.store.shelf_position_to_store(shelf_id, x_m)
            if any(math.hypot(t.x - hx, t.y - hy) <= p.attended_m for t in msg.tracks):
                self._attended[(shelf_id, x_m)] = now
            elif now - max(since_ns, self._attended.get((shelf_id, x_m), 0)) > p.unattended_s * NS:
                fault = self.health.stuck_unattended(shelf_id, since_ns)
                if fault is not None:
                    self._sensor_fault(fault, out)

    def _fault_of(self, event: WeightEvent) -> SensorFault | None:
        """A fault the event's measurement or placing depends on: its shelf's curtain stuck meanwhile, or a
        plate of the event or next to it (a unit lying across both) faulty meanwhile or just before."""
        faults = self.health.faults_on(event.shelf_id)
        if not faults:
            return None
        near = self.params.weight.neighbour_plates
        indices = [self.store.plate_geometry[p].index_on_shelf for p in event.plate_deltas_g]
        after = round(FAULT_AFTER_S * NS)
        for f in faults:
            if f.plate_id is None:
                if f.covers(event.start_ns, event.end_ns):
                    return f
            elif f.covers(event.start_ns, event.end_ns, after):
                index = self.store.plate_geometry[f.plate_id].index_on_shelf
                if any(abs(index - i) <= near for i in indices):
                    return f
        return None

    def _hold_lines(self, pairs: list[tuple[Cart, CartLine]], reason: str, out: EngineOutput) -> list[CartLine]:
        """Move confirmed lines of open carts under review; returns those moved."""
        held = []
        for cart, line in pairs:
            if line.status != "confirmed" or cart.state == "closed":
                continue
            line.status = "under_review"
            line.reason = "; ".join(r for r in (reason, line.reason) if r)
            _changed(cart, out)
            held.append(line)
        return held

    def _returned_picks(self, pairs: list[tuple[Cart, CartLine]]) -> list[tuple[Cart, CartLine]]:
        """The pick lines of what these lines return (same cart, same product)."""
        return [
            (cart, ln)
            for cart, line in pairs
            if line.quantity < 0
            for ln in cart.lines
            if ln.sku == line.sku and ln.quantity > 0
        ]

    def _hold_decision(self, decision: Decision, fault: SensorFault, out: EngineOutput) -> None:
        """An event decided before its sensor was known faulty: its lines (and what a return returns) go
        under review, under one ticket that replaces the event's earlier one."""
        pairs = [(c, ln) for c, ln in decision.lines if c.state != "closed"]
        held = self._hold_lines(pairs + self._returned_picks(pairs), fault.describe(), out)
        held += self._others_under_fault(decision, fault, out)
        if not held:
            return
        reason = fault.describe()
        if decision.ticket is not None:
            out.withdrawn_tickets.append(decision.ticket.ticket_id)
            reason += "; " + decision.ticket.reason
        lines = [ln for _, ln in pairs] + [ln for ln in held if all(ln is not x for _, x in pairs)]
        decision.ticket = self._ticket(decision.event, reason, decision.products, decision.shoppers, lines, out)

    def _others_under_fault(self, decision: Decision, fault: SensorFault, out: EngineOutput) -> list[CartLine]:
        """The event depends on a faulty sensor, so who made it is blurred (a stuck curtain's hands, a
        plate's timing): every other shopper at least FAULT_MIN_P likely to have made it gets what it
        picked as lines under review too, and has what it returned held. Returns the lines added or held."""
        visits = {c.visit_id for c, _ in decision.lines}
        items = decision.products[0].items if decision.products else ()
        picked = items if decision.event.total_g < 0 else ()
        returned = {sku for sku, _ in items} if decision.event.total_g >= 0 else set()
        reason = f"{fault.describe()}: may have been this shopper"
        out_lines: list[CartLine] = []
        for cand in decision.shoppers:
            cart = self._cart_for(cand.visit_id)
            if cart is None or cart.visit_id in visits or cand.probability < FAULT_MIN_P:
                continue
            visits.add(cart.visit_id)
            for sku, qty in picked:
                line = self._new_line(cart, sku, qty, cand.probability, decision, reason, out)
                decision.lines.append((cart, line))
                out_lines.append(line)
            out_lines += self._hold_lines(
                [(cart, ln) for ln in cart.lines if ln.sku in returned and ln.quantity > 0], reason, out
            )
        return out_lines

    def _new_line(
        self,
        cart: Cart,
        sku: str,
        qty: int,
        conf: float,
        decision: Decision,
        reason: str,
        out: EngineOutput,
        status: Literal["confirmed", "under_review"] = "under_review",
    ) -> CartLine:
        """A line of a decision's event (or a reach), added to an open cart."""
        self._lines += 1
        line = CartLine(
            f"L{self._lines}",
            sku,
            qty,
            conf,
            decision.event.event_id,
            status,
            decision.products,
            decision.shoppers,
            reason,
        )
        cart.lines.append(line)
        _changed(cart, out)
        return line

    def _note_blind_reach(self, fault: SensorFault, reach: Reach, track_id: str | None = None) -> None:
        """Keep a hand that went in at a faulty plate while it was faulty, to be put to the shoppers."""
        assert fault.plate_id is not None
        lo, hi = self._x_span([fault.plate_id], BLIND_REACH_MARGIN_M)
        if not lo <= reach.x_m <= hi:
            return
        if not fault.covers(reach.in_ns, reach.out_ns if reach.out_ns is not None else reach.in_ns):
            return
        key = (fault.plate_id, reach.in_ns, reach.x_m)
        if key not in self._blind_seen:
            self._blind_seen.add(key)
            self._blind.append((fault, reach, track_id))

    def _stood_at_faulty_plates(self, msg: ShopperTracks) -> None:
        """Who stands at a faulty plate of a shelf without a working curtain: a stay of STAND_S or more
        is taken as a reach there."""
        t = msg.header.ts_ns
        for plate, fault in self._faulty_plates.items():
            shelf = self.store.shelves_by_id[fault.shelf_id]
            if shelf.curtain is not None and self.health.curtain_stuck(fault.shelf_id) is None:
                continue
            g = self.store.plate_geometry[plate]
            for track in msg.tracks:
                if distance_to_segment((track.x, track.y), g.front_left, g.front_right) > STAND_M:
                    continue
                key = (plate, track.track_id)
                _, since, _ = self._stands.get(key, (fault, t, t))
                self._stands[key] = (fault, since, t)
        for key, (fault, since, until) in list(self._stands.items()):
            if until >= t - NS // 2:
                continue  # still there (or briefly unseen)
            del self._stands[key]
            if until - since < STAND_S * NS:
                continue
            lo, hi = self.store.plate_geometry[key[0]].x_range_m
            self._note_blind_reach(fault, Reach(since, (lo + hi) / 2, until), key[1])

    def _blind_reaches(self, out: EngineOutput, final: bool = False) -> None:
        """Hands that went in at a faulty plate: what they took or put there was not weighed. Whoever
        reached (FAULT_MIN_P or more likely) gets, under review, each product the plate holds, as many
        units as one event is scored for (a pick nobody saw), and the items already in the cart held for
        review (a put-back nobody saw). Done once the reach's tracks are in: a second after the hand came
        out (or 3 s after it went in, if no leave came)."""
        if not self._blind:
            return
        keep = []
        for fault, reach, track_id in self._blind:
            end = reach.out_ns if reach.out_ns is not None else reach.in_ns + 3 * NS
            if not final and self.now_ns < end + NS:
                keep.append((fault, reach, track_id))
                continue
            self._blind_reach(fault, reach, end, track_id, out)
        self._blind = keep

    def _blind_reach(
        self, fault: SensorFault, reach: Reach, end_ns: int, track_id: str | None, out: EngineOutput
    ) -> None:
        plate = fault.plate_id
        assert plate is not None
        geo = self.store.plate_geometry[plate]
        if track_id is None:  # a curtain's hand: whose, from where people stood and reached
            shoppers = self.shoppers.associate(
                {plate: -1.0}, reach.in_ns, end_ns, (reach.x_m, reach.in_ns, reach.out_ns)
            )
        else:  # someone seen standing there
            visit = self.shoppers.visit_of_track(track_id, (reach.in_ns + end_ns) // 2)
            shoppers = [ShopperCandidate(visit, 1.0, None, track_id)] if visit else []
        # what may have been taken: each product on the plate, as many units as one event is scored for
        units = {s: min(n, self.params.products.max_units) for s, n in self.inventory.units[plate].items() if n > 0}
        skus = sorted(units)
        products = [ProductHypothesis(((s, units[s]),), 1.0 / len(skus), 0.0) for s in skus]
        self._faulty_events += 1
        event = WeightEvent(
            f"{plate}-unweighed{self._faulty_events}",
            fault.shelf_id,
            reach.in_ns,
            end_ns,
            (PlateChange(plate, geo.index_on_shelf, reach.in_ns, end_ns, 0.0, 0.0, 0.0),),
        )
        reason = f"{fault.describe()}: a shopper reached there; what was taken or put back was not weighed"
        unweighed = Decision(event, products, shoppers)  # not kept: nothing to re-decide
        for cand in shoppers:
            cart = self._cart_for(cand.visit_id)
            if cart is None or cand.probability < FAULT_MIN_P:
                continue
            carried = [(cart, ln) for ln in cart.lines if ln.quantity > 0]
            lines = self._hold_lines(carried, reason, out)
            lines += [self._new_line(cart, sku, units[sku], 0.0, unweighed, reason, out) for sku in skus]
            if lines:
                self._ticket(event, reason, products, shoppers, lines, out)

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

    def _apply_shared_units(self, decision: Decision, out: EngineOutput) -> bool:
        """Two people taking (or putting back) the same product at one plate at once make one event of
        several units; with as many hands seen, the units are shared out among the likely shoppers (for a
        put-back, among those whose carts hold the product, each no more than they hold)."""
        shoppers, best = decision.shoppers, decision.products[0]
        if len(best.items) != 1 or best.units < 2:
            return False
        hands = decision.hands
        if hands < 2:
            return False
        sku, qty = best.items[0]
        pick = decision.event.total_g < 0
        if pick:
            split = self._apply_pick_split_by_hand(decision, out)
            if split != "shared":
                return split == "split"
        # with several hands seen, the likeliest of those who stood within reach took part; someone less
        # likely than nobody at all only came within reach for a moment (passing by)
        nobody = next((c.probability for c in shoppers if c.visit_id is None), 0.0)
        within = [
            c
            for c in shoppers
            if c.distance_m is not None
            and c.distance_m <= REACH_M
            and c.probability > nobody
            and (cart := self._cart_for(c.visit_id)) is not None
            and (pick or cart.net(include_review=True)[sku] >= 1)
        ]
        takers = within[: min(hands, best.units)]
        if len(takers) < 2:
            return False
        # with no more people within reach than takers, each of them took part; with more, each one's
        # chance of being among the k takers is k times their share of the odds among those within reach
        # (at most 1): with a third person there, the second taker is unsure
        mass = sum(c.probability for c in within) if len(within) > len(takers) else 0.0
        shares = [qty // len(takers) + (1 if i < qty % len(takers) else 0) for i in range(len(takers))]
        changes: list[tuple[float, Cart, int, str]] = []
        for c, q in zip(takers, shares, strict=True):
            cart = self._cart_for(c.visit_id)
            assert cart is not None
            if not pick and cart.net(include_review=True)[sku] < q:
                return False  # a share more than they carry: the single return's rules decide
            among = min(1.0, len(takers) * c.probability / mass) if mass > 0 else 1.0
            conf = best.probability * (1.0 - nobody) * among
            changes.append((conf, cart, q if pick else -q, f"{q} to {c.visit_id} {among:.0%}"))
        self._add_lines_of_takers(decision, sku, changes, hands, "units shared", out)
        return True

    def _apply_pick_split_by_hand(
        self, decision: Decision, out: EngineOutput
    ) -> Literal["split", "one hand", "shared"]:
        """Several hands in the shelf at once took units of one product: each plate's units go with the
        hand that went in nearest it, and each hand's units to whoever reached there ("split"). When all
        the plates lie nearest one hand and the others went in beside them, that hand took them all
        ("one hand"). "shared" (nothing done): hands at the same plates, or plates that do not add up to
        whole units per hand; the caller shares the units out."""
        event, best = decision.event, decision.products[0]
        reaches = self._reaches_during(event, event.plate_deltas_g, 0.15)
        lo, hi = self._x_span(event.plate_deltas_g, AT_PLATES_M)
        sku, qty = best.items[0]
        unit = self.store.products_by_sku[sku].unit_weight_g
        groups: dict[int, dict[str, float]] = {}
        for plate, delta in event.plate_deltas_g.items():
            a, b = self.store.plate_geometry[plate].x_range_m
            k = min(range(len(reaches)), key=lambda k: abs(reaches[k].x_m - (a + b) / 2))
            groups.setdefault(k, {})[plate] = delta
        if len(groups) == 1:
            (k,) = groups
            beside = all(not lo <= r.x_m <= hi for i, r in enumerate(reaches) if i != k)
            return "one hand" if beside else "shared"
        if len(groups) < len(reaches):
            return "shared"  # two hands at the same plates: which took how many, the plates cannot say
        units = {k: round(-sum(g.values()) / unit.mean) for k, g in groups.items()}
        # each hand's share must be whole units by weight (the spread of a unit allowed), all adding up
        whole = all(
            n >= 1 and abs(-sum(groups[k].values()) - n * unit.mean) <= 3 * unit.std * math.sqrt(n) + 5.0
            for k, n in units.items()
        )
        if not whole or sum(units.values()) != qty:
            return "shared"
        order = sorted(groups, key=lambda k: reaches[k].x_m)
        per_hand = [
            self.shoppers.associate(
                groups[k],
                event.start_ns,
                event.end_ns,
                (reaches[k].x_m, reaches[k].in_ns, reaches[k].out_ns),
                decision.departed_by_ns,
            )
            for k in order
        ]
        who, sure = _assign_hands(per_hand)
        changes: list[tuple[float, Cart, int, str]] = []
        for k, cand, p in zip(order, who, sure, strict=True):
            cart = self._cart_for(cand.visit_id)
            if cart is None:
                return "shared"
            changes.append((best.probability * p, cart, units[k], f"{units[k]} to {cand.visit_id} {p:.0%}"))
        self._add_lines_of_takers(decision, sku, changes, len(reaches), "units by where each went", out)
        return "split"

    def _add_lines_of_takers(
        self,
        decision: Decision,
        sku: str,
        changes: list[tuple[float, Cart, int, str]],
        hands: int,
        how: str,
        out: EngineOutput,
    ) -> None:
        """Units of one product taken (or put back) by several hands at once, as (confidence, cart, signed
        units, why) per taker: a taker who is clear is charged (or refunded); the unclear ones go to staff
        together, on one ticket."""
        qty = sum(n for _, _, n, _ in changes)
        did = "took" if qty > 0 else "put back"
        for held in (False, True):
            part = [c for c in changes if (c[0] < self.params.review_below) == held]
            if part:
                self._add_lines(
                    decision,
                    [(cart, sku, n) for _, cart, n, _ in part],
                    min(c[0] for c in part),
                    f"{hands} hands at once, {how}: " + ", ".join(c[3] for c in part),
                    out,
                    f"{hands} shoppers {did} {abs(qty)} at once",
                )

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
            cands = self._associate(
                event, where, [ProductHypothesis(((sku, qty),), 1.0, 0.0)], departed_by_ns=decision.departed_by_ns
            )
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
        if self._apply_shared_units(decision, out) or self._apply_two_hand_pick(decision, out):
            return
        top = shoppers[0]
        cart = self._cart_for(top.visit_id)
        if cart is None:
            reason = "nobody near the shelf" if top.visit_id is None else "the likely shopper's visit is closed"
            faulty = self._fault_of(event) is not None
            if top.probability >= self.params.review_below and not faulty:
                out.inventory_events.append(InventoryEvent(event, reason, products))
                return
            # someone may still have taken it (with a faulty sensor, when and where are blurred: the
            # nearest of the equally unlikely): ask staff, charge nobody meanwhile
            takers = [c for c in shoppers if self._cart_for(c.visit_id)]
            if faulty:
                takers.sort(key=_likely_then_nearest)
            cart = self._cart_for(takers[0].visit_id) if takers else None
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
        if self._apply_shared_units(decision, out):
            return
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
        # the holders share what the shoppers' odds give them; where the likeliest person holds none of it
        # (the product or the person is wrong), a holder is only as likely as they are against that person
        likeliest = max((c.probability for c in shoppers if c.visit_id), default=0.0)
        p_shopper = top.probability / max(total, likeliest) if total > 0 else 0.0
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


def _changed(cart: Cart, out: EngineOutput) -> None:
    """The cart's lines changed: a new version, to be published once for this input."""
    cart.version += 1
    if cart not in out.changed_carts:
        out.changed_carts.append(cart)


def _assign_hands(per_hand: list[list[ShopperCandidate]], top: int = 4) -> tuple[list[ShopperCandidate], list[float]]:
    """Who reached with each of several hands in a shelf at once: the likeliest way to give each hand one
    of its candidates, no person to two hands (a hand seen near both spots is counted once), and for each
    hand the probability that its taker is right (over all the ways). Each hand's candidates are its own
    P(person | that reach)."""
    ways: list[tuple[float, tuple[ShopperCandidate, ...]]] = []
    for combo in itertools.product(*(cands[:top] for cands in per_hand)):
        people = [c.track_id for c in combo if c.visit_id is not None]
        if len(people) == len(set(people)):
            ways.append((math.prod(c.probability for c in combo), combo))
    total = sum(w for w, _ in ways)
    if total <= 0:
        return [cands[0] for cands in per_hand], [0.0] * len(per_hand)
    chosen = max(ways, key=lambda w: w[0])[1]
    sure = [sum(w for w, combo in ways if combo[i].visit_id == c.visit_id) / total for i, c in enumerate(chosen)]
    return list(chosen), sure
