from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Header, Path
from sqlalchemy.exc import OperationalError

from cloud_api.api.deps import ContainerDep, DeviceDep
from cloud_api.api.errors import ERRORS
from cloud_api.schemas.cart import CartAccepted, CartIn
from cloud_api.services import receipts, settlement
from cloud_api.services.container import Container
from cloud_api.services.errors import BadRequestError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/edge", tags=["edge"])


def _after(c: Container, visit_id: str) -> None:
    """After the answer is sent: this visit's receipt goes out at once (the sweeper does retries).
    An error here would reach the server after the answer and cut the caller's connection: with the
    database down the sweeper sends the receipt once it is back."""
    try:
        receipts.deliver_pending(c, visit_id)
    except OperationalError as e:
        log.warning("receipt of visit %s left to the sweeper: the database is unavailable (%s)", visit_id, e.orig)


@router.put("/carts/{visit_id}", responses=ERRORS)
def put_cart(
    c: ContainerDep,
    device: DeviceDep,
    body: CartIn,
    background: BackgroundTasks,
    visit_id: str = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    idempotency_key: str | None = Header(default=None, max_length=200),
) -> CartAccepted:
    """The edge's finished cart for a visit, applied once: a repeat gets the first answer. The visit
    is then settled (charged once) unless lines are under review; the receipt goes out afterwards."""
    if idempotency_key is not None and idempotency_key != visit_id:
        raise BadRequestError("Idempotency-Key must be the visit id")
    answer = settlement.accept_cart(c, device, visit_id, body)
    settlement.settle(c, visit_id)
    background.add_task(_after, c, visit_id)
    return CartAccepted(**answer)
