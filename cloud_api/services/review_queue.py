"""What the review console shows: the queue of open tickets (lines under review and disputes waiting
for staff), one ticket with its evidence, and how long decisions took. Read-only; decisions go through
services.settlement and services.disputes, the same functions as the JSON staff API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.db.models import Account, AuditEntry, Cart, CartLine, Dispute, Product, Receipt, Staff, Store, Visit
from cloud_api.domain.review import DecisionTimes, summarize
from cloud_api.services.container import Container
from cloud_api.services.errors import ForbiddenError, NotFoundError
from store_edge.protocol.messages import ReviewTicket, ShopperPath

NS = 10**9
LINE_DECISIONS = ("line.confirm", "line.void", "line.change", "line.reassign")
DISPUTE_DECISIONS = ("dispute.approved", "dispute.rejected")


@dataclass(frozen=True)
class QueueItem:
    kind: str  # "ticket" | "dispute"
    url: str
    store_id: str
    visit_id: str
    title: str
    reason: str
    waiting_since_ns: int  # the shopper left (cart received) or the dispute was opened: the queue's order
    deadline_ns: int | None


def _scope(staff: Staff, store_id: Any) -> Any:
    return store_id == staff.store_id if staff.store_id is not None else True


def check_scope(staff: Staff, store_id: str) -> None:
    if staff.store_id is not None and staff.store_id != store_id:
        raise ForbiddenError(f"you work for store {staff.store_id}; this is in store {store_id}")


def visit_tickets(s: Session, visit_id: str) -> list[ReviewTicket]:
    cart = s.get(Cart, visit_id)
    return [ReviewTicket.model_validate(t) for t in cart.payload.get("tickets", [])] if cart else []


def ticket_of_line(s: Session, line: CartLine) -> ReviewTicket | None:
    """The edge's ticket for a line: the one raised for the weight event the line came from."""
    cart = s.get(Cart, line.visit_id)
    if cart is None:
        return None
    edge_lines = cart.payload["cart"]["lines"]
    events: list[str] = next((ln["event_ids"] for ln in edge_lines if ln["line_id"] == line.line_id), [])
    return next((t for t in visit_tickets(s, line.visit_id) if t.event_id in events), None)


def queue(c: Container, staff: Staff, limit: int = 500) -> list[QueueItem]:
    """Open tickets of the stores this staff member sees, longest-waiting first: the shopper has left and
    waits for a receipt, and held lines are dropped (never charged) at the review deadline."""
    items: list[QueueItem] = []
    with c.sessions() as s:
        q = (
            select(CartLine, Visit)
            .join(Visit, Visit.id == CartLine.visit_id)
            .where(Visit.state == "held", CartLine.status == "under_review", _scope(staff, Visit.store_id))
            .order_by(Visit.cart_received_ns, CartLine.id)
            .limit(limit)
        )
        names = {p.sku: p.name for p in s.scalars(select(Product).where(_scope(staff, Product.store_id)))}
        for line, visit in s.execute(q):
            ticket = ticket_of_line(s, line)
            items.append(
                QueueItem(
                    kind="ticket",
                    url=f"/console/tickets/{visit.id}/{line.line_id}",
                    store_id=visit.store_id,
                    visit_id=visit.id,
                    title=f"{line.quantity} x {names.get(line.sku, line.sku)}",
                    reason=ticket.reason if ticket else f"confidence {line.confidence:.0%}",
                    waiting_since_ns=visit.cart_received_ns or 0,
                    deadline_ns=visit.review_deadline_ns,
                )
            )
        dq = (
            select(Dispute, Receipt)
            .join(Receipt, Receipt.id == Dispute.receipt_id)
            .where(Dispute.state == "pending_staff", _scope(staff, Receipt.store_id))
            .order_by(Dispute.created_ns)
            .limit(limit)
        )
        for dispute, receipt in s.execute(dq):
            items.append(
                QueueItem(
                    kind="dispute",
                    url=f"/console/disputes/{dispute.id}",
                    store_id=receipt.store_id,
                    visit_id=receipt.visit_id,
                    title=f"Dispute: {dispute.quantity} x {names.get(dispute.sku, dispute.sku)}",
                    reason=dispute.reason,
                    waiting_since_ns=dispute.created_ns,
                    deadline_ns=None,
                )
            )
    return sorted(items, key=lambda i: i.waiting_since_ns)


@dataclass(frozen=True)
class TimingSummary:
    overall: DecisionTimes
    by_staff: dict[str, DecisionTimes] = field(default_factory=dict)


