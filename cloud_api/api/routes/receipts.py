from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from cloud_api.api.deps import ContainerDep, SessionDep
from cloud_api.api.errors import ERRORS
from cloud_api.db.models import Receipt
from cloud_api.services import receipts
from cloud_api.services.errors import NotFoundError

router = APIRouter(prefix="/v1/receipts", tags=["receipts"])


@router.get("/{receipt_id}/page", response_class=HTMLResponse, responses=ERRORS)
def receipt_page(
    c: ContainerDep,
    s: SessionDep,
    receipt_id: str,
    exp: int = Query(ge=0, le=2**40, description="expiry, Unix seconds"),
    sig: str = Query(min_length=1, max_length=128),
) -> HTMLResponse:
    """The receipt as a web page, through the signed link sent by email (no login)."""
    receipts.check_link(c, receipt_id, exp, sig)
    receipt = s.get(Receipt, receipt_id)
    if receipt is None:
        raise NotFoundError("this receipt no longer exists")
    return HTMLResponse(receipts.render_page(receipts.receipt_out(c, s, receipt)))
