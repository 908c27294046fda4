from __future__ import annotations

import email
import json
import threading
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cloud_api.adapters.notify import SIGNATURE_HEADER, verify_webhook_signature
from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.db.models import Delivery
from cloud_api.main import create_app
from cloud_api.services import receipts
from cloud_api.services.container import Container
from tests.cloud_api.conftest import Clock, World, cart_body, enter, free_port, make_container, make_world, put_cart

BASKET = [("1001", 3, "confirmed"), ("1002", 1, "confirmed")]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content, _class=EmailMessage, policy=policy.default),
            )
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class _Receiver:
    """A real HTTP server for webhooks: answers 500 to the first `fail_first` requests of each delivery."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = json.loads(body)["delivery_id"]
                seen = sum(1 for r in outer.requests if json.loads(r[1])["delivery_id"] == key)
                code = 500 if seen < outer.fail_first else 204
                outer.requests.append((dict(self.headers.items()), body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/receipts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def for_receipt(self, receipt_id: str) -> list[tuple[dict[str, str], bytes, int]]:
        """Requests about one receipt (other tests' pending deliveries share the database)."""
        return [r for r in self.requests if json.loads(r[1])["delivery_id"] == f"receipt-{receipt_id}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver(fail_first=2)
    yield r
    r.close()


@pytest.fixture
def notifying(
    base_settings: Settings,
    engine: Engine,
    gateway: TestModePaymentGateway,
    clock: Clock,
    smtp: tuple[_Inbox, int],
    receiver: _Receiver,
) -> Iterator[Container]:
    settings = base_settings.with_(smtp_host="127.0.0.1", smtp_port=smtp[1], webhook_url=receiver.url)
    c = make_container(settings, engine, gateway, clock)
    yield c
    c.close()


def _settle(client: TestClient, w: World) -> tuple[str, dict[str, Any]]:
    visit_id = enter(client, w)
    put_cart(client, w, visit_id, cart_body(w, visit_id, BASKET))
    (receipt,) = client.get("/v1/shoppers/me/receipts", headers=w.shopper("alice")).json()
    return visit_id, receipt


def test_receipt_is_emailed_over_smtp_with_a_working_signed_link(
    notifying: Container, smtp: tuple[_Inbox, int]
) -> None:
    inbox, _ = smtp
    w = make_world(notifying)
    with TestClient(create_app(container=notifying)) as client:
        _, receipt = _settle(client, w)
        assert len(inbox.messages) == 1
        sender, rcpts, msg = inbox.messages[0]
        assert rcpts == [f"alice-{w.store_id[1:]}@example.com"]
        assert sender == notifying.settings.smtp_from
        assert "USD 6.69" in str(msg["Subject"])  # 3 colas 3.49 + water 2.69 = 6.18 + 0.51 tax
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert isinstance(text, EmailMessage)
        assert isinstance(html, EmailMessage)
        assert "3 x Cola can" in text.get_content()
        assert "Water 500 ml" in html.get_content()
        link = receipt["web_url"]
        assert link in text.get_content()
        page = client.get(link.replace("http://testserver", ""))
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "6.69" in page.text
        assert "Cola can (3 for 3.49)" in page.text
        forged = client.get(link.replace("http://testserver", "")[:-4] + "0000")
        assert forged.status_code == 403
        other = client.get(link.replace("http://testserver", "").replace(receipt["receipt_id"], "r-other"))
        assert other.status_code == 403


def test_receipt_webhook_is_signed_and_retried_until_delivered(notifying: Container, receiver: _Receiver) -> None:
    w = make_world(notifying)
    with TestClient(create_app(container=notifying)) as client:
        _, receipt = _settle(client, w)
    rid = receipt["receipt_id"]
    assert len(receiver.for_receipt(rid)) == 1  # first attempt at once, answered 500
    for _ in range(3):
        receipts.deliver_pending(notifying)
    assert [code for _, _, code in receiver.for_receipt(rid)] == [500, 500, 204]
    headers, body, _ = receiver.for_receipt(rid)[-1]
    assert verify_webhook_signature(notifying.settings.webhook_secret, headers[SIGNATURE_HEADER], body, time.time())
    assert not verify_webhook_signature("wrong secret", headers[SIGNATURE_HEADER], body, time.time())
    assert not verify_webhook_signature(
        notifying.settings.webhook_secret, headers[SIGNATURE_HEADER], body + b" ", time.time()
    )
    event = json.loads(body)
    assert event["event"] == "receipt.created"
    assert event["data"]["receipt_id"] == receipt["receipt_id"]
    assert event["data"]["total"] == "6.69"
    assert event["data"]["account_id"] == w.account("alice")
    assert headers["Idempotency-Key"] == f"receipt-{receipt['receipt_id']}"
    with notifying.sessions() as s:
        rows = {d.channel: d for d in s.scalars(select(Delivery).where(Delivery.receipt_id == receipt["receipt_id"]))}
    assert (rows["webhook"].state, rows["webhook"].attempts) == ("sent", 3)
    assert (rows["email"].state, rows["email"].attempts) == ("sent", 1)
    receipts.deliver_pending(notifying)
    assert len(receiver.for_receipt(rid)) == 3  # sent means sent: nothing goes twice


def test_a_webhook_that_keeps_failing_stops_after_the_attempt_limit(notifying: Container, receiver: _Receiver) -> None:
    receiver.fail_first = 100
    w = make_world(notifying)
    with TestClient(create_app(container=notifying)) as client:
        _, receipt = _settle(client, w)
    for _ in range(10):
        receipts.deliver_pending(notifying)
    assert len(receiver.for_receipt(receipt["receipt_id"])) == notifying.settings.webhook_attempts
    with notifying.sessions() as s:
        hook = s.scalars(
            select(Delivery).where(Delivery.receipt_id == receipt["receipt_id"], Delivery.channel == "webhook")
        ).one()
    assert hook.state == "failed"
    assert "HTTP 500" in (hook.last_error or "")


def test_a_shopper_cannot_read_another_shoppers_receipt(client: TestClient, world: World) -> None:
    _, receipt = _settle(client, world)
    mine = client.get(f"/v1/shoppers/me/receipts/{receipt['receipt_id']}", headers=world.shopper("alice"))
    assert mine.status_code == 200
    assert mine.json()["total"] == "6.69"
    theirs = client.get(f"/v1/shoppers/me/receipts/{receipt['receipt_id']}", headers=world.shopper("bob"))
    assert theirs.status_code == 404
    assert client.get("/v1/shoppers/me/receipts", headers=world.shopper("bob")).json() == []
    assert client.get("/v1/shoppers/me/visits", headers=world.shopper("bob")).json() == []
    assert (
        client.get(f"/v1/shoppers/me/receipts/{receipt['receipt_id']}", headers=world.auth(world.gate_key)).status_code
        == 401
    )


def test_a_declined_visit_gets_a_declined_receipt_then_a_paid_one(
    notifying: Container, smtp: tuple[_Inbox, int], receiver: _Receiver
) -> None:
    receiver.fail_first = 0
    inbox, _ = smtp
    w = make_world(notifying, tokens={"alice": "tok_decline"})
    with TestClient(create_app(container=notifying)) as client:
        visit_id, receipt = _settle(client, w)
        assert receipt["payment_state"] == "declined"
        client.put("/v1/shoppers/me/payment-method", json={"token": "tok_visa"}, headers=w.shopper("alice"))
        paid = client.post(f"/v1/shoppers/me/visits/{visit_id}/payment", headers=w.shopper("alice"))
        assert paid.json()["state"] == "settled"
    subjects = [
        str(msg["Subject"]) for _, rcpts, msg in inbox.messages if rcpts == [f"alice-{w.store_id[1:]}@example.com"]
    ]
    assert len(subjects) == 2
    assert subjects[0].startswith("Payment declined")
    assert subjects[1].startswith("Paid, thank you")
    hooks = [json.loads(body) for _, body, _ in receiver.requests if json.loads(body)["data"]["visit_id"] == visit_id]
    assert [(h["event"], h["data"]["payment_state"]) for h in hooks] == [
        ("receipt.created", "declined"),
        ("receipt.paid", "succeeded"),
    ]
    assert hooks[0]["delivery_id"] != hooks[1]["delivery_id"]


def test_the_receipt_link_is_stable_and_expires(client: TestClient, world: World, clock: Clock) -> None:
    _, receipt = _settle(client, world)
    url = f"/v1/shoppers/me/receipts/{receipt['receipt_id']}"
    clock.advance(5)
    assert client.get(url, headers=world.shopper("alice")).json()["web_url"] == receipt["web_url"]
    link = receipt["web_url"].replace("http://testserver", "")
    assert client.get(link).status_code == 200
    clock.advance(91 * 24 * 3600)
    r = client.get(link)
    assert r.status_code == 403
    assert "expired" in r.json()["message"]