def decision_seconds(s: Session, entry: AuditEntry) -> float | None:
    """How long the ticket of one decision (audit entry) waited: from the cart's arrival (lines) or the
    dispute's opening to the decision."""
    if entry.action in LINE_DECISIONS:
        visit = s.get(Visit, entry.object_id)
        start = visit.cart_received_ns if visit else None
    else:
        dispute = s.get(Dispute, entry.object_id)
        start = dispute.created_ns if dispute else None
    return (entry.ts_ns - start) / NS if start is not None else None


def decision_times(c: Container, staff: Staff, since_ns: int) -> TimingSummary:
    """Median and p90 time to decision since `since_ns`, overall and per staff member, over the decisions
    in the stores this staff member sees (from the audit log: who decided, and when)."""
    per_staff: dict[str, list[float]] = {}
    with c.sessions() as s:
        entries = s.scalars(
            select(AuditEntry).where(
                AuditEntry.ts_ns >= since_ns, AuditEntry.action.in_(LINE_DECISIONS + DISPUTE_DECISIONS)
            )
        )
        for entry in entries:
            store_id = _entry_store(s, entry)
            if store_id is None or (staff.store_id is not None and store_id != staff.store_id):
                continue
            seconds = decision_seconds(s, entry)
            if seconds is not None:
                per_staff.setdefault(entry.actor.removeprefix("staff:"), []).append(seconds)
    everyone = [t for times in per_staff.values() for t in times]
    return TimingSummary(summarize(everyone), {who: summarize(t) for who, t in sorted(per_staff.items())})


def _entry_store(s: Session, entry: AuditEntry) -> str | None:
    if entry.object_type == "visit":
        visit = s.get(Visit, entry.object_id)
        return visit.store_id if visit else None
    dispute = s.get(Dispute, entry.object_id)
    receipt = s.get(Receipt, dispute.receipt_id) if dispute else None
    return receipt.store_id if receipt else None


@dataclass
class VisitView:
    visit: Visit
    store: Store
    account: Account | None
    lines: list[CartLine]
    names: dict[str, str]


def visit_view(c: Container, staff: Staff, visit_id: str) -> VisitView:
    """A visit with its store, shopper, lines and product names; another store's visit is refused."""
    with c.sessions() as s:
        visit = s.get(Visit, visit_id)
        if visit is None:
            raise NotFoundError(f"no visit {visit_id}")
        check_scope(staff, visit.store_id)
        store = s.get(Store, visit.store_id)
        assert store is not None
        account = s.get(Account, visit.account_id) if visit.account_id else None
        lines = list(s.scalars(select(CartLine).where(CartLine.visit_id == visit_id).order_by(CartLine.id)))
        names = {p.sku: p.name for p in s.scalars(select(Product).where(Product.store_id == visit.store_id))}
    return VisitView(visit, store, account, lines, names)


@dataclass(frozen=True)
class ShopperChoice:
    """One candidate shopper of a ticket, as the reviewer picks from it."""

    number: int  # 1, 2, ...: the keyboard shortcut and the label on the floor map
    visit_id: str | None  # None: nobody (staff, restocking)
    probability: float
    name: str
    visit_state: str | None
    path: ShopperPath | None


@dataclass
class TicketDetail:
    view: VisitView
    line: CartLine
    ticket: ReviewTicket | None
    shoppers: list[ShopperChoice]
    catalogue: list[Product]


def ticket_detail(c: Container, staff: Staff, visit_id: str, line_id: str) -> TicketDetail:
    view = visit_view(c, staff, visit_id)
    line = next((ln for ln in view.lines if ln.line_id == line_id), None)
    if line is None:
        raise NotFoundError(f"visit {visit_id} has no line {line_id}")
    with c.sessions() as s:
        ticket = ticket_of_line(s, line)
        paths = {p.visit_id: p for p in ticket.evidence.shoppers} if ticket and ticket.evidence else {}
        shoppers = []
        for number, cand in enumerate(ticket.shoppers if ticket else [], start=1):
            other = s.get(Visit, cand.visit_id) if cand.visit_id else None
            account = s.get(Account, other.account_id) if other and other.account_id else None
            name = account.name if account else ("nobody" if cand.visit_id is None else "unknown shopper")
            shoppers.append(
                ShopperChoice(
                    number,
                    cand.visit_id,
                    cand.probability,
                    name,
                    other.state if other else None,
                    paths.get(cand.visit_id),
                )
            )
        catalogue = list(
            s.scalars(select(Product).where(Product.store_id == view.visit.store_id).order_by(Product.name))
        )
    return TicketDetail(view, line, ticket, shoppers, catalogue)
