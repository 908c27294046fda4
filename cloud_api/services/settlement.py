"""Carts from the edge, review decisions, receipts and the one charge per visit.

Exactly one charge per visit: the cart is stored under the visit's primary key (a retry or a
concurrent PUT finds it and repeats the first answer); the payment row is unique per visit; a caller
claims it (state `charging`, with a lease) inside a row-locked transaction before calling the
processor, and every processor call carries the key `<visit>-charge-<attempt>`, so even a charge whose
answer was lost (timeout) is found again rather than repeated.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api.adapters.payments import PaymentError, PaymentResult, PaymentTimeoutError
from cloud_api.core.security import new_id
from cloud_api.db.models import (
    Account,
    Cart,
    CartLine,
    Delivery,
    Device,
    Payment,
    Product,
    Promotion,
    Receipt,
    Staff,
    Store,
    Visit,
)
from cloud_api.domain import settlement as sm
from cloud_api.domain.pricing import CatalogueItem, MultiBuy, from_cents, net_quantities, price_receipt, to_cents
from cloud_api.schemas.cart import CartIn
from cloud_api.services import extra_charges
from cloud_api.services.container import Container, audit
from cloud_api.services.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError

CHARGE_LEASE_NS = 60 * 10**9
MAX_ATTEMPTS = 3


def _lock_visit(c: Container, s: Session, visit_id: str) -> Visit | None:
    q = select(Visit).where(Visit.id == visit_id)
    if c.postgres:
        q = q.with_for_update()
    return s.scalars(q).first()


def _lock_visit_and_payment(c: Container, s: Session, visit_id: str, payment_id: str) -> tuple[Visit, Payment]:
    """The visit (locked) and the payment a charge attempt is recording its outcome on; both exist."""
    visit = _lock_visit(c, s, visit_id)
    payment = s.get(Payment, payment_id)
    assert visit is not None
    assert payment is not None
    return visit, payment


def check_staff_store(staff: Staff, visit: Visit) -> None:
    """Staff of one store act on that store's visits only (admins, with no store, on every store's)."""
    if staff.store_id is not None and staff.store_id != visit.store_id:
        raise ForbiddenError(f"you work for store {staff.store_id}; visit {visit.id} is in store {visit.store_id}")


def _lock_staff_visit(c: Container, s: Session, staff: Staff, visit_id: str) -> Visit:
    """The visit a staff member acts on, locked; refused if it does not exist or is another store's."""
    visit = _lock_visit(c, s, visit_id)
    if visit is None:
        raise NotFoundError(f"no visit {visit_id}")
    check_staff_store(staff, visit)
    return visit


def _views(lines: list[CartLine]) -> list[sm.LineView]:
    return [sm.LineView(line.line_id, line.sku, line.quantity, line.status) for line in lines]


