from __future__ import annotations

import threading

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.db.models import Account, Payment, Receipt
from cloud_api.services import settlement
from cloud_api.services.container import Container
from tests.cloud_api.conftest import Clock, LiveServer, World, cart_body, enter, make_world, put_cart

# 3 colas (3 for 3.49) + 1 water 2.69 = 6.18; tax 8.25% = 0.50985 -> 0.51; total 6.69
BASKET = [("1001", 3, "confirmed"), ("1002", 1, "confirmed"), ("1003", 1, "confirmed"), ("1003", -1, "confirmed")]
BASKET_CENTS = 669


def _payments(c: Container, visit_id: str) -> list[Payment]:
    with c.sessions() as s:
        return list(s.scalars(select(Payment).where(Payment.visit_id == visit_id)))


def _receipt(client: TestClient, w: World, who: str = "alice") -> dict[str, object]:
    receipts = client.get("/v1/shoppers/me/receipts", headers=w.shopper(who)).json()
    assert len(receipts) == 1, receipts
    out: dict[str, object] = receipts[0]
    return out


def test_a_cart_is_priced_charged_once_and_a_repeat_gets_the_same_answer(
    client: TestClient, world: World, container: Container, gateway: TestModePaymentGateway
) -> None:
    visit_id = enter(client, world)
    body = cart_body(world, visit_id, BASKET, world.account("alice"))
    first = put_cart(client, world, visit_id, body)
    assert first["state"] == "charging"
    again = put_cart(client, world, visit_id, body)
    assert again == first
    (payment,) = _payments(container, visit_id)
    assert (payment.state, payment.amount_cents) == ("succeeded", BASKET_CENTS)
    assert gateway.captured_total() == BASKET_CENTS
    receipt = _receipt(client, world)
    assert receipt["total"] == "6.69"
    assert receipt["tax"] == "0.51"
    assert receipt["discount"] == "0.68"
    assert receipt["payment_state"] == "succeeded"
    assert [(line["sku"], line["quantity"], line["total"]) for line in receipt["lines"]] == [  # type: ignore[attr-defined]
        ("1001", 3, "3.49"),
        ("1002", 1, "2.69"),
    ]
    visits = client.get("/v1/shoppers/me/visits", headers=world.shopper("alice")).json()
    assert visits[0]["state"] == "settled"
    assert visits[0]["receipt_id"] == receipt["receipt_id"]


def test_concurrent_puts_of_one_cart_charge_exactly_once(
    app: FastAPI, world: World, container: Container, gateway: TestModePaymentGateway
) -> None:
    gateway.latency_s = 0.05  # widen the window in which a second charge could slip in
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        code = http.post("/v1/shoppers/me/entry-codes", headers=world.shopper("alice")).json()["token"]
        scan = http.post(f"/v1/gates/{world.gate_id}/scans", json={"token": code}, headers=world.auth(world.gate_key))
        visit_id = scan.json()["visit_id"]
        body = cart_body(world, visit_id, BASKET, world.account("alice"))
        answers: list[httpx.Response] = []
        barrier = threading.Barrier(8)

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as own:
                barrier.wait()
                answers.append(
                    own.put(
                        f"/v1/edge/carts/{visit_id}",
                        json=body,
                        headers=world.auth(world.edge_key) | {"Idempotency-Key": visit_id},
                    )
                )

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.text for r in answers}) == 1
    assert len(_payments(container, visit_id)) == 1
    assert gateway.captured_total() == BASKET_CENTS
    assert len([i for i in gateway.intents.values() if i.status == "succeeded"]) == 1
    assert gateway.calls == 2  # authorise + capture, by the one request that claimed the charge


def test_a_cart_for_another_store_is_forbidden(client: TestClient, world: World, container: Container) -> None:
    other = make_world(container)
    visit_id = enter(client, world)
    body = cart_body(world, visit_id, BASKET)
    r = client.put(f"/v1/edge/carts/{visit_id}", json=body, headers=other.auth(other.edge_key))
    assert r.status_code == 403
    r = client.put(f"/v1/edge/carts/{visit_id}", json=body, headers=world.auth(world.gate_key))
    assert r.status_code == 403
    assert "edge worker" in r.json()["message"]
    assert _payments(container, visit_id) == []
    r = client.put(
        f"/v1/edge/carts/{visit_id}", json=body, headers=world.auth(world.edge_key) | {"Idempotency-Key": "x"}
    )
    assert r.status_code == 400


