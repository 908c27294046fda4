from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Header, Path

from cloud_api.api.deps import ContainerDep, DeviceDep
from cloud_api.api.errors import ERRORS
from cloud_api.schemas.cart import CartAccepted, CartIn
from cloud_api.services import receipts, settlement
from cloud_api.services.container import Container
from cloud_api.services.errors import BadRequestError

router = APIRouter(prefix="/v1/edge", tags=["edge"])


def _after(c: Container, visit_id: str) -> None:
    """After the answer is sent: this visit's receipt goes out at once (the sweeper does retries)."""
    receipts.deliver_pending(c, visit_id)


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
