from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cloud_api.schemas.common import Money


class DisputeIn(BaseModel):
    sku: str = Field(min_length=1, max_length=32)
    quantity: int = Field(default=1, ge=1, le=1000)
    reason: str = Field(min_length=1, max_length=2000)


class DisputeOut(BaseModel):
    dispute_id: str
    receipt_id: str
    sku: str
    quantity: int
    amount: Money
    state: Literal["pending_staff", "refunding", "refund_pending", "refunded", "rejected", "refund_failed"]
    route_reason: str
    created_ns: int


class DisputeDecisionIn(BaseModel):
    approve: bool
    note: str = Field(default="", max_length=2000)
