from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.services.container import Container
from tests.cloud_api.conftest import World, cart_body, enter, make_world, put_cart

# 3 colas (3 for 3.49) + 1 sandwich 6.49 = 9.98, tax 0.82 -> 10.80
BASKET = [("1001", 3, "confirmed"), ("1004", 1, "confirmed")]


def _paid_receipt(client: TestClient, w: World) -> dict[str, Any]:
    visit_id = enter(client, w)
    put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))
    (receipt,) = client.get("/v1/shoppers/me/receipts", headers=w.shopper("alice")).json()
    assert receipt["total"] == "10.80"
    out: dict[str, Any] = receipt
    return out


def test_a_small_dispute_is_refunded_at_once(client: TestClient, world: World, gateway: TestModePaymentGateway) -> None:
    receipt = _paid_receipt(client, world)
    r = client.post(
        f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes",
        json={"sku": "1001", "quantity": 1, "reason": "I put one back"},
        headers=world.shopper("alice"),
    )
    assert r.status_code == 201, r.text
    dispute = r.json()
    # without one cola the multi-buy no longer applies: 2 x 1.39 + 6.49 = 9.27 + 0.76 tax = 10.03
    assert (dispute["state"], dispute["amount"]) == ("refunded", "0.77")
    (intent,) = gateway.intents.values()
    assert intent.refunded_cents == 77
    again = client.get(f"/v1/shoppers/me/receipts/{receipt['receipt_id']}", headers=world.shopper("alice")).json()
    assert again["refunded"] == "0.77"
    assert [d["dispute_id"] for d in client.get("/v1/shoppers/me/disputes", headers=world.shopper("alice")).json()] == [
        dispute["dispute_id"]
    ]


def test_a_large_dispute_waits_for_a_manager(
    client: TestClient, world: World, gateway: TestModePaymentGateway, container: Container
) -> None:
    receipt = _paid_receipt(client, world)
    url = f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes"
    r = client.post(url, json={"sku": "1004", "reason": "no sandwich"}, headers=world.shopper("alice"))
    dispute = r.json()
    assert (dispute["state"], dispute["amount"]) == ("pending_staff", "7.02")  # 10.80 - (3.49 + 0.29 tax)
    assert "limit" in dispute["route_reason"]
    (intent,) = gateway.intents.values()
    assert intent.refunded_cents == 0
    decision = f"/v1/staff/disputes/{dispute['dispute_id']}/decision"
    assert client.post(decision, json={"approve": True}, headers=world.auth(world.staff["reviewer"])).status_code == 403
    other = make_world(container)
    assert client.post(decision, json={"approve": True}, headers=other.auth(other.staff["manager"])).status_code == 403
    pending = client.get("/v1/staff/disputes", headers=world.auth(world.staff["manager"])).json()
    assert [d["dispute_id"] for d in pending] == [dispute["dispute_id"]]
    r = client.post(
        decision, json={"approve": True, "note": "camera shows no sandwich"}, headers=world.auth(world.staff["manager"])
    )
    assert r.json()["state"] == "refunded"
    assert intent.refunded_cents == 702
    assert client.post(decision, json={"approve": True}, headers=world.auth(world.staff["manager"])).status_code == 409
    # the same units cannot be disputed twice
    r = client.post(url, json={"sku": "1004", "reason": "again"}, headers=world.shopper("alice"))
    assert r.status_code == 400
    assert "only 0" in r.json()["message"]


def test_a_rejected_dispute_refunds_nothing_and_frees_the_units(
    client: TestClient, world: World, gateway: TestModePaymentGateway
) -> None:
    receipt = _paid_receipt(client, world)
    url = f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes"
    dispute = client.post(url, json={"sku": "1004", "reason": "x"}, headers=world.shopper("alice")).json()
    r = client.post(
        f"/v1/staff/disputes/{dispute['dispute_id']}/decision", json={"approve": False, "note": "seen on camera"},
        headers=world.auth(world.staff["manager"]),
    )  # fmt: skip
    assert r.json()["state"] == "rejected"
    (intent,) = gateway.intents.values()
    assert intent.refunded_cents == 0


