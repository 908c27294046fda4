"""Typed dependencies: the container, a database session, and the caller (device, shopper or staff).

Every caller sends `Authorization: Bearer <key>`. Keys carry a prefix naming their kind (`dev_`,
`shp_`, `stf_`) and are looked up by their SHA-256 hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.core.security import hash_api_key
from cloud_api.db.models import Account, Device, Staff
from cloud_api.services.container import Container
from cloud_api.services.errors import ForbiddenError, UnauthorizedError
from cloud_api.services.staff_auth import has_role


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_session(c: ContainerDep) -> Iterator[Session]:
    with c.sessions() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]

_device_bearer = HTTPBearer(auto_error=False, scheme_name="DeviceKey", description="a device API key (dev_...)")
_shopper_bearer = HTTPBearer(auto_error=False, scheme_name="ShopperKey", description="a shopper API key (shp_...)")
_staff_bearer = HTTPBearer(auto_error=False, scheme_name="StaffKey", description="a staff API key (stf_...)")


def _key(creds: HTTPAuthorizationCredentials | None, prefix: str, who: str) -> str:
    if creds is None or not creds.credentials:
        raise UnauthorizedError(f"send `Authorization: Bearer <{who} key>`")
    if not creds.credentials.startswith(prefix):
        raise UnauthorizedError(f"this is not a {who} key (they start with {prefix})")
    return hash_api_key(creds.credentials)


def current_device(
    c: ContainerDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_device_bearer)]
) -> Device:
    """Device keys are on every gate scan's path: cached in memory for at most 30 s."""
    key_hash = _key(creds, "dev_", "device")
    device: Device | None = c.cache.get("device:" + key_hash)
    if device is None:
        with c.sessions() as s:
            device = s.scalars(select(Device).where(Device.key_hash == key_hash)).first()
        if device is None or not device.active:
            raise UnauthorizedError("unknown or revoked device key")
        c.cache.put("device:" + key_hash, device)
    return device


def current_shopper(
    s: SessionDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_shopper_bearer)]
) -> Account:
    account = s.scalars(select(Account).where(Account.key_hash == _key(creds, "shp_", "shopper"))).first()
    if account is None or account.standing == "closed":
        raise UnauthorizedError("unknown shopper key")
    return account


def current_staff(
    s: SessionDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_staff_bearer)]
) -> Staff:
    staff = s.scalars(select(Staff).where(Staff.key_hash == _key(creds, "stf_", "staff"))).first()
    if staff is None:
        raise UnauthorizedError("unknown staff key")
    return staff


def require_role(role: str) -> Callable[[Staff], Staff]:
    def check(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
        if not has_role(staff, role):
            raise ForbiddenError(f"this needs the {role} role; you are {staff.role}")
        return staff

    return check


DeviceDep = Annotated[Device, Depends(current_device)]
ShopperDep = Annotated[Account, Depends(current_shopper)]
ReviewerDep = Annotated[Staff, Depends(require_role("reviewer"))]
ManagerDep = Annotated[Staff, Depends(require_role("manager"))]
AdminDep = Annotated[Staff, Depends(require_role("admin"))]
