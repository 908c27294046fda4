from __future__ import annotations

from pydantic import BaseModel, Field

from cloud_api.schemas.common import Money


class ReceiptLineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: Money
    gross: Money
    discount: Money
    promotion: str | None
    total: Money


class UnpricedLineOut(BaseModel):
    sku: str
    quantity: int


class ExtraChargeOut(BaseModel):
    sku: str
    name: str
    quantity: int
    amount: Money
    state: str = Field(description="pending | charging | unknown | succeeded | declined | error")
    reason: str


class ReceiptOut(BaseModel):
    receipt_id: str
    visit_id: str
    store_id: str
    store_name: str
    currency: str
    lines: list[ReceiptLineOut]
    unpriced: list[UnpricedLineOut]
    subtotal: Money
    discount: Money
    tax_rate: str
    tax: Money
    total: Money
    refunded: Money
    extra_charges: list[ExtraChargeOut] = Field(
        default_factory=list, description="units staff added after settlement, each charged on its own"
    )
    payment_state: str
    created_ns: int
    closed_ns: int | None
    web_url: str


class VisitOut(BaseModel):
    visit_id: str
    store_id: str
    state: str
    party_size: int
    opened_ns: int | None
    closed_ns: int | None
    receipt_id: str | None
