from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ScanIn(BaseModel):
    token: str = Field(min_length=1, max_length=512, description="the text of the scanned code")
    party_size: int = Field(default=1, ge=1, le=20, description="people entering on this one code")


class ScanOut(BaseModel):
    decision: Literal["open", "refuse"]
    visit_id: str | None
    account_id: str | None
    party_size: int
    reason: str | None = Field(
        description="why refused: malformed, forged, expired, replayed, unknown_account, account_flagged, "
        "no_payment_method, payment_declined, payment_unavailable"
    )
    message: str | None = Field(description="what the gate shows the shopper")


class EntryCodeOut(BaseModel):
    token: str
    expires_ns: int
    qr_svg_url: str = Field(description="POST here with format=svg or format=png for the image of a new code")