def accept_cart(c: Container, device: Device, visit_id: str, body: CartIn) -> dict[str, Any]:
    """Record the edge's cart once; a repeat gets the first answer. Settlement runs afterwards."""
    if body.visit_id != visit_id or body.cart.visit_id != visit_id:
        raise BadRequestError(
            f"the body is for visit {body.visit_id} (cart {body.cart.visit_id}), the URL for {visit_id}"
        )
    if device.kind != "edge":
        raise ForbiddenError(f"device {device.id} is a {device.kind}: only the store's edge worker sends carts")
    if body.store_id != device.store_id:
        raise ForbiddenError(f"this device key belongs to store {device.store_id}, the cart to store {body.store_id}")
    if len({line.line_id for line in body.cart.lines}) != len(body.cart.lines):
        raise BadRequestError("the cart repeats a line_id")
    now = c.now_ns()
    try:
        with c.transaction() as s:
            visit = _lock_visit(c, s, visit_id)  # first the lock, then the look: a concurrent PUT waits here
            existing = s.get(Cart, visit_id)
            if existing is not None:
                if existing.payload != body.model_dump(mode="json"):  # kept: the first cart is the one settled
                    audit(
                        s,
                        now,
                        f"device:{device.id}",
                        "cart.repeat_differs",
                        "visit",
                        visit_id,
                        payload=body.model_dump(mode="json"),
                    )
                return existing.response
            if visit is None:
                visit = Visit(
                    id=visit_id,
                    store_id=body.store_id,
                    account_id=None,
                    state="open",
                    flag_reason="no gate check-in for this visit: kept for staff, not charged",
                )
                s.add(visit)
                s.flush()  # the visit row before the rows that point at it
            elif visit.store_id != device.store_id:
                raise ForbiddenError(f"visit {visit_id} was opened in another store")
            if body.account_id is not None and visit.account_id is not None and body.account_id != visit.account_id:
                audit(s, now, f"device:{device.id}", "cart.account_mismatch", "visit", visit_id, edge=body.account_id)
            rows = [
                CartLine(
                    visit_id=visit_id,
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    confidence=line.confidence,
                    status=line.status,
                    edge_sku=line.sku,
                    edge_quantity=line.quantity,
                )
                for line in body.cart.lines
            ]
            s.add_all(rows)
            confirmed = {k: q for k, q in net_quantities(sm.chargeable(_views(rows))).items() if q}
            edge_receipt = {k: q for k, q in net_quantities((r.sku, r.quantity) for r in body.receipt).items() if q}
            if confirmed != edge_receipt:  # the lines are what we charge; a differing summary is worth a look
                audit(s, now, f"device:{device.id}", "cart.receipt_mismatch", "visit", visit_id, receipt=edge_receipt)
            new_state = sm.state_after_cart(visit.account_id is not None, _views(rows))
            sm.check_transition(visit.state, new_state)
            visit.state = new_state
            visit.closed_ns = body.closed_ns
            visit.cart_received_ns = now
            if new_state == "unmatched" and visit.flag_reason is None:
                visit.flag_reason = "no account for this visit: kept for staff, not charged"
            if new_state == "held":
                visit.review_deadline_ns = now + round(c.settings.review_deadline_s * 1e9)
            under_review = sum(1 for r in rows if r.status == "under_review")
            response: dict[str, Any] = {
                "visit_id": visit_id,
                "accepted": True,
                "state": new_state,
                "lines": len(rows),
                "under_review": under_review,
                "received_ns": now,
            }
            s.add(
                Cart(
                    visit_id=visit_id,
                    device_id=device.id,
                    payload=body.model_dump(mode="json"),
                    response=response,
                    received_ns=now,
                )
            )
            audit(s, now, f"device:{device.id}", "cart.received", "visit", visit_id, state=new_state, lines=len(rows))
        return response
    except IntegrityError:  # a concurrent PUT for the same visit committed first: repeat its answer
        with c.sessions() as s:
            cart = s.get(Cart, visit_id)
            if cart is None:
                raise
            return cart.response


def _catalogue(s: Session, store_id: str, skus: set[str]) -> tuple[dict[str, CatalogueItem], dict[str, MultiBuy]]:
    """Prices and promotions of the SKUs on one receipt (not the whole catalogue)."""
    catalogue = {
        p.sku: CatalogueItem(p.sku, p.name, from_cents(p.price_cents))
        for p in s.scalars(select(Product).where(Product.store_id == store_id, Product.sku.in_(skus)))
    }
    promotions = {
        p.sku: MultiBuy(p.sku, p.quantity, from_cents(p.price_cents))
        for p in s.scalars(select(Promotion).where(Promotion.store_id == store_id, Promotion.sku.in_(skus)))
    }
    return catalogue, promotions