def test_a_cart_without_check_in_is_kept_for_staff_and_never_charged(
    client: TestClient, world: World, container: Container
) -> None:
    answer = put_cart(
        client, world, "v-unknown-" + world.store_id, cart_body(world, "v-unknown-" + world.store_id, BASKET)
    )
    assert answer["state"] == "unmatched"
    assert _payments(container, "v-unknown-" + world.store_id) == []
    r = client.get("/v1/staff/visits?state=unmatched", headers=world.auth(world.staff["reviewer"]))
    assert [v["visit_id"] for v in r.json()] == ["v-unknown-" + world.store_id]
    assert "no gate check-in" in r.json()[0]["flag_reason"]


def test_a_decline_flags_the_account_until_the_visit_is_paid(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, tokens={"alice": "tok_decline"})
    visit_id = enter(client, w)
    put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))
    (payment,) = _payments(container, visit_id)
    assert payment.state == "declined"
    me = client.get("/v1/shoppers/me", headers=w.shopper("alice")).json()
    assert me["standing"] == "flagged"
    assert visit_id in me["flag_reason"]
    code = client.post("/v1/shoppers/me/entry-codes", headers=w.shopper("alice")).json()["token"]
    answer = client.post(f"/v1/gates/{w.gate_id}/scans", json={"token": code}, headers=w.auth(w.gate_key)).json()
    assert (answer["decision"], answer["reason"]) == ("refuse", "account_flagged")
    assert visit_id in answer["message"]
    # the shopper updates the card and pays the visit: the flag is lifted, one charge in all
    client.put("/v1/shoppers/me/payment-method", json={"token": "tok_visa"}, headers=w.shopper("alice"))
    paid = client.post(f"/v1/shoppers/me/visits/{visit_id}/payment", headers=w.shopper("alice"))
    assert paid.json() == {"visit_id": visit_id, "state": "settled"}
    again = client.post(f"/v1/shoppers/me/visits/{visit_id}/payment", headers=w.shopper("alice"))
    assert again.status_code == 409
    assert client.get("/v1/shoppers/me", headers=w.shopper("alice")).json()["standing"] == "good"
    assert gateway.captured_total() == BASKET_CENTS
    assert enter(client, w)


def test_a_timeout_is_retried_with_the_same_key_and_charges_once(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, tokens={"alice": "tok_timeout_once"})
    visit_id = enter(client, w)
    assert put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))["state"] == "charging"
    (payment,) = _payments(container, visit_id)
    assert payment.state == "unknown"
    assert "timeout" in (payment.error or "")
    assert settlement.retry_unsettled(container) == [visit_id]
    (payment,) = _payments(container, visit_id)
    assert payment.state == "succeeded"
    assert len(gateway.intents) == 1  # the lost answer was found again, not a second authorisation
    assert gateway.captured_total() == BASKET_CENTS


def test_a_processor_that_never_answers_leaves_the_visit_charging(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, tokens={"alice": "tok_timeout"})
    visit_id = enter(client, w)
    put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))
    settlement.retry_unsettled(container)
    (payment,) = _payments(container, visit_id)
    assert payment.state == "unknown"
    assert gateway.captured_total() == 0
    with container.sessions() as s:
        account = s.get(Account, w.account("alice"))
        assert account is not None
        assert account.standing == "good"  # not the shopper's fault


