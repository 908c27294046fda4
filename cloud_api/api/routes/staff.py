"""Staff API: lines under review, flagged visits, disputes, audit log. Role- and store-checked."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import select

from cloud_api.api.deps import AdminDep, ContainerDep, ManagerDep, ReviewerDep, SessionDep
from cloud_api.api.errors import ERRORS
from cloud_api.api.routes.shoppers import dispute_out
from cloud_api.db.models import AuditEntry, CartLine, Dispute, Receipt, Staff, Visit
from cloud_api.schemas.dispute import DisputeDecisionIn, DisputeOut
from cloud_api.schemas.staff import (
    AuditOut,
    CloseVisitIn,
    DeviceIn,
    DeviceOut,
    LineDecisionIn,
    LineDecisionOut,
    LineOut,
    StaffVisitOut,
    SweepOut,
    VisitStateOut,
)
from cloud_api.services import devices, disputes, review_queue, settlement
from cloud_api.services.errors import ForbiddenError, NotFoundError
from cloud_api.services.worker import run_due

router = APIRouter(prefix="/v1/staff", tags=["staff"])


def _line_out(line: CartLine) -> LineOut:
    return LineOut(
        line_id=line.line_id,
        sku=line.sku,
        quantity=line.quantity,
        confidence=line.confidence,
        status=line.status,
        edge_sku=line.edge_sku,
        edge_quantity=line.edge_quantity,
        decided_by=line.decided_by,
        decided_ns=line.decided_ns,
    )


def _visit_out(s: SessionDep, v: Visit) -> StaffVisitOut:
    lines = s.scalars(select(CartLine).where(CartLine.visit_id == v.id).order_by(CartLine.id))
    return StaffVisitOut(
        visit_id=v.id,
        store_id=v.store_id,
        account_id=v.account_id,
        state=v.state,
        flag_reason=v.flag_reason,
        review_deadline_ns=v.review_deadline_ns,
        lines=[_line_out(line) for line in lines],
        tickets=review_queue.visit_tickets(s, v.id),
    )


def _store_scope(staff: Staff, store_id: str | None) -> str | None:
    if staff.store_id is None:
        return store_id
    if store_id is not None and store_id != staff.store_id:
        raise ForbiddenError(f"you work for store {staff.store_id}, not {store_id}")
    return staff.store_id


@router.get("/visits", responses=ERRORS)
def visits_needing_staff(
    s: SessionDep,
    staff: ReviewerDep,
    store_id: str | None = None,
    state: str = Query(default="held", description="held (lines under review), unmatched or payment_failed"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[StaffVisitOut]:
    """Visits that need staff, by state: held (lines under review), unmatched, payment_failed. Reviewer or above."""
    scope = _store_scope(staff, store_id)
    q = select(Visit).where(Visit.state == state)
    if scope is not None:
        q = q.where(Visit.store_id == scope)
    return [_visit_out(s, v) for v in s.scalars(q.order_by(Visit.cart_received_ns).limit(limit))]


@router.get("/visits/{visit_id}", responses=ERRORS)
def visit_detail(s: SessionDep, staff: ReviewerDep, visit_id: str) -> StaffVisitOut:
    """One visit with every line as the edge sent it and as staff decided it. Reviewer or above."""
    v = s.get(Visit, visit_id)
    if v is None:
        raise NotFoundError(f"no visit {visit_id}")
    _store_scope(staff, v.store_id)
    return _visit_out(s, v)


@router.post("/visits/{visit_id}/lines/{line_id}/decision", responses=ERRORS)
def decide_line(
    c: ContainerDep, staff: ReviewerDep, visit_id: str, line_id: str, body: LineDecisionIn
) -> LineDecisionOut:
    """Confirm, void, change the SKU or quantity of, or reassign to another shopper's visit a line under
    review. When the last one is decided the visit is settled; a line reassigned to a settled visit is
    charged to it as an extra charge. Every decision is in the audit log."""
    line, state = settlement.decide_line(
        c, staff, visit_id, line_id, body.action, body.sku, body.quantity, body.to_visit_id
    )
    return LineDecisionOut(line=_line_out(line), visit_state=state)


@router.post("/visits/{visit_id}/close", responses=ERRORS)
def close_visit(c: ContainerDep, s: SessionDep, staff: ReviewerDep, visit_id: str, body: CloseVisitIn) -> StaffVisitOut:
    """Close an unmatched visit (a cart no gate check-in explains) with a note; it is never charged."""
    settlement.close_unmatched(c, staff, visit_id, body.note)
    s.rollback()  # end this request's read snapshot (SQLite WAL) to see the change
    v = s.get(Visit, visit_id)
    assert v is not None
    return _visit_out(s, v)


@router.post("/visits/{visit_id}/payment-retry", responses=ERRORS)
def retry_payment(c: ContainerDep, staff: ManagerDep, visit_id: str) -> VisitStateOut:
    """Try again a payment that stopped after repeated processor refusals (a new attempt). Manager or above."""
    return VisitStateOut(visit_id=visit_id, state=settlement.staff_retry_payment(c, staff, visit_id))


@router.get("/disputes", responses=ERRORS)
def disputes_list(
    s: SessionDep, staff: ManagerDep, state: str = "pending_staff", store_id: str | None = None
) -> list[DisputeOut]:
    """Disputes in a state (default: waiting for staff). Manager or above."""
    scope = _store_scope(staff, store_id)
    q = select(Dispute).join(Receipt, Receipt.id == Dispute.receipt_id).where(Dispute.state == state)
    if scope is not None:
        q = q.where(Receipt.store_id == scope)
    return [dispute_out(d) for d in s.scalars(q.order_by(Dispute.created_ns))]


@router.post("/disputes/{dispute_id}/decision", responses=ERRORS)
def decide_dispute(c: ContainerDep, staff: ManagerDep, dispute_id: str, body: DisputeDecisionIn) -> DisputeOut:
    """Approve (refund through the payment processor) or reject a dispute. Manager or above."""
    return dispute_out(disputes.decide_dispute(c, staff, dispute_id, body.approve, body.note))


@router.post("/disputes/{dispute_id}/refund-retry", responses=ERRORS)
def retry_refund(c: ContainerDep, staff: ManagerDep, dispute_id: str) -> DisputeOut:
    """Ask the processor again for a refund it refused (same idempotency key). Manager or above."""
    return dispute_out(disputes.staff_retry_refund(c, staff, dispute_id))


@router.get("/audit", responses=ERRORS)
def audit_log(
    s: SessionDep,
    staff: AdminDep,
    object_id: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AuditOut]:
    """The audit log, newest first, optionally for one object. Admin."""
    q = select(AuditEntry)
    if object_id is not None:
        q = q.where(AuditEntry.object_id == object_id)
    rows = s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit))
    return [
        AuditOut(
            ts_ns=a.ts_ns,
            actor=a.actor,
            action=a.action,
            object_type=a.object_type,
            object_id=a.object_id,
            detail=a.detail,
        )
        for a in rows
    ]


@router.post("/sweep", responses=ERRORS)
def sweep(c: ContainerDep, staff: AdminDep) -> SweepOut:
    """Run the periodic work now: review deadlines, payment retries, receipt deliveries."""
    return run_due(c)


@router.post("/devices", status_code=201, responses=ERRORS)
def create_device(c: ContainerDep, staff: ManagerDep, body: DeviceIn) -> DeviceOut:
    """Register an edge worker or gate controller of a store; its API key is in this answer only. Manager or above."""
    device, key = devices.create_device(c, staff, body.store_id, body.kind, body.device_id)
    return DeviceOut(device_id=device.id, store_id=device.store_id, kind=device.kind, active=True, api_key=key)


@router.delete("/devices/{device_id}", responses=ERRORS)
def revoke_device(c: ContainerDep, staff: ManagerDep, device_id: str) -> DeviceOut:
    """Revoke a device key (at once in this server process; everywhere within 30 s). Manager or above."""
    device = devices.revoke_device(c, staff, device_id)
    return DeviceOut(device_id=device.id, store_id=device.store_id, kind=device.kind, active=device.active)
