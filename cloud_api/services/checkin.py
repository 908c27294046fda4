"""Check-in: entry codes for shoppers and the gate's open/refuse decision."""

from __future__ import annotations

import io
from dataclasses import dataclass

import segno
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api.adapters.payments import PaymentError, PaymentTimeoutError
from cloud_api.core.security import new_id
from cloud_api.db.models import Account, Device, Gate, Store, Visit
from cloud_api.domain import entry_tokens
from cloud_api.domain.entry_tokens import EntryTokenError
from cloud_api.services.container import Container, audit
from cloud_api.services.errors import ForbiddenError, NotFoundError


@dataclass(frozen=True)
class EntryCode:
    token: str
    expires_ns: int


@dataclass(frozen=True)
class GateAnswer:
    decision: str  # "open" | "refuse"
    visit_id: str | None
    account_id: str | None
    party_size: int
    reason: str | None
    message: str | None


def issue_entry_code(c: Container, account: Account) -> EntryCode:
    token, claims = entry_tokens.issue(c.entry_key, account.id, c.now_ns(), c.settings.entry_code_ttl_s)
    return EntryCode(token, claims.expires_ns)


def qr_svg(token: str) -> bytes:
    out = io.BytesIO()
    segno.make(token, error="m", micro=False).save(out, kind="svg", scale=8, border=4)
    return out.getvalue()


def qr_png(token: str) -> bytes:
    out = io.BytesIO()
    segno.make(token, error="m", micro=False).save(out, kind="png", scale=8, border=4)
    return out.getvalue()


@dataclass(frozen=True)
class GateInfo:
    id: str
    store_id: str
    preauth_cents: int
    currency: str


def _gate(c: Container, s: Session, gate_id: str) -> GateInfo | None:
    """Gates and their store's entry settings, cached in memory for 30 s (they are on every scan's path)."""
    info: GateInfo | None = c.cache.get("gate:" + gate_id)
    if info is None:
        gate = s.get(Gate, gate_id)
        store = s.get(Store, gate.store_id) if gate is not None else None
        if gate is None or store is None:
            return None
        info = GateInfo(gate.id, gate.store_id, store.preauth_cents, store.currency)
        c.cache.put("gate:" + gate_id, info)
    return info


class _RefusedError(Exception):
    def __init__(self, reason: str, message: str, account_id: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.account_id = reason, message, account_id


REPLAYED = "This code was already used: show a fresh code from the app."


def scan(c: Container, device: Device, gate_id: str, token: str, party_size: int) -> GateAnswer:
    """Open a visit for a genuine, fresh, unused code of an account in good standing; refuse otherwise.

    Single use: the code's nonce is stored on the visit under a unique constraint, so of two scans of
    one code (even at the same instant on two gates) exactly one commits."""
    if device.kind != "gate":  # an edge worker's key (also in the store) must not open the gates
        raise ForbiddenError(f"device {device.id} is a {device.kind}: only a gate controller posts scans")
    now = c.now_ns()
    account_id: str | None = None
    try:
        with c.transaction() as s:
            gate = _gate(c, s, gate_id)
            if gate is None:
                raise NotFoundError(f"gate {gate_id} is not registered: register it with `cloud-api seed`")
            if gate.store_id != device.store_id:
                raise ForbiddenError(
                    f"this device key belongs to store {device.store_id}, not to gate {gate_id}'s store"
                )
            try:
                claims = entry_tokens.verify(c.entry_key, token, now)
            except EntryTokenError as e:
                raise _RefusedError(e.reason, e.message) from e
            account = s.get(Account, claims.account_id)
            if account is None or account.standing == "closed":
                raise _RefusedError("unknown_account", "This account is not active: contact support.")
            account_id = account.id
            if account.standing == "flagged":
                raise _RefusedError(
                    "account_flagged", account.flag_reason or "Settle your last visit in the app.", account.id
                )
            if not account.payment_token:
                raise _RefusedError("no_payment_method", "Add a payment method in the app before entering.", account.id)
            visit = Visit(
                id=new_id("v"),
                store_id=gate.store_id,
                account_id=account.id,
                gate_id=gate_id,
                party_size=party_size,
                entry_nonce=claims.nonce,
                state="open",
                opened_ns=now,
            )
            s.add(visit)
            s.flush()  # the unique nonce: a replayed code fails here, before any payment call
            if gate.preauth_cents > 0:
                try:
                    result = c.gateway.authorize(
                        account.payment_token, gate.preauth_cents, gate.currency, f"{visit.id}-preauth"
                    )
                except (PaymentTimeoutError, PaymentError) as e:
                    raise _RefusedError(
                        "payment_unavailable", "Payment check failed: try again in a moment.", account.id
                    ) from e
                if result.status != "authorized":
                    raise _RefusedError(
                        "payment_declined", "Your payment method was declined: update it in the app.", account.id
                    )
                visit.preauth_ref, visit.preauth_cents = result.ref, gate.preauth_cents
            audit(s, now, f"device:{device.id}", "gate.open", "visit", visit.id, gate_id=gate_id, party_size=party_size)
        return GateAnswer("open", visit.id, account.id, party_size, None, None)
    except _RefusedError as r:
        refusal = r
    except IntegrityError:
        refusal = _RefusedError("replayed", REPLAYED, account_id)
    with c.transaction() as s:
        audit(
            s,
            now,
            f"device:{device.id}",
            "gate.refuse",
            "gate",
            gate_id,
            reason=refusal.reason,
            account_id=refusal.account_id,
        )
    return GateAnswer("refuse", None, refusal.account_id, party_size, refusal.reason, refusal.message)