def _build_receipt(c: Container, s: Session, visit: Visit, now: int) -> Receipt:
    store = s.get(Store, visit.store_id)
    assert store is not None
    assert visit.account_id is not None
    lines = list(s.scalars(select(CartLine).where(CartLine.visit_id == visit.id).order_by(CartLine.id)))
    quantities = net_quantities(sm.chargeable(_views(lines)))
    catalogue, promotions = _catalogue(s, visit.store_id, set(quantities))
    priced = price_receipt(quantities, catalogue, promotions, Decimal(store.tax_rate))
    receipt = Receipt(
        id=new_id("r"),
        visit_id=visit.id,
        account_id=visit.account_id,
        store_id=visit.store_id,
        currency=store.currency,
        lines=[
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_cents": to_cents(line.unit_price),
                "gross_cents": to_cents(line.gross),
                "discount_cents": to_cents(line.discount),
                "promotion": line.promotion,
                "promo_quantity": promotions[line.sku].quantity if line.promotion else None,
                "promo_cents": to_cents(promotions[line.sku].price) if line.promotion else None,
            }
            for line in priced.lines
        ],
        unpriced=[{"sku": sku, "quantity": q} for sku, q in priced.unpriced],
        subtotal_cents=to_cents(priced.subtotal),
        discount_cents=to_cents(priced.discount),
        tax_rate=str(priced.tax_rate),
        tax_cents=to_cents(priced.tax),
        total_cents=to_cents(priced.total),
        created_ns=now,
    )
    s.add(receipt)
    if priced.unpriced:
        audit(s, now, "system", "receipt.unpriced_skus", "visit", visit.id, skus=[u[0] for u in priced.unpriced])
    return receipt


def _queue_deliveries(c: Container, s: Session, receipt: Receipt, now: int) -> None:
    """The receipt goes out by every configured channel: `receipt.created` the first time (paid, or
    payment declined), `receipt.paid` when a declined visit is paid later (the channel's row is reused)."""
    existing = {d.channel: d for d in s.scalars(select(Delivery).where(Delivery.receipt_id == receipt.id))}
    channels = []
    if c.email is not None:
        channels.append("email")
    if c.webhook is not None:
        channels.append("webhook")
    for channel in channels:
        row = existing.get(channel)
        if row is None:
            s.add(Delivery(receipt_id=receipt.id, channel=channel, event="receipt.created", state="pending",
                           next_attempt_ns=now, created_ns=now))  # fmt: skip
        else:
            row.event, row.state, row.attempts, row.next_attempt_ns = "receipt.paid", "pending", 0, now
            row.last_error, row.sent_ns = None, None


def settle(c: Container, visit_id: str) -> str | None:
    """Price the visit and charge it once. Returns the visit's state afterwards (None: unknown visit)."""
    now = c.now_ns()
    with c.transaction() as s:
        visit = _lock_visit(c, s, visit_id)
        if visit is None:
            return None
        if visit.state != "charging":
            return visit.state
        receipt = s.scalars(select(Receipt).where(Receipt.visit_id == visit_id)).first()
        if receipt is None:
            receipt = _build_receipt(c, s, visit, now)
            s.flush()
        account = s.get(Account, visit.account_id)
        assert account is not None
        if receipt.total_cents == 0:
            visit.state = "settled"
            _queue_deliveries(c, s, receipt, now)
            audit(s, now, "system", "visit.settled", "visit", visit_id, total_cents=0)
            preauth_to_cancel = visit.preauth_ref
            payment = None
        else:
            preauth_to_cancel = None
            payment = s.scalars(select(Payment).where(Payment.visit_id == visit_id)).first()
            if payment is None:
                payment = Payment(
                    id=new_id("p"),
                    visit_id=visit_id,
                    account_id=account.id,
                    amount_cents=receipt.total_cents,
                    currency=receipt.currency,
                    state="pending",
                    attempt=1,
                    created_ns=now,
                    updated_ns=now,
                )
                s.add(payment)
            if payment.state in ("succeeded", "declined"):
                return visit.state
            if (
                payment.state == "charging"
                and payment.claimed_ns is not None
                and now - payment.claimed_ns < CHARGE_LEASE_NS
            ):
                return visit.state  # another worker is charging it right now
            payment.state, payment.claimed_ns, payment.updated_ns = "charging", now, now
            claim = (
                payment.id,
                f"{visit_id}-charge-{payment.attempt}",
                account.payment_token or "",
                payment.amount_cents,
            )
            preauth = (visit.preauth_ref, visit.preauth_cents)
            currency = receipt.currency
    if payment is None:
        if preauth_to_cancel:
            with contextlib.suppress(PaymentTimeoutError, PaymentError):  # an unused hold expires on its own
                c.gateway.cancel(preauth_to_cancel, f"{visit_id}-preauth-cancel")
        return "settled"

    payment_id, key, token, amount = claim
    result: PaymentResult | None = None
    error: str | None = None
    try:
        preauth_ref, preauth_cents = preauth
        if preauth_ref and payment.attempt == 1 and amount <= preauth_cents:
            result = c.gateway.capture(preauth_ref, amount, key + "-capture")
        else:
            if preauth_ref and payment.attempt == 1:
                with contextlib.suppress(PaymentError):
                    c.gateway.cancel(preauth_ref, f"{visit_id}-preauth-cancel")
            result = c.gateway.charge(token, amount, currency, key)
    except PaymentTimeoutError as e:
        error = f"timeout: {e}"
    except PaymentError as e:
        return _record_processor_error(c, visit_id, payment_id, str(e))
    return _record_outcome(c, visit_id, payment_id, result, error)


