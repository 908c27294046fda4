"""Tables. Money in integer cents, times in UTC nanoseconds, ids as short strings that fit the edge's Id."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {int: BigInteger, dict[str, Any]: JSON, list[Any]: JSON}


class Store(Base):
    __tablename__ = "stores"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate: Mapped[str] = mapped_column(String(16), default="0")  # Decimal as text, e.g. "0.0825"
    preauth_cents: Mapped[int] = mapped_column(default=0)  # 0: no pre-authorisation at entry
    floor_map: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Outline, gondolas, plates and gates in metres (services.seed.floor_map): the console's floor map."""
    created_ns: Mapped[int]


class Product(Base):
    __tablename__ = "products"
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int]


class Promotion(Base):
    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    sku: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int]
    price_cents: Mapped[int]
    __table_args__ = (UniqueConstraint("store_id", "sku"),)


class Gate(Base):
    __tablename__ = "gates"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)


class Device(Base):
    """An edge worker or a gate controller; its API key is stored hashed and works for its store only."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "edge" | "gate"
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_ns: Mapped[int]


class Account(Base):
    """A shopper. `payment_token` is the processor's token for a payment method, never card data."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    payment_token: Mapped[str | None] = mapped_column(String(200))
    standing: Mapped[str] = mapped_column(String(16), default="good")  # "good" | "flagged" | "closed"
    flag_reason: Mapped[str | None] = mapped_column(Text)
    created_ns: Mapped[int]


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # "reviewer" | "manager" | "admin"
    store_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"))  # None: every store (admin)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)  # console login (or the staff id)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id; None: no console login
    created_ns: Mapped[int]


class StaffSession(Base):
    """A console login: the cookie holds a random token, only its SHA-256 is stored (like API keys), so
    logging out or deleting the row ends the session at once. `csrf_token` goes into every form."""

    __tablename__ = "staff_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_ns: Mapped[int]
    expires_ns: Mapped[int]


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    gate_id: Mapped[str | None] = mapped_column(String(64))
    party_size: Mapped[int] = mapped_column(default=1)
    entry_nonce: Mapped[str | None] = mapped_column(String(64), unique=True)  # single use of entry codes
    state: Mapped[str] = mapped_column(String(16), index=True)
    flag_reason: Mapped[str | None] = mapped_column(Text)
    opened_ns: Mapped[int | None]
    closed_ns: Mapped[int | None]
    cart_received_ns: Mapped[int | None]
    review_deadline_ns: Mapped[int | None]
    preauth_ref: Mapped[str | None] = mapped_column(String(100))
    preauth_cents: Mapped[int] = mapped_column(default=0)


class Cart(Base):
    """The edge's cart as received, once per visit; `response` is the answer repeated to retries."""

    __tablename__ = "carts"
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    response: Mapped[dict[str, Any]]
    received_ns: Mapped[int]


class CartLine(Base):
    __tablename__ = "cart_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), index=True)
    line_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int]
    confidence: Mapped[float]
    status: Mapped[str] = mapped_column(String(16))  # confirmed | under_review | voided | dropped | reassigned
    edge_sku: Mapped[str] = mapped_column(String(32))
    edge_quantity: Mapped[int]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_ns: Mapped[int | None]
    __table_args__ = (UniqueConstraint("visit_id", "line_id"),)


class Receipt(Base):
    __tablename__ = "receipts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[Any]]  # [{sku, name, quantity, unit_cents, gross_cents, discount_cents, promotion}]
    unpriced: Mapped[list[Any]]
    subtotal_cents: Mapped[int]
    discount_cents: Mapped[int]
    tax_rate: Mapped[str] = mapped_column(String(16))
    tax_cents: Mapped[int]
    total_cents: Mapped[int]
    refunded_cents: Mapped[int] = mapped_column(default=0)
    created_ns: Mapped[int]


class Payment(Base):
    """At most one per visit (unique visit_id). States: pending, charging, unknown (timed out: retried
    with the same idempotency key), succeeded, declined."""

    __tablename__ = "payments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(default=1)
    claimed_ns: Mapped[int | None]
    processor_ref: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    created_ns: Mapped[int]
    updated_ns: Mapped[int]


class Dispute(Base):
    __tablename__ = "disputes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipts.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    sku: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)
    amount_cents: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))  # pending_staff | refunded | rejected | refund_failed
    route_reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    created_ns: Mapped[int]
    decided_ns: Mapped[int | None]


class Refund(Base):
    __tablename__ = "refunds"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    dispute_id: Mapped[str] = mapped_column(ForeignKey("disputes.id"), unique=True)
    amount_cents: Mapped[int]
    processor_ref: Mapped[str | None] = mapped_column(String(100))
    created_ns: Mapped[int]


class ExtraCharge(Base):
    """Units staff added to a visit after it was settled (a line reassigned to this shopper): charged
    as a payment of its own under the key `extra-<id>`. States: pending, charging, unknown (timed out:
    retried with the same key), succeeded, declined, error."""

    __tablename__ = "extra_charges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    processor_ref: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    created_ns: Mapped[int]
    updated_ns: Mapped[int]


class Delivery(Base):
    """A receipt to send by one channel: its latest event (`receipt.created`, then `receipt.paid` when
    a declined visit is paid later); retried with backoff until sent or out of attempts."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # "email" | "webhook"
    event: Mapped[str] = mapped_column(String(32), server_default="receipt.created")  # or "receipt.paid"
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_ns: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_ns: Mapped[int | None]
    created_ns: Mapped[int]
    __table_args__ = (UniqueConstraint("receipt_id", "channel"),)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts_ns: Mapped[int] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80))  # "device:<id>", "staff:<id>", "shopper:<id>", "system"
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    __table_args__ = (Index("ix_audit_object", "object_type", "object_id"),)


class RateLimitBucket(Base):
    """A token bucket of cloud_api/core/ratelimit.py, shared by every server process on this database.
    `name` is the limit with its settings (e.g. "auth/20/10"), `key` the client address or the gate
    device's key hash. A key without a row has a full bucket; rows back to full are pruned."""

    __tablename__ = "rate_limit_buckets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_s: Mapped[float] = mapped_column(Float)  # UTC seconds (the app's clock) of the last take
