"""Extra charges: units staff give to a shopper whose visit is already settled (a line under review in
another visit, reassigned to this shopper). Each is a payment of its own, priced as the receipt was
(its unit and promotion prices, the same tax rounding), charged once under the key `extra-<id>`."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.adapters.payments import PaymentError, PaymentResult, PaymentTimeoutError
from cloud_api.core.security import new_id
from cloud_api.db.models import Account, ExtraCharge, Receipt, Visit
from cloud_api.domain.pricing import added_amount, to_cents
from cloud_api.services.container import Container, audit
from cloud_api.services.disputes import add_catalogue_entries, kept_units, priced_as_charged
from cloud_api.services.errors import ConflictError


def add_extra_charge(
    s: Session, visit: Visit, sku: str, quantity: int, reason: str, staff_id: str, now: int
) -> ExtraCharge:
    """A pending extra charge on a settled visit, in the caller's transaction; `charge_extra` makes it."""
    receipt = s.scalars(select(Receipt).where(Receipt.visit_id == visit.id)).first()
    if receipt is None or visit.account_id is None:
        raise ConflictError(f"visit {visit.id} has no receipt to add to")
    if quantity <= 0:
        raise ConflictError("a put-back on a settled visit would be a credit: void it instead")
    priced, catalogue, promotions = priced_as_charged(receipt)
    quantities = kept_units(s, receipt, catalogue, promotions)  # the margin refunds are priced at too
    add_catalogue_entries(s, visit.store_id, {sku}, catalogue, promotions)
    if sku not in catalogue:
        raise ConflictError(f"SKU {sku} is not in store {visit.store_id}'s catalogue: it cannot be charged")
    amount = added_amount(quantities, sku, quantity, catalogue, promotions, priced.tax_rate)
    extra = ExtraCharge(
        id=new_id("x"),
        visit_id=visit.id,
        account_id=visit.account_id,
        sku=sku,
        name=catalogue[sku].name,
        quantity=quantity,
        amount_cents=to_cents(amount),
        currency=receipt.currency,
        state="pending",
        reason=reason,
        created_by=staff_id,
        created_ns=now,
        updated_ns=now,
    )
    s.add(extra)
    audit(s, now, f"staff:{staff_id}", "extra_charge.created", "visit", visit.id,
          extra_id=extra.id, sku=sku, quantity=quantity, amount_cents=extra.amount_cents, reason=reason)  # fmt: skip
    return extra


def charge_extra(c: Container, extra_id: str) -> str:
    """Charge one pending (or timed-out) extra charge; returns its state afterwards. A timeout leaves it
    `unknown` for the sweeper, which asks again under the same key, so the money moves once."""
    now = c.now_ns()
    with c.transaction() as s:
        claimed = s.execute(
            update(ExtraCharge)
            .where(ExtraCharge.id == extra_id, ExtraCharge.state.in_(("pending", "unknown")))
            .values(state="charging", updated_ns=now)
        ).rowcount  # type: ignore[attr-defined]
        extra = s.get(ExtraCharge, extra_id)
        assert extra is not None
        if not claimed:
            return extra.state
        account = s.get(Account, extra.account_id)
        assert account is not None
        token, amount, currency = account.payment_token or "", extra.amount_cents, extra.currency
    result: PaymentResult | None = None
    state, error = "unknown", None
    try:
        result = c.gateway.charge(token, amount, currency, f"extra-{extra_id}")
        state = "succeeded" if result.status == "succeeded" else "declined"
        error = None if result.status == "succeeded" else result.message
    except PaymentTimeoutError as e:
        error = f"timeout: {e}"
    except PaymentError as e:
        state, error = "error", f"processor error: {e}"
    done = c.now_ns()
    with c.transaction() as s:
        extra = s.get(ExtraCharge, extra_id)
        assert extra is not None
        extra.state, extra.error, extra.updated_ns = state, error, done
        extra.processor_ref = result.ref if result is not None else extra.processor_ref
        audit(s, done, "system", f"extra_charge.{state}", "visit", extra.visit_id, extra_id=extra_id, error=error)
    return state


def retry_extra_charges(c: Container) -> list[str]:
    """Extra charges never tried (a crash) or whose answer was lost: asked again under the same key."""
    with c.sessions() as s:
        due = list(s.scalars(select(ExtraCharge.id).where(ExtraCharge.state.in_(("pending", "unknown")))))
    for extra_id in due:
        charge_extra(c, extra_id)
    return due
