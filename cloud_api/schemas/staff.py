from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from store_edge.protocol.messages import ReviewTicket


class LineOut(BaseModel):
    line_id: str
    sku: str
    quantity: int
    confidence: float
    status: str
    edge_sku: str
    edge_quantity: int
    decided_by: str | None
    decided_ns: int | None


class StaffVisitOut(BaseModel):
    visit_id: str
    store_id: str
    account_id: str | None
    state: str
    flag_reason: str | None
    review_deadline_ns: int | None
    lines: list[LineOut]
    tickets: list[ReviewTicket] = Field(
        default_factory=list, description="the edge's review tickets of this visit's lines, with their evidence"
    )


class LineDecisionIn(BaseModel):
    action: Literal["confirm", "void", "change", "reassign"]
    sku: str | None = Field(default=None, min_length=1, max_length=32)
    quantity: int | None = Field(default=None, ge=-1000, le=1000)
    to_visit_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="reassign: the visit of the shopper who took it (a line in their cart, or an extra charge "
        "once that visit is settled)",
    )


class LineDecisionOut(BaseModel):
    line: LineOut
    visit_state: str


class AuditOut(BaseModel):
    ts_ns: int
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


class SweepOut(BaseModel):
    released_holds: list[str]
    retried_payments: list[str]
    retried_refunds: list[str]
    retried_extra_charges: list[str] = Field(default_factory=list)
    deliveries_sent: int


class DeviceIn(BaseModel):
    store_id: str = Field(min_length=1, max_length=64)
    kind: Literal["edge", "gate"]
    device_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DeviceOut(BaseModel):
    device_id: str
    store_id: str
    kind: str
    active: bool
    api_key: str | None = Field(default=None, description="shown once, when the device is created; stored hashed")


class CloseVisitIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="what staff found (e.g. a restocking run)")


class VisitStateOut(BaseModel):
    visit_id: str
    state: str