def test_lines_under_review_hold_the_receipt_until_staff_decide(
    client: TestClient, world: World, container: Container, gateway: TestModePaymentGateway
) -> None:
    visit_id = enter(client, world)
    lines = [("1002", 1, "confirmed"), ("1004", 1, "under_review"), ("1003", 2, "under_review")]
    answer = put_cart(client, world, visit_id, cart_body(world, visit_id, lines))
    assert (answer["state"], answer["under_review"]) == ("held", 2)
    assert _payments(container, visit_id) == []
    reviewer = world.auth(world.staff["reviewer"])
    held = client.get("/v1/staff/visits", headers=reviewer).json()
    assert [v["visit_id"] for v in held] == [visit_id]
    url = f"/v1/staff/visits/{visit_id}/lines"
    r = client.post(f"{url}/L1/decision", json={"action": "void"}, headers=reviewer)
    assert r.json()["visit_state"] == "held"
    assert client.post(f"{url}/L1/decision", json={"action": "confirm"}, headers=reviewer).status_code == 409
    assert client.post(f"{url}/L0/decision", json={"action": "void"}, headers=reviewer).status_code == 409
    r = client.post(f"{url}/L2/decision", json={"action": "change", "quantity": 1}, headers=reviewer)
    assert r.json()["visit_state"] == "settled"
    assert r.json()["line"]["edge_quantity"] == 2
    # water 2.69 + one bar 0.99 = 3.68 + 0.30 tax
    assert _receipt(client, world)["total"] == "3.98"
    assert gateway.captured_total() == 398
    audit = client.get(f"/v1/staff/audit?object_id={visit_id}", headers=world.auth(world.staff["admin"])).json()
    assert {"line.void", "line.change"} <= {a["action"] for a in audit}


def test_staff_of_another_store_and_unknown_skus_are_refused(
    client: TestClient, world: World, container: Container
) -> None:
    other = make_world(container)
    visit_id = enter(client, world)
    put_cart(client, world, visit_id, cart_body(world, visit_id, [("1004", 1, "under_review")]))
    url = f"/v1/staff/visits/{visit_id}/lines/L0/decision"
    r = client.post(url, json={"action": "confirm"}, headers=other.auth(other.staff["reviewer"]))
    assert r.status_code == 403
    r = client.post(url, json={"action": "change", "sku": "9999"}, headers=world.auth(world.staff["reviewer"]))
    assert r.status_code == 400
    assert "9999" in r.json()["message"]
    r = client.post(url, json={"action": "confirm"}, headers=world.shopper("alice"))
    assert r.status_code == 401
    r = client.get("/v1/staff/audit", headers=world.auth(world.staff["reviewer"]))
    assert r.status_code == 403
    assert "admin" in r.json()["message"]


def test_after_the_deadline_uncertain_lines_are_dropped_never_charged(
    client: TestClient, world: World, container: Container, clock: Clock, gateway: TestModePaymentGateway
) -> None:
    visit_id = enter(client, world)
    put_cart(
        client, world, visit_id, cart_body(world, visit_id, [("1002", 1, "confirmed"), ("1004", 1, "under_review")])
    )
    assert settlement.release_expired_holds(container) == []
    clock.advance(container.settings.review_deadline_s + 1)
    assert visit_id in settlement.release_expired_holds(container)
    receipt = _receipt(client, world)
    assert [line["sku"] for line in receipt["lines"]] == ["1002"]  # type: ignore[attr-defined]
    assert receipt["total"] == "2.91"  # 2.69 + 0.22 tax
    assert gateway.captured_total() == 291
    detail = client.get(f"/v1/staff/visits/{visit_id}", headers=world.auth(world.staff["reviewer"])).json()
    assert [(line["line_id"], line["status"]) for line in detail["lines"]] == [("L0", "confirmed"), ("L1", "dropped")]


def test_an_empty_cart_settles_without_a_charge(
    client: TestClient, world: World, container: Container, gateway: TestModePaymentGateway
) -> None:
    visit_id = enter(client, world)
    put_cart(client, world, visit_id, cart_body(world, visit_id, [("1002", 1, "confirmed"), ("1002", -1, "confirmed")]))
    assert _payments(container, visit_id) == []
    assert _receipt(client, world)["total"] == "0.00"
    assert gateway.calls == 0
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Receipt).where(Receipt.visit_id == visit_id)) == 1


def test_a_malformed_cart_gets_a_readable_422(client: TestClient, world: World) -> None:
    r = client.put("/v1/edge/carts/v-1", json={"store_id": world.store_id}, headers=world.auth(world.edge_key))
    assert r.status_code == 422
    assert "visit_id" in r.json()["message"]