def test_disputes_are_checked(client: TestClient, world: World) -> None:
    receipt = _paid_receipt(client, world)
    url = f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes"
    r = client.post(url, json={"sku": "1002", "reason": "x"}, headers=world.shopper("alice"))
    assert r.status_code == 400
    assert "not on this receipt" in r.json()["message"]
    r = client.post(url, json={"sku": "1001", "quantity": 4, "reason": "x"}, headers=world.shopper("alice"))
    assert r.status_code == 400
    r = client.post(url, json={"sku": "1001", "reason": "x"}, headers=world.shopper("bob"))
    assert r.status_code == 404


def test_automatic_refunds_are_limited_per_month(client: TestClient, container: Container) -> None:
    w = make_world(container)
    states = []
    for _ in range(container.settings.auto_refunds_per_30_days + 1):
        visit_id = enter(client, w)
        put_cart(client, w, visit_id, cart_body(w, visit_id, [("1003", 1, "confirmed")]))
        receipts = client.get("/v1/shoppers/me/receipts", headers=w.shopper("alice")).json()
        rid = next(r["receipt_id"] for r in receipts if r["visit_id"] == visit_id)
        d = client.post(
            f"/v1/shoppers/me/receipts/{rid}/disputes", json={"sku": "1003", "reason": "x"}, headers=w.shopper("alice")
        )
        states.append(d.json()["state"])
    assert states == ["refunded"] * container.settings.auto_refunds_per_30_days + ["pending_staff"]


def test_a_refund_whose_answer_was_lost_is_retried_and_made_once(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    from cloud_api.services.disputes import retry_refunds

    w = make_world(container, tokens={"alice": "tok_refund_timeout_once"})
    receipt = _paid_receipt(client, w)
    r = client.post(
        f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes",
        json={"sku": "1001", "reason": "one fell on the floor"},
        headers=w.shopper("alice"),
    )
    dispute = r.json()
    assert (dispute["state"], dispute["amount"]) == ("refund_pending", "0.77")
    assert retry_refunds(container) == [dispute["dispute_id"]]
    assert retry_refunds(container) == []
    (intent,) = gateway.intents.values()
    assert intent.refunded_cents == 77  # the processor made it once; the retry found it by its key
    mine = client.get("/v1/shoppers/me/disputes", headers=w.shopper("alice")).json()
    assert [d["state"] for d in mine] == ["refunded"]
    again = client.get(f"/v1/shoppers/me/receipts/{receipt['receipt_id']}", headers=w.shopper("alice")).json()
    assert again["refunded"] == "0.77"


def test_concurrent_disputes_of_the_same_unit_accept_one(client: TestClient, world: World) -> None:
    import threading

    receipt = _paid_receipt(client, world)
    url = f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes"
    codes: list[int] = []
    barrier = threading.Barrier(4)

    def dispute() -> None:
        barrier.wait()
        r = client.post(url, json={"sku": "1004", "reason": "x"}, headers=world.shopper("alice"))
        codes.append(r.status_code)

    threads = [threading.Thread(target=dispute) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201, 400, 400, 400]


def test_a_refused_refund_is_retried_by_a_manager(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, tokens={"alice": "tok_refund_refused_once"})
    receipt = _paid_receipt(client, w)
    d = client.post(
        f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes",
        json={"sku": "1001", "reason": "one was crushed"},
        headers=w.shopper("alice"),
    ).json()
    assert d["state"] == "refund_failed"
    url = f"/v1/staff/disputes/{d['dispute_id']}/refund-retry"
    assert client.post(url, headers=w.auth(w.staff["reviewer"])).status_code == 403
    r = client.post(url, headers=w.auth(w.staff["manager"]))
    assert r.json()["state"] == "refunded"
    (intent,) = gateway.intents.values()
    assert intent.refunded_cents == 77
    assert client.post(url, headers=w.auth(w.staff["manager"])).status_code == 409
