"""The edge's settlement payload (store_edge.live.worker._settlement_payload)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from store_edge.protocol.messages import CartUpdate, Id, ReviewTicket, TimeNs


class ReceiptLineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=32)
    quantity: int = Field(ge=-10_000, le=10_000)


MAX_UNITS = 10_000  # per line: far above any basket, far below what money columns hold


class CartIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    store_id: Id
    visit_id: Id
    account_id: Id | None = None
    closed_ns: TimeNs | None = Field(default=None, le=2**62)
    receipt: list[ReceiptLineIn] = Field(default_factory=list, max_length=1000)
    cart: CartUpdate
    tickets: list[ReviewTicket] = Field(
        default_factory=list,
        max_length=1000,
        description="the review tickets of the lines under review, with their evidence (weight traces, paths)",
    )

    @model_validator(mode="after")
    def _sane_quantities(self) -> CartIn:
        if len(self.cart.lines) > 1000:
            raise ValueError("a cart has at most 1000 lines")
        for line in self.cart.lines:
            if abs(line.quantity) > MAX_UNITS:
                raise ValueError(f"line {line.line_id}: quantity {line.quantity} is beyond {MAX_UNITS} units")
            if len(line.sku) > 32:
                raise ValueError(f"line {line.line_id}: SKU longer than 32 characters")
        return self


class CartAccepted(BaseModel):
    visit_id: str
    accepted: bool
    state: str = Field(description="open | held | charging | settled | payment_failed | unmatched")
    lines: int
    under_review: int
    received_ns: int