def _record_processor_error(c: Container, visit_id: str, payment_id: str, error: str) -> str:
    """The processor refused the request itself (an expired hold, a bad reference): the next attempt
    charges the payment method afresh under a new key; after MAX_ATTEMPTS it waits for staff."""
    now = c.now_ns()
    with c.transaction() as s:
        visit, payment = _lock_visit_and_payment(c, s, visit_id, payment_id)
        if payment.state != "charging":
            return visit.state
        payment.error, payment.claimed_ns, payment.updated_ns = f"processor error: {error}", None, now
        if payment.attempt >= MAX_ATTEMPTS:
            payment.state = "error"
            visit.flag_reason = f"payment failed {payment.attempt} times ({error}): needs staff"
        else:
            payment.state, payment.attempt = "pending", payment.attempt + 1
        audit(s, now, "system", "payment.error", "visit", visit_id, error=error, attempt=payment.attempt)
        return visit.state


def _record_outcome(
    c: Container, visit_id: str, payment_id: str, result: PaymentResult | None, error: str | None
) -> str:
    now = c.now_ns()
    with c.transaction() as s:
        visit, payment = _lock_visit_and_payment(c, s, visit_id, payment_id)
        if payment.state != "charging" or visit.state != "charging":
            return visit.state  # our lease ran out and another worker recorded the (same, idempotent) outcome
        account = s.get(Account, payment.account_id)
        assert account is not None
        payment.updated_ns = now
        if result is None:
            payment.state, payment.error, payment.claimed_ns = "unknown", error, None
            audit(s, now, "system", "payment.unknown", "visit", visit_id, error=error)
            return visit.state
        receipt = s.scalars(select(Receipt).where(Receipt.visit_id == visit_id)).one()
        payment.processor_ref = result.ref
        if result.status == "succeeded":
            payment.state, payment.error = "succeeded", None
            sm.check_transition(visit.state, "settled")
            visit.state = "settled"
            if visit.flag_reason and visit.flag_reason.startswith("payment failed"):
                visit.flag_reason = None
            _queue_deliveries(c, s, receipt, now)
            if account.standing == "flagged":
                failed = s.scalar(
                    select(func.count())
                    .select_from(Visit)
                    .where(Visit.account_id == account.id, Visit.state == "payment_failed")
                )
                if not failed:
                    account.standing, account.flag_reason = "good", None
            audit(
                s,
                now,
                "system",
                "payment.succeeded",
                "visit",
                visit_id,
                amount_cents=result.amount_cents,
                ref=result.ref,
            )
        else:
            payment.state, payment.error = "declined", result.message
            sm.check_transition(visit.state, "payment_failed")
            visit.state = "payment_failed"
            account.standing = "flagged"
            account.flag_reason = (
                f"The payment of {from_cents(payment.amount_cents)} {payment.currency} for visit {visit_id} was "
                "declined: update your payment method in the app and pay that visit to enter again."
            )
            _queue_deliveries(c, s, receipt, now)
            audit(s, now, "system", "payment.declined", "visit", visit_id, message=result.message)
        return visit.state


