from __future__ import annotations

from fastapi.testclient import TestClient

from cloud_api.services.container import Container
from tests.cloud_api.conftest import World, make_world


def test_a_manager_creates_and_revokes_a_gate_key_of_their_store(
    client: TestClient, world: World, container: Container
) -> None:
    manager = world.auth(world.staff["manager"])
    r = client.post("/v1/staff/devices", json={"store_id": world.store_id, "kind": "gate"}, headers=manager)
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["api_key"]
    assert key.startswith("dev_")
    code = client.post("/v1/shoppers/me/entry-codes", headers=world.shopper("alice")).json()["token"]
    scan = client.post(f"/v1/gates/{world.gate_id}/scans", json={"token": code}, headers=world.auth(key))
    assert scan.json()["decision"] == "open"
    r = client.delete(f"/v1/staff/devices/{created['device_id']}", headers=manager)
    assert (r.json()["active"], r.json()["api_key"]) == (False, None)
    code = client.post("/v1/shoppers/me/entry-codes", headers=world.shopper("alice")).json()["token"]
    scan = client.post(f"/v1/gates/{world.gate_id}/scans", json={"token": code}, headers=world.auth(key))
    assert scan.status_code == 401
    audit = client.get(f"/v1/staff/audit?object_id={created['device_id']}", headers=world.auth(world.staff["admin"]))
    assert {a["action"] for a in audit.json()} == {"device.create", "device.revoke"}


def test_device_keys_are_store_and_role_checked(client: TestClient, world: World, container: Container) -> None:
    other = make_world(container)
    body = {"store_id": world.store_id, "kind": "edge"}
    assert client.post("/v1/staff/devices", json=body, headers=other.auth(other.staff["manager"])).status_code == 403
    assert client.post("/v1/staff/devices", json=body, headers=world.auth(world.staff["reviewer"])).status_code == 403
    r = client.post(
        "/v1/staff/devices",
        json=body | {"device_id": "dup-" + world.store_id},
        headers=world.auth(world.staff["admin"]),
    )
    assert r.status_code == 201
    r = client.post(
        "/v1/staff/devices",
        json=body | {"device_id": "dup-" + world.store_id},
        headers=world.auth(world.staff["admin"]),
    )
    assert r.status_code == 409
    r = client.post(
        "/v1/staff/devices", json={"store_id": "nope", "kind": "edge"}, headers=world.auth(world.staff["admin"])
    )
    assert r.status_code == 404
