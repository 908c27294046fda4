from __future__ import annotations

from pydantic import BaseModel, Field


class ShopperOut(BaseModel):
    account_id: str
    name: str
    email: str
    standing: str
    flag_reason: str | None
    has_payment_method: bool


class PaymentMethodIn(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="the processor's payment-method token")


class PaymentRetryOut(BaseModel):
    visit_id: str
    state: str
