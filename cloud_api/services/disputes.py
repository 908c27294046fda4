"""Disputes: the shopper contests units on a receipt; small ones are refunded at once, the rest go to staff."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.adapters.payments import PaymentError, PaymentTimeoutError
from cloud_api.core.security import new_id
from cloud_api.db.models import Account, Dispute, ExtraCharge, Payment, Product, Promotion, Receipt, Refund, Staff
from cloud_api.domain import disputes as rules
from cloud_api.domain.pricing import CatalogueItem, MultiBuy, PricedLine, PricedReceipt, from_cents, to_cents
from cloud_api.services.container import Container, audit
from cloud_api.services.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError

THIRTY_DAYS_NS = 30 * 24 * 3600 * 10**9
REFUND_STATES = ("refunding", "refund_pending", "refunded", "refund_failed")  # approved: the money goes back
EXTRA_STATES = ("pending", "charging", "unknown", "succeeded")  # extra charges made or being made


def kept_units(
    s: Session, receipt: Receipt, catalogue: dict[str, CatalogueItem], promotions: dict[str, MultiBuy], not_id: str = ""
) -> dict[str, int]:
    """The units a settled visit keeps: its receipt's, plus its extra charges' (not declined), less units
    refunded or being refunded (leaving out dispute `not_id`). Extra charges and refunds are priced at
    the margin of these, so the money a visit keeps is the price of what the shopper keeps. Fills in
    `catalogue` and `promotions` for extra-charged SKUs that are not on the receipt (today's prices)."""
    units = {line["sku"]: line["quantity"] for line in receipt.lines}
    for extra in s.scalars(
        select(ExtraCharge).where(ExtraCharge.visit_id == receipt.visit_id, ExtraCharge.state.in_(EXTRA_STATES))
    ):
        units[extra.sku] = units.get(extra.sku, 0) + extra.quantity
    for dispute in s.scalars(
        select(Dispute).where(Dispute.receipt_id == receipt.id, Dispute.state.in_(REFUND_STATES), Dispute.id != not_id)
    ):
        units[dispute.sku] = units.get(dispute.sku, 0) - dispute.quantity
    add_catalogue_entries(s, receipt.store_id, set(units), catalogue, promotions)
    return units


def add_catalogue_entries(
    s: Session, store_id: str, skus: set[str], catalogue: dict[str, CatalogueItem], promotions: dict[str, MultiBuy]
) -> None:
    """Today's price and promotion of SKUs the receipt did not price (the receipt keeps only promotions it
    applied: added units may complete one)."""
    for sku in skus - set(catalogue):
        product = s.get(Product, (store_id, sku))
        if product is not None:
            catalogue[sku] = CatalogueItem(sku, product.name, from_cents(product.price_cents))
    for sku in skus - set(promotions):
        promo = s.scalars(select(Promotion).where(Promotion.store_id == store_id, Promotion.sku == sku)).first()
        if promo is not None:
            promotions[sku] = MultiBuy(sku, promo.quantity, from_cents(promo.price_cents))


def _disputed_units(s: Session, receipt_id: str, sku: str, states: tuple[str, ...], not_id: str = "") -> int:
    """Units of `sku` on a receipt in disputes in these states (leaving out dispute `not_id`)."""
    units = s.scalar(
        select(func.coalesce(func.sum(Dispute.quantity), 0)).where(
            Dispute.receipt_id == receipt_id, Dispute.sku == sku, Dispute.state.in_(states), Dispute.id != not_id
        )
    )
    return int(units or 0)


def _refund_value(s: Session, receipt: Receipt, sku: str, quantity: int, not_id: str = "") -> Decimal:
    """The units' worth at the margin of what the visit keeps (rules.refund_amount)."""
    priced, catalogue, promotions = priced_as_charged(receipt)
    disputed = _disputed_units(s, receipt.id, sku, ("pending_staff", *REFUND_STATES), not_id)
    kept = kept_units(s, receipt, catalogue, promotions, not_id)
    return rules.refund_amount(priced, sku, quantity, disputed, catalogue, promotions, kept=kept)


def priced_as_charged(receipt: Receipt) -> tuple[PricedReceipt, dict[str, CatalogueItem], dict[str, MultiBuy]]:
    """The receipt as it was priced: its own unit and promotion prices, not today's catalogue."""
    catalogue: dict[str, CatalogueItem] = {}
    promotions: dict[str, MultiBuy] = {}
    lines = []
    for line in receipt.lines:
        price = from_cents(line["unit_cents"])
        catalogue[line["sku"]] = CatalogueItem(line["sku"], line["name"], price)
        if line.get("promo_quantity"):
            promotions[line["sku"]] = MultiBuy(line["sku"], line["promo_quantity"], from_cents(line["promo_cents"]))
        lines.append(
            PricedLine(
                line["sku"],
                line["name"],
                line["quantity"],
                price,
                from_cents(line["gross_cents"]),
                from_cents(line["discount_cents"]),
                line["promotion"],
            )
        )
    priced = PricedReceipt(
        tuple(lines), (), from_cents(receipt.subtotal_cents), from_cents(receipt.discount_cents),
        Decimal(receipt.tax_rate), from_cents(receipt.tax_cents), from_cents(receipt.total_cents),
    )  # fmt: skip
    return priced, catalogue, promotions


def open_dispute(c: Container, account: Account, receipt_id: str, sku: str, quantity: int, reason: str) -> Dispute:
    now = c.now_ns()
    with c.transaction() as s:
        receipt = s.get(Receipt, receipt_id)
        if receipt is None or receipt.account_id != account.id:
            raise NotFoundError(f"you have no receipt {receipt_id}")
        if c.postgres:  # serialise disputes on one receipt
            s.execute(select(Receipt.id).where(Receipt.id == receipt_id).with_for_update())
        payment = s.scalars(select(Payment).where(Payment.visit_id == receipt.visit_id)).first()
        if payment is None or payment.state != "succeeded":
            raise ConflictError("this visit is not paid, so there is nothing to refund yet")
        try:
            amount = _refund_value(s, receipt, sku, quantity)
        except rules.DisputeError as e:
            raise BadRequestError(str(e)) from e
        recent = s.scalar(
            select(func.count())
            .select_from(Dispute)
            .where(
                Dispute.account_id == account.id,
                Dispute.state == "refunded",
                Dispute.decided_by == "auto",
                Dispute.created_ns >= now - THIRTY_DAYS_NS,
            )
        )
        route = rules.route_dispute(
            amount, c.settings.auto_refund_limit, int(recent or 0), c.settings.auto_refunds_per_30_days
        )
        dispute = Dispute(
            id=new_id("d"),
            receipt_id=receipt_id,
            account_id=account.id,
            sku=sku,
            quantity=quantity,
            reason=reason,
            amount_cents=to_cents(amount),
            state="pending_staff",
            route_reason=route.why,
            created_ns=now,
        )
        s.add(dispute)
        audit(
            s,
            now,
            f"shopper:{account.id}",
            "dispute.open",
            "receipt",
            receipt_id,
            sku=sku,
            quantity=quantity,
            route=route.route,
        )
    if route.route == "auto_refund":
        return _refund(c, dispute.id, "auto")
    return dispute


def _refund(c: Container, dispute_id: str, decided_by: str) -> Dispute:
    with c.sessions() as s:
        dispute = s.get(Dispute, dispute_id)
        assert dispute is not None
        receipt = s.get(Receipt, dispute.receipt_id)
        assert receipt is not None
        payment = s.scalars(select(Payment).where(Payment.visit_id == receipt.visit_id)).one()
    timed_out = False
    try:
        assert payment.processor_ref is not None
        result = c.gateway.refund(payment.processor_ref, dispute.amount_cents, f"refund-{dispute_id}")
        error = None
    except PaymentTimeoutError as e:
        result, error, timed_out = None, str(e), True
    except PaymentError as e:
        result, error = None, str(e)
    now = c.now_ns()
    with c.transaction() as s:
        q = select(Dispute).where(Dispute.id == dispute_id)
        dispute = s.scalars(q.with_for_update() if c.postgres else q).first()
        assert dispute is not None
        if dispute.state == "refunded":  # a concurrent retry recorded the same (idempotent) refund
            return dispute
        receipt = s.get(Receipt, dispute.receipt_id)
        assert receipt is not None
        dispute.decided_by, dispute.decided_ns = decided_by, now
        if result is None and timed_out:
            dispute.state = "refund_pending"  # retried by the sweeper with the same idempotency key
        elif result is None:
            dispute.state = "refund_failed"
            dispute.route_reason += f"; refund failed: {error}"
        else:
            dispute.state = "refunded"
            receipt.refunded_cents += dispute.amount_cents
            s.add(
                Refund(
                    id=new_id("rf"),
                    payment_id=payment.id,
                    dispute_id=dispute.id,
                    amount_cents=dispute.amount_cents,
                    processor_ref=result.ref,
                    created_ns=now,
                )
            )
        audit(
            s,
            now,
            "system" if decided_by == "auto" else f"staff:{decided_by}",
            f"dispute.{dispute.state}",
            "dispute",
            dispute_id,
            amount_cents=dispute.amount_cents,
            error=error,
        )
    return dispute


def retry_refunds(c: Container) -> list[str]:
    """Refunds whose processor call timed out: asked again under the same key, so made at most once."""
    with c.sessions() as s:
        pending = list(s.execute(select(Dispute.id, Dispute.decided_by).where(Dispute.state == "refund_pending")))
    for dispute_id, decided_by in pending:
        _refund(c, dispute_id, decided_by or "auto")
    return [dispute_id for dispute_id, _ in pending]


def _staff_dispute(s: Session, staff: Staff, dispute_id: str) -> Dispute:
    """The dispute a staff member acts on; refused if it does not exist or is another store's."""
    dispute = s.get(Dispute, dispute_id)
    if dispute is None:
        raise NotFoundError(f"no dispute {dispute_id}")
    receipt = s.get(Receipt, dispute.receipt_id)
    assert receipt is not None
    if staff.store_id is not None and staff.store_id != receipt.store_id:
        raise ForbiddenError(f"you work for store {staff.store_id}; this dispute is in store {receipt.store_id}")
    return dispute


def decide_dispute(c: Container, staff: Staff, dispute_id: str, approve: bool, note: str) -> Dispute:
    now = c.now_ns()
    with c.transaction() as s:
        dispute = _staff_dispute(s, staff, dispute_id)
        if dispute.state != "pending_staff":
            raise ConflictError(f"dispute {dispute_id} is {dispute.state}: already decided")
        if not approve:
            dispute.state, dispute.decided_by, dispute.decided_ns = "rejected", staff.id, now
            dispute.route_reason += f"; rejected: {note}" if note else "; rejected"
            audit(s, now, f"staff:{staff.id}", "dispute.rejected", "dispute", dispute_id, note=note)
            return dispute
        receipt = s.get(Receipt, dispute.receipt_id)
        assert receipt is not None
        if c.postgres:  # serialise with other disputes on this receipt (as open_dispute does)
            s.execute(select(Receipt.id).where(Receipt.id == receipt.id).with_for_update())
        # priced now, against the refunds made since it was opened: an earlier dispute rejected in between
        # no longer lowers this one's worth (a refund priced that way gave back more than the units cost)
        dispute.amount_cents = to_cents(_refund_value(s, receipt, dispute.sku, dispute.quantity, dispute.id))
        dispute.state = "refunding"
        audit(s, now, f"staff:{staff.id}", "dispute.approved", "dispute", dispute_id, note=note,
              amount_cents=dispute.amount_cents)  # fmt: skip
    return _refund(c, dispute_id, staff.id)


def staff_retry_refund(c: Container, staff: Staff, dispute_id: str) -> Dispute:
    """A manager asks again for a refund the processor refused (same idempotency key: made at most once)."""
    with c.sessions() as s:
        dispute = _staff_dispute(s, staff, dispute_id)
    if dispute.state != "refund_failed":
        raise ConflictError(f"dispute {dispute_id} is {dispute.state}: only a failed refund is retried")
    return _refund(c, dispute_id, staff.id)
