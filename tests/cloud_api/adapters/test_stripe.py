"""The Stripe adapter, through the official `stripe` package, against a local server speaking Stripe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cloud_api.adapters.payments import PaymentError, PaymentTimeoutError, StripePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.db.models import Payment
from cloud_api.main import create_app
from cloud_api.services import settlement
from cloud_api.services.container import Container
from tests.cloud_api.adapters.fake_stripe import FakeStripe
from tests.cloud_api.conftest import Clock, cart_body, enter, make_container, make_world, put_cart


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(slow_s=3.0) as f:  # past the client timeout below, by a margin a loaded CI machine keeps
        yield f


@pytest.fixture
def stripe_gateway(fake: FakeStripe) -> StripePaymentGateway:
    return StripePaymentGateway("sk_test_local", api_base=fake.url, timeout_s=1.5)


def test_authorize_capture_refund_with_idempotency(fake: FakeStripe, stripe_gateway: StripePaymentGateway) -> None:
    auth = stripe_gateway.authorize("pm_card_visa", 1234, "USD", "k1-auth")
    assert auth.status == "authorized"
    assert auth.ref is not None
    assert fake.intents[auth.ref]["currency"] == "usd"
    assert stripe_gateway.authorize("pm_card_visa", 1234, "USD", "k1-auth") == auth  # replayed, not a new intent
    assert len(fake.intents) == 1
    cap = stripe_gateway.capture(auth.ref, 1000, "k1-capture")
    assert (cap.status, cap.amount_cents) == ("succeeded", 1000)
    assert fake.captured() == 1000
    refund = stripe_gateway.refund(auth.ref, 300, "r1")
    assert (refund.status, refund.amount_cents) == ("refunded", 300)
    with pytest.raises(PaymentError):
        stripe_gateway.refund(auth.ref, 800, "r2")  # more than is left


def test_decline_cancel_and_timeout(fake: FakeStripe, stripe_gateway: StripePaymentGateway) -> None:
    declined = stripe_gateway.authorize("pm_card_chargeDeclined", 500, "USD", "k2-auth")
    assert declined.status == "declined"
    assert declined.message == "Your card was declined."
    assert declined.ref in fake.intents
    auth = stripe_gateway.authorize("pm_card_visa", 500, "USD", "k3-auth")
    assert auth.ref is not None
    assert stripe_gateway.cancel(auth.ref, "k3-cancel").status == "canceled"
    with pytest.raises(PaymentTimeoutError):
        stripe_gateway.authorize("pm_card_slow", 500, "USD", "k4-auth")


@pytest.fixture
def stripe_container(
    base_settings: Settings, engine: Engine, stripe_gateway: StripePaymentGateway, clock: Clock
) -> Container:
    return make_container(base_settings, engine, stripe_gateway, clock)


def test_settlement_through_stripe_charges_once_and_a_lost_answer_is_found_again(
    fake: FakeStripe, stripe_container: Container
) -> None:
    c = stripe_container
    w = make_world(c, tokens={"alice": "pm_card_visa", "bob": "pm_card_slow"})
    basket = [("1004", 2, "confirmed")]  # 12.98 + 1.07 tax = 14.05
    with TestClient(create_app(container=c)) as client:
        visit_id = enter(client, w, "alice")
        body = cart_body(w, visit_id, basket)
        put_cart(client, w, visit_id, body)
        put_cart(client, w, visit_id, body)
        assert fake.captured() == 1405
        assert len(fake.intents) == 1

        slow_visit = enter(client, w, "bob")
        put_cart(client, w, slow_visit, cart_body(w, slow_visit, basket))
        with c.sessions() as s:
            payment = s.scalars(select(Payment).where(Payment.visit_id == slow_visit)).one()
        assert payment.state == "unknown"  # the client gave up; the intent exists at Stripe
        fake.slow_s = 0.0
        assert slow_visit in settlement.retry_unsettled(c)
        with c.sessions() as s:
            payment = s.scalars(select(Payment).where(Payment.visit_id == slow_visit)).one()
        assert payment.state == "succeeded"
        assert len(fake.intents) == 2  # the retry replayed the first intent by its idempotency key
        assert fake.captured() == 2 * 1405

        receipt = client.get("/v1/shoppers/me/receipts", headers=w.shopper("alice")).json()[0]
        d = client.post(
            f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes",
            json={"sku": "1004", "reason": "one was for my friend, who paid"},
            headers=w.shopper("alice"),
        )
        assert d.json()["state"] == "pending_staff"  # 7.02 is over the automatic limit
        r = client.post(f"/v1/staff/disputes/{d.json()['dispute_id']}/decision", json={"approve": True},
                        headers=w.auth(w.staff["manager"]))  # fmt: skip
        assert r.json()["state"] == "refunded"
        (refund,) = fake.refunds.values()
        assert refund["amount"] == int(r.json()["amount"].replace(".", ""))


def test_a_stripe_decline_flags_the_account(fake: FakeStripe, stripe_container: Container) -> None:
    c = stripe_container
    w = make_world(c, tokens={"alice": "pm_card_chargeDeclined"})
    with TestClient(create_app(container=c)) as client:
        visit_id = enter(client, w)
        put_cart(client, w, visit_id, cart_body(w, visit_id, [("1003", 1, "confirmed")]))
        assert client.get("/v1/shoppers/me", headers=w.shopper("alice")).json()["standing"] == "flagged"
    assert fake.captured() == 0