def retry_payment(c: Container, account: Account, visit_id: str) -> str:
    """The shopper pays a declined visit again (a new attempt, so a new idempotency key)."""
    now = c.now_ns()
    with c.transaction() as s:
        visit = _lock_visit(c, s, visit_id)
        if visit is None or visit.account_id != account.id:
            raise NotFoundError(f"you have no visit {visit_id}")
        if visit.state != "payment_failed":
            raise ConflictError(f"visit {visit_id} is {visit.state}: there is no failed payment to retry")
        payment = s.scalars(select(Payment).where(Payment.visit_id == visit_id)).one()
        payment.attempt += 1
        payment.state, payment.claimed_ns, payment.updated_ns = "pending", None, now
        sm.check_transition(visit.state, "charging")
        visit.state = "charging"
        audit(s, now, f"shopper:{account.id}", "payment.retry", "visit", visit_id, attempt=payment.attempt)
    return settle(c, visit_id) or "charging"


def decide_line(
    c: Container,
    staff: Staff,
    visit_id: str,
    line_id: str,
    action: sm.LineAction,
    sku: str | None,
    quantity: int | None,
    to_visit_id: str | None = None,
) -> tuple[CartLine, str]:
    """Confirm, void, change or reassign one line under review; returns the line and the visit's state.
    `reassign` moves the line to `to_visit_id` (another shopper of the same store): into that visit's
    cart while it is open or held, as an extra charge once it is settled."""
    now = c.now_ns()
    extra_id: str | None = None
    with c.transaction() as s:
        if action == "reassign":
            if to_visit_id is None:
                raise BadRequestError("reassign needs to_visit_id: the visit of the shopper who took the item")
            for vid in sorted({visit_id, to_visit_id}):  # one lock order, so two reassignments cannot deadlock
                _lock_visit(c, s, vid)
        visit = _lock_staff_visit(c, s, staff, visit_id)
        line = s.scalars(select(CartLine).where(CartLine.visit_id == visit_id, CartLine.line_id == line_id)).first()
        if line is None:
            raise NotFoundError(f"visit {visit_id} has no line {line_id}")
        if sku is not None and s.get(Product, (visit.store_id, sku)) is None:
            raise BadRequestError(f"SKU {sku} is not in store {visit.store_id}'s catalogue")
        try:
            decision = sm.decide_line(
                sm.LineView(line.line_id, line.sku, line.quantity, line.status), action, sku, quantity
            )
        except sm.DecisionError as e:
            raise ConflictError(str(e)) from e
        detail: dict[str, Any] = {}
        if action == "reassign":
            assert to_visit_id is not None
            extra_id = _move_line(s, staff, visit, line, decision, to_visit_id, now)
            detail = {"to_visit_id": to_visit_id, "extra_charge_id": extra_id}
        before = {"sku": line.sku, "quantity": line.quantity, "status": line.status}
        line.status, line.sku, line.quantity = decision.status, decision.sku, decision.quantity
        line.decided_by, line.decided_ns = staff.id, now
        audit(
            s, now, f"staff:{staff.id}", f"line.{action}", "visit", visit_id, line_id=line_id, before=before,
            after={"sku": line.sku, "quantity": line.quantity, "status": line.status}, **detail,
        )  # fmt: skip
        s.flush()
        pending = s.scalar(
            select(func.count())
            .select_from(CartLine)
            .where(CartLine.visit_id == visit_id, CartLine.status == "under_review")
        )
        if visit.state == "held" and not pending:
            visit.state = "charging"
        state = visit.state
    if state == "charging":
        state = settle(c, visit_id) or state
    if extra_id is not None:
        extra_charges.charge_extra(c, extra_id)
    return line, state


