"""The edge's settlement payload (store_edge.live.worker._settlement_payload)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from store_edge.protocol.messages import CartUpdate, Id, TimeNs


class ReceiptLineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=32)
    quantity: int


class CartIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    store_id: Id
    visit_id: Id
    account_id: Id | None = None
    closed_ns: TimeNs | None = None
    receipt: list[ReceiptLineIn] = Field(default_factory=list, max_length=1000)
    cart: CartUpdate


class CartAccepted(BaseModel):
    visit_id: str
    accepted: bool
    state: str = Field(description="open | held | charging | settled | payment_failed | unmatched")
    lines: int
    under_review: int
    received_ns: int
