"""Device keys: created (the key shown once, stored hashed) and revoked by staff of the store."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from cloud_api.core.security import hash_api_key, new_api_key, new_id
from cloud_api.db.models import Device, Staff, Store
from cloud_api.services.container import Container, audit
from cloud_api.services.errors import ConflictError, ForbiddenError, NotFoundError


def _check_store(staff: Staff, store_id: str) -> None:
    if staff.store_id is not None and staff.store_id != store_id:
        raise ForbiddenError(f"you work for store {staff.store_id}, not {store_id}")


def create_device(c: Container, staff: Staff, store_id: str, kind: str, device_id: str | None) -> tuple[Device, str]:
    _check_store(staff, store_id)
    key = new_api_key("dev")
    now = c.now_ns()
    try:
        with c.transaction() as s:
            if s.get(Store, store_id) is None:
                raise NotFoundError(f"no store {store_id}: seed it first")
            device = Device(
                id=device_id or new_id(f"{kind}"),
                store_id=store_id,
                kind=kind,
                key_hash=hash_api_key(key),
                active=True,
                created_ns=now,
            )
            s.add(device)
            s.flush()
            audit(s, now, f"staff:{staff.id}", "device.create", "device", device.id, store_id=store_id, kind=kind)
    except IntegrityError as e:
        raise ConflictError(f"device {device_id} exists already: pick another id or revoke it") from e
    return device, key


def revoke_device(c: Container, staff: Staff, device_id: str) -> Device:
    now = c.now_ns()
    with c.transaction() as s:
        device = s.get(Device, device_id)
        if device is None:
            raise NotFoundError(f"no device {device_id}")
        _check_store(staff, device.store_id)
        device.active = False
        audit(s, now, f"staff:{staff.id}", "device.revoke", "device", device_id)
    c.cache.clear()  # at once in this process; other server processes within the 30 s cache lifetime
    return device