def _move_line(
    s: Session, staff: Staff, source: Visit, line: CartLine, decision: sm.LineDecision, to_visit_id: str, now: int
) -> str | None:
    """The reassigned line's units go to the other shopper's visit (locked by the caller): a confirmed
    line in its cart before it is charged, or an extra charge after. Returns the extra charge's id."""
    target = s.get(Visit, to_visit_id)
    if target is None:
        raise NotFoundError(f"no visit {to_visit_id}")
    check_staff_store(staff, target)
    if target.store_id != source.store_id:
        raise BadRequestError(f"visit {to_visit_id} is in store {target.store_id}, not {source.store_id}")
    try:
        where = sm.check_reassign_target(source.id, target.id, target.state, target.account_id is not None)
    except sm.DecisionError as e:
        raise ConflictError(str(e)) from e
    reason = f"line {line.line_id} of visit {source.id}, reassigned by {staff.id}"
    if where == "extra_charge":
        return extra_charges.add_extra_charge(s, target, decision.sku, decision.quantity, reason, staff.id, now).id
    s.add(
        CartLine(
            visit_id=target.id,
            line_id=new_id("moved"),
            sku=decision.sku,
            quantity=decision.quantity,
            confidence=line.confidence,
            status="confirmed",
            edge_sku=line.edge_sku,
            edge_quantity=line.edge_quantity,
            decided_by=staff.id,
            decided_ns=now,
        )
    )
    audit(s, now, f"staff:{staff.id}", "line.reassigned_in", "visit", target.id,
          from_visit_id=source.id, line_id=line.line_id, sku=decision.sku, quantity=decision.quantity)  # fmt: skip
    return None


def release_expired_holds(c: Container) -> list[str]:
    """Visits held past the review deadline: their undecided lines are dropped (never charged)."""
    now = c.now_ns()
    released: list[str] = []
    with c.sessions() as s:
        due = list(s.scalars(select(Visit.id).where(Visit.state == "held", Visit.review_deadline_ns <= now)))
    for visit_id in due:
        with c.transaction() as s:
            visit = _lock_visit(c, s, visit_id)
            if visit is None or visit.state != "held":
                continue
            lines = list(s.scalars(select(CartLine).where(CartLine.visit_id == visit_id)))
            dropped = set(sm.drop_after_deadline(_views(lines)))
            for line in lines:
                if line.line_id in dropped:
                    line.status, line.decided_by, line.decided_ns = "dropped", "deadline", now
            visit.state = "charging"
            audit(s, now, "system", "review.deadline", "visit", visit_id, dropped=sorted(dropped))
        released.append(visit_id)
        settle(c, visit_id)
    return released


def retry_unsettled(c: Container) -> list[str]:
    """Visits left in `charging` (a timeout, a crash between steps): try them again."""
    now = c.now_ns()
    with c.sessions() as s:
        ids = list(s.scalars(select(Visit.id).where(Visit.state == "charging")))
        stale = [
            v
            for v in ids
            if (p := s.scalars(select(Payment).where(Payment.visit_id == v)).first()) is None
            or p.state in ("pending", "unknown")
            or (p.state == "charging" and (p.claimed_ns or 0) < now - CHARGE_LEASE_NS)
        ]
    for visit_id in stale:
        settle(c, visit_id)
    return stale


def close_unmatched(c: Container, staff: Staff, visit_id: str, note: str) -> str:
    """Staff close a visit that arrived without a check-in, after looking at it; nothing is charged."""
    now = c.now_ns()
    with c.transaction() as s:
        visit = _lock_staff_visit(c, s, staff, visit_id)
        try:
            sm.check_transition(visit.state, "closed")
        except sm.TransitionError as e:
            raise ConflictError(f"visit {visit_id} is {visit.state}: only unmatched visits are closed this way") from e
        visit.state = "closed"
        visit.flag_reason = f"{visit.flag_reason or ''}; closed by {staff.id}: {note}".lstrip("; ")
        audit(s, now, f"staff:{staff.id}", "visit.close", "visit", visit_id, note=note)
        return visit.state


def staff_retry_payment(c: Container, staff: Staff, visit_id: str) -> str:
    """A manager tries again a payment that stopped after repeated processor refusals (state `error`)."""
    now = c.now_ns()
    with c.transaction() as s:
        visit = _lock_staff_visit(c, s, staff, visit_id)
        payment = s.scalars(select(Payment).where(Payment.visit_id == visit_id)).first()
        if visit.state != "charging" or payment is None or payment.state != "error":
            state = payment.state if payment is not None else "none"
            raise ConflictError(f"visit {visit_id} is {visit.state} (payment {state}): nothing stopped to retry")
        payment.attempt += 1
        payment.state, payment.claimed_ns, payment.updated_ns = "pending", None, now
        audit(s, now, f"staff:{staff.id}", "payment.retry", "visit", visit_id, attempt=payment.attempt)
    return settle(c, visit_id) or "charging"
