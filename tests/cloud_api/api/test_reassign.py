"""Staff reassign a line under review to another shopper: into that visit's cart before it is charged,
as an extra charge once it is settled; each decision audited; other stores and bad targets refused."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.db.models import AuditEntry, ExtraCharge
from cloud_api.services.container import Container
from cloud_api.services.worker import run_due
from tests.cloud_api.conftest import World, cart_body, enter, make_world, put_cart


def _receipt(client: TestClient, w: World, who: str) -> dict[str, object]:
    (receipt,) = client.get("/v1/shoppers/me/receipts", headers=w.shopper(who)).json()
    out: dict[str, object] = receipt
    return out


def _decide(client: TestClient, w: World, visit_id: str, line_id: str, body: dict[str, object]) -> dict[str, object]:
    r = client.post(
        f"/v1/staff/visits/{visit_id}/lines/{line_id}/decision", json=body, headers=w.auth(w.staff["reviewer"])
    )
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out


def test_a_line_reassigned_before_settlement_moves_into_the_other_cart(
    client: TestClient, world: World, container: Container
) -> None:
    alice, bob = enter(client, world, "alice"), enter(client, world, "bob")
    put_cart(client, world, alice, cart_body(world, alice, [("1002", 1, "confirmed"), ("1004", 1, "under_review")],
                                             world.account("alice")))  # fmt: skip
    put_cart(client, world, bob, cart_body(world, bob, [("1003", 1, "under_review")], world.account("bob")))
    answer = _decide(client, world, alice, "L1", {"action": "reassign", "to_visit_id": bob})
    assert (answer["visit_state"], answer["line"]["status"]) == ("settled", "reassigned")  # type: ignore[index]
    assert [line["sku"] for line in _receipt(client, world, "alice")["lines"]] == ["1002"]  # type: ignore[attr-defined]
    bob_visit = client.get(f"/v1/staff/visits/{bob}", headers=world.auth(world.staff["reviewer"])).json()
    assert bob_visit["state"] == "held"  # bob's own line still waits for a decision
    assert [(ln["sku"], ln["status"]) for ln in bob_visit["lines"]] == [("1003", "under_review"), ("1004", "confirmed")]
    _decide(client, world, bob, "L0", {"action": "confirm"})
    assert [line["sku"] for line in _receipt(client, world, "bob")["lines"]] == ["1003", "1004"]  # type: ignore[attr-defined]
    with container.sessions() as s:
        actions = {
            (a.action, a.object_id) for a in s.scalars(select(AuditEntry).where(AuditEntry.actor.like("staff:%")))
        }
    assert {("line.reassign", alice), ("line.reassigned_in", bob)} <= actions


def test_a_line_reassigned_after_the_other_visit_settled_is_an_extra_charge(
    client: TestClient, world: World, container: Container, gateway: TestModePaymentGateway
) -> None:
    alice, bob = enter(client, world, "alice"), enter(client, world, "bob")
    put_cart(client, world, bob, cart_body(world, bob, [("1001", 2, "confirmed")], world.account("bob")))
    assert _receipt(client, world, "bob")["total"] == "3.01"  # 2 x 1.39 + 8.25 % tax
    put_cart(client, world, alice, cart_body(world, alice, [("1001", 1, "under_review")], world.account("alice")))
    captured = gateway.captured_total()
    _decide(client, world, alice, "L0", {"action": "reassign", "to_visit_id": bob})
    receipt = _receipt(client, world, "bob")
    # the third cola completes bob's 3-for-3.49: it costs what it adds (3.78 - 3.01)
    assert receipt["extra_charges"] == [
        {"sku": "1001", "name": "Cola can", "quantity": 1, "amount": "0.77", "state": "succeeded",
         "reason": f"line L0 of visit {alice}, reassigned by reviewer-{world.store_id[1:]}"}
    ]  # fmt: skip
    assert gateway.captured_total() == captured + 77
    assert client.get(f"/v1/staff/visits/{alice}", headers=world.auth(world.staff["reviewer"])).json()["state"] == (
        "settled"
    )
    assert run_due(container).retried_extra_charges == []  # charged once: nothing left for the sweeper


def test_an_extra_charge_whose_answer_was_lost_is_retried_with_the_same_key(
    client: TestClient, container: Container, gateway: TestModePaymentGateway
) -> None:
    w = make_world(container, {"alice": "tok_visa", "bob": "tok_timeout_once"})
    alice, bob = enter(client, w, "alice"), enter(client, w, "bob")
    put_cart(client, w, bob, cart_body(w, bob, [("1002", 1, "confirmed")], w.account("bob")))
    run_due(container)  # bob's own charge lost its first answer too: settled by the retry
    put_cart(client, w, alice, cart_body(w, alice, [("1003", 1, "under_review")], w.account("alice")))
    _decide(client, w, alice, "L0", {"action": "reassign", "to_visit_id": bob})
    with container.sessions() as s:
        (extra,) = s.scalars(select(ExtraCharge).where(ExtraCharge.visit_id == bob))
    assert extra.state in ("unknown", "succeeded")
    run_due(container)
    with container.sessions() as s:
        extra_after = s.get(ExtraCharge, extra.id)
    assert extra_after is not None
    assert extra_after.state == "succeeded"
    charged = [i for i in gateway.intents.values() if i.status == "succeeded" and i.amount_cents == extra.amount_cents]
    assert len(charged) == 1


def test_reassign_is_refused_across_stores_to_itself_and_without_a_target(
    client: TestClient, world: World, container: Container
) -> None:
    other = make_world(container)
    alice = enter(client, world, "alice")
    stranger = enter(client, other, "alice")
    put_cart(client, world, alice, cart_body(world, alice, [("1001", 1, "under_review")], world.account("alice")))
    url = f"/v1/staff/visits/{alice}/lines/L0/decision"
    reviewer = world.auth(world.staff["reviewer"])
    r = client.post(url, json={"action": "reassign", "to_visit_id": stranger}, headers=reviewer)
    assert r.status_code == 403
    assert "you work for store" in r.json()["message"]
    r = client.post(url, json={"action": "reassign", "to_visit_id": stranger}, headers=world.auth(world.staff["admin"]))
    assert r.status_code == 400
    assert "is in store" in r.json()["message"]
    r = client.post(url, json={"action": "reassign", "to_visit_id": alice}, headers=reviewer)
    assert (r.status_code, r.json()["message"]) == (409, "the line is already in this visit: pick another shopper")
    assert client.post(url, json={"action": "reassign"}, headers=reviewer).status_code == 400
    assert client.post(url, json={"action": "reassign", "to_visit_id": "v-nope"}, headers=reviewer).status_code == 404
    other_reviewer = other.auth(other.staff["reviewer"])
    assert client.post(url, json={"action": "void"}, headers=other_reviewer).status_code == 403
    visit = client.get(f"/v1/staff/visits/{alice}", headers=reviewer).json()
    assert (visit["state"], visit["lines"][0]["status"]) == ("held", "under_review")  # nothing changed
