from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from cloud_api.api.deps import ContainerDep, SessionDep, ShopperDep
from cloud_api.api.errors import ERRORS
from cloud_api.db.models import Account, Dispute, Receipt, Visit
from cloud_api.domain.pricing import from_cents
from cloud_api.schemas.dispute import DisputeIn, DisputeOut
from cloud_api.schemas.gate import EntryCodeOut
from cloud_api.schemas.receipt import ReceiptOut, VisitOut
from cloud_api.schemas.shopper import PaymentMethodIn, PaymentRetryOut, ShopperOut
from cloud_api.services import checkin, disputes, receipts, settlement
from cloud_api.services.container import audit
from cloud_api.services.errors import NotFoundError

router = APIRouter(prefix="/v1/shoppers/me", tags=["shoppers"])

IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, "image/svg+xml": {}, "image/png": {}},
        "description": "the code as JSON, or as a QR image (the token also in the X-Entry-Code header)",
    }
}


def _shopper_out(a: Account) -> ShopperOut:
    return ShopperOut(
        account_id=a.id,
        name=a.name,
        email=a.email,
        standing=a.standing,
        flag_reason=a.flag_reason,
        has_payment_method=bool(a.payment_token),
    )


def dispute_out(d: Dispute) -> DisputeOut:
    return DisputeOut(
        dispute_id=d.id,
        receipt_id=d.receipt_id,
        sku=d.sku,
        quantity=d.quantity,
        amount=from_cents(d.amount_cents),
        state=d.state,
        route_reason=d.route_reason,
        created_ns=d.created_ns,
    )


@router.get("", responses=ERRORS)
def me(account: ShopperDep) -> ShopperOut:
    """The shopper's account: standing (good, or flagged with the reason) and whether a payment method is set."""
    return _shopper_out(account)


@router.put("/payment-method", responses=ERRORS)
def set_payment_method(c: ContainerDep, account: ShopperDep, body: PaymentMethodIn) -> ShopperOut:
    """Store the processor's token for a payment method (never card numbers)."""
    with c.transaction() as s:
        a = s.get(Account, account.id)
        assert a is not None
        a.payment_token = body.token
        audit(s, c.now_ns(), f"shopper:{a.id}", "account.payment_method", "account", a.id)
    return _shopper_out(a)


@router.post("/entry-codes", responses=ERRORS | IMAGE_RESPONSES, response_model=EntryCodeOut)
def entry_code(
    c: ContainerDep, account: ShopperDep, format: Literal["json", "svg", "png"] = Query(default="json")
) -> Response | EntryCodeOut:
    """A fresh single-use entry code, valid about 30 seconds, as text or a QR image."""
    code = checkin.issue_entry_code(c, account)
    headers = {"X-Entry-Code": code.token, "X-Expires-Ns": str(code.expires_ns), "Cache-Control": "no-store"}
    if format == "svg":
        return Response(checkin.qr_svg(code.token), media_type="image/svg+xml", headers=headers)
    if format == "png":
        return Response(checkin.qr_png(code.token), media_type="image/png", headers=headers)
    return EntryCodeOut(
        token=code.token, expires_ns=code.expires_ns, qr_svg_url="/v1/shoppers/me/entry-codes?format=svg"
    )


@router.get("/visits", responses=ERRORS)
def my_visits(s: SessionDep, account: ShopperDep, limit: int = Query(default=50, ge=1, le=500)) -> list[VisitOut]:
    """The shopper's visits, newest first, with their state and receipt id."""
    rows = s.execute(
        select(Visit, Receipt.id)
        .outerjoin(Receipt, Receipt.visit_id == Visit.id)
        .where(Visit.account_id == account.id)
        .order_by(Visit.opened_ns.desc())
        .limit(limit)
    ).all()
    return [
        VisitOut(
            visit_id=v.id,
            store_id=v.store_id,
            state=v.state,
            party_size=v.party_size,
            opened_ns=v.opened_ns,
            closed_ns=v.closed_ns,
            receipt_id=rid,
        )
        for v, rid in rows
    ]


@router.post("/visits/{visit_id}/payment", responses=ERRORS)
def pay_failed_visit(c: ContainerDep, account: ShopperDep, visit_id: str) -> PaymentRetryOut:
    """Pay a visit whose payment was declined, with the current payment method; success lifts the flag."""
    state = settlement.retry_payment(c, account, visit_id)
    receipts.deliver_pending(c, visit_id)
    return PaymentRetryOut(visit_id=visit_id, state=state)


@router.get("/receipts", responses=ERRORS)
def my_receipts(
    c: ContainerDep, s: SessionDep, account: ShopperDep, limit: int = Query(default=50, ge=1, le=500)
) -> list[ReceiptOut]:
    """The shopper's receipts, newest first."""
    rows = s.scalars(
        select(Receipt).where(Receipt.account_id == account.id).order_by(Receipt.created_ns.desc()).limit(limit)
    )
    return [receipts.receipt_out(c, s, r) for r in rows]


@router.get("/receipts/{receipt_id}", responses=ERRORS)
def my_receipt(c: ContainerDep, s: SessionDep, account: ShopperDep, receipt_id: str) -> ReceiptOut:
    """One of the shopper's receipts; another shopper's receipt is a 404."""
    receipt = s.get(Receipt, receipt_id)
    if receipt is None or receipt.account_id != account.id:
        raise NotFoundError(f"you have no receipt {receipt_id}")
    return receipts.receipt_out(c, s, receipt)


@router.post("/receipts/{receipt_id}/disputes", status_code=201, responses=ERRORS)
def open_dispute(c: ContainerDep, account: ShopperDep, receipt_id: str, body: DisputeIn) -> DisputeOut:
    """Contest units of one SKU: up to the automatic limit they are refunded at once, else staff decide."""
    return dispute_out(disputes.open_dispute(c, account, receipt_id, body.sku, body.quantity, body.reason))


@router.get("/disputes", responses=ERRORS)
def my_disputes(s: SessionDep, account: ShopperDep) -> list[DisputeOut]:
    """The shopper's disputes and their state."""
    rows = s.scalars(select(Dispute).where(Dispute.account_id == account.id).order_by(Dispute.created_ns.desc()))
    return [dispute_out(d) for d in rows]