def test_a_preauthorisation_at_entry_is_captured_or_replaced(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    from decimal import Decimal

    w = make_world(container, preauth=Decimal("5.00"))
    small = enter(client, w, "alice")
    (hold,) = gateway.intents.values()
    assert (hold.status, hold.amount_cents) == ("requires_capture", 500)
    put_cart(client, w, small, cart_body(w, small, [("1003", 1, "confirmed")]))  # 0.99 + 0.08 tax
    assert (hold.status, hold.captured_cents) == ("succeeded", 107)
    assert len(gateway.intents) == 1
    big = enter(client, w, "bob")
    put_cart(client, w, big, cart_body(w, big, BASKET))  # 6.69 > 5.00: the hold is released, a new charge made
    statuses = sorted((i.status, i.captured_cents) for i in gateway.intents.values())
    assert statuses == [("canceled", 0), ("succeeded", 107), ("succeeded", BASKET_CENTS)]


def test_the_sweep_endpoint_runs_deadlines_and_retries(
    client: TestClient, world: World, container: Container, clock: Clock
) -> None:
    visit_id = enter(client, world)
    put_cart(client, world, visit_id, cart_body(world, visit_id, [("1004", 1, "under_review")]))
    clock.advance(container.settings.review_deadline_s + 1)
    assert client.post("/v1/staff/sweep", headers=world.auth(world.staff["manager"])).status_code == 403
    r = client.post("/v1/staff/sweep", headers=world.auth(world.staff["admin"]))
    assert visit_id in r.json()["released_holds"]
    visits = client.get("/v1/shoppers/me/visits", headers=world.shopper("alice")).json()
    assert visits[0]["state"] == "settled"  # nothing left to charge: every line was dropped


def test_an_edge_receipt_that_disagrees_with_the_lines_is_audited(client: TestClient, world: World) -> None:
    visit_id = enter(client, world)
    body = cart_body(world, visit_id, BASKET)
    body["receipt"] = [{"sku": "1001", "quantity": 1}]
    put_cart(client, world, visit_id, body)
    audit = client.get(f"/v1/staff/audit?object_id={visit_id}", headers=world.auth(world.staff["admin"])).json()
    assert "cart.receipt_mismatch" in {a["action"] for a in audit}
    assert _receipt(client, world)["total"] == "6.69"  # the lines are what is charged


def test_an_expired_hold_is_replaced_by_a_fresh_charge(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    from decimal import Decimal

    w = make_world(container, preauth=Decimal("20.00"))
    visit_id = enter(client, w)
    (hold,) = gateway.intents.values()
    hold.status = "canceled"  # the processor let the authorisation lapse
    assert put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))["state"] == "charging"
    (payment,) = _payments(container, visit_id)
    assert (payment.state, payment.attempt) == ("pending", 2)
    assert "cannot be captured" in (payment.error or "")
    settlement.retry_unsettled(container)
    (payment,) = _payments(container, visit_id)
    assert payment.state == "succeeded"
    assert gateway.captured_total() == BASKET_CENTS


def test_a_repeat_with_a_different_cart_keeps_the_first_and_is_audited(
    client: TestClient, world: World, gateway: TestModePaymentGateway
) -> None:
    visit_id = enter(client, world)
    first = put_cart(client, world, visit_id, cart_body(world, visit_id, BASKET))
    second = put_cart(client, world, visit_id, cart_body(world, visit_id, [("1004", 5, "confirmed")]))
    assert second == first
    assert gateway.captured_total() == BASKET_CENTS
    audit = client.get(f"/v1/staff/audit?object_id={visit_id}", headers=world.auth(world.staff["admin"])).json()
    assert "cart.repeat_differs" in {a["action"] for a in audit}


def test_a_late_outcome_after_the_lease_ran_out_is_not_recorded_twice(
    client: TestClient, world: World, container: Container, gateway: TestModePaymentGateway
) -> None:
    from cloud_api.adapters.payments import PaymentResult

    visit_id = enter(client, world)
    put_cart(client, world, visit_id, cart_body(world, visit_id, BASKET))
    (payment,) = _payments(container, visit_id)
    assert payment.state == "succeeded"
    # a worker whose lease expired comes back with the same (replayed) answer: nothing changes
    late = PaymentResult("succeeded", payment.processor_ref, BASKET_CENTS)
    assert settlement._record_outcome(container, visit_id, payment.id, late, None) == "settled"
    assert settlement._record_processor_error(container, visit_id, payment.id, "late") == "settled"
    (again,) = _payments(container, visit_id)
    assert (again.state, again.attempt, again.error) == ("succeeded", 1, None)


def test_absurd_quantities_are_refused_before_anything_is_stored(
    client: TestClient, world: World, container: Container
) -> None:
    visit_id = enter(client, world)
    body = cart_body(world, visit_id, [("1001", 10**15, "confirmed")])
    r = client.put(f"/v1/edge/carts/{visit_id}", json=body, headers=world.auth(world.edge_key))
    assert r.status_code == 422
    assert "quantity" in r.json()["message"]
    assert put_cart(client, world, visit_id, cart_body(world, visit_id, BASKET))["state"] == "charging"


def test_staff_close_an_unmatched_visit_with_a_note(client: TestClient, world: World, container: Container) -> None:
    other = make_world(container)
    visit_id = "v-restock-" + world.store_id
    put_cart(client, world, visit_id, cart_body(world, visit_id, BASKET))
    url = f"/v1/staff/visits/{visit_id}/close"
    assert client.post(url, json={"note": "x"}, headers=other.auth(other.staff["reviewer"])).status_code == 403
    r = client.post(url, json={"note": "night restocking"}, headers=world.auth(world.staff["reviewer"]))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed"
    assert "night restocking" in r.json()["flag_reason"]
    assert client.post(url, json={"note": "again"}, headers=world.auth(world.staff["reviewer"])).status_code == 409
    assert _payments(container, visit_id) == []
    paid = enter(client, world)
    put_cart(client, world, paid, cart_body(world, paid, BASKET))
    r = client.post(f"/v1/staff/visits/{paid}/close", json={"note": "x"}, headers=world.auth(world.staff["reviewer"]))
    assert r.status_code == 409


def test_concurrent_retries_of_one_unsettled_visit_charge_once(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, tokens={"alice": "tok_timeout_once"})
    visit_id = enter(client, w)
    put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))
    assert _payments(container, visit_id)[0].state == "unknown"
    gateway.latency_s = 0.05  # the sweeper and shoppers' requests overlap while the processor thinks
    calls_before = gateway.calls
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def retry() -> None:
        try:
            barrier.wait()
            settlement.settle(container, visit_id)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    (payment,) = _payments(container, visit_id)
    assert payment.state == "succeeded"
    assert gateway.captured_total() == BASKET_CENTS
    assert len(gateway.intents) == 1
    assert gateway.calls == calls_before + 2  # one worker claimed the charge (authorise + capture); the rest stood back


def test_repeated_processor_refusals_stop_for_staff_who_retry(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, tokens={"alice": "tok_refused"})
    visit_id = enter(client, w)
    put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))
    for _ in range(5):
        settlement.retry_unsettled(container)
    (payment,) = _payments(container, visit_id)
    assert (payment.state, payment.attempt) == ("error", settlement.MAX_ATTEMPTS)
    detail = client.get(f"/v1/staff/visits/{visit_id}", headers=w.auth(w.staff["reviewer"])).json()
    assert "needs staff" in detail["flag_reason"]
    url = f"/v1/staff/visits/{visit_id}/payment-retry"
    assert client.post(url, headers=w.auth(w.staff["reviewer"])).status_code == 403
    client.put("/v1/shoppers/me/payment-method", json={"token": "tok_visa"}, headers=w.shopper("alice"))
    r = client.post(url, headers=w.auth(w.staff["manager"]))
    assert r.json() == {"visit_id": visit_id, "state": "settled"}
    assert gateway.captured_total() == BASKET_CENTS
    assert client.post(url, headers=w.auth(w.staff["manager"])).status_code == 409
    assert client.get(f"/v1/staff/visits/{visit_id}", headers=w.auth(w.staff["reviewer"])).json()["flag_reason"] is None
