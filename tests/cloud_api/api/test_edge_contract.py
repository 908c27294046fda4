"""The edge's own code against the cloud: the settlement payload the live worker builds
(`_settlement_payload`, `cart_message`) sent by its `CloudSender` from its SQLite outbox to a real
uvicorn server, with the edge's device key."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.services.container import Container
from store_edge.fusion.engine import Cart
from store_edge.fusion.engine import CartLine as EdgeLine
from store_edge.live.cloud import CloudSender
from store_edge.live.state import Outbox
from store_edge.live.worker import _settlement_payload, cart_message
from store_edge.protocol import messages as m
from tests.cloud_api.conftest import LiveServer, World, make_world


def _edge_cart(visit_id: str, account_id: str | None) -> tuple[Cart, m.CartUpdate]:
    cart = Cart(visit_id=visit_id, account_id=account_id, version=4, state="closed", closed_ns=time.time_ns())
    cart.lines = [
        EdgeLine("L1", "1001", 3, 0.97, "ev1", "confirmed", [], []),
        EdgeLine("L2", "1002", 1, 0.95, "ev2", "confirmed", [], []),
        EdgeLine("L3", "1003", 1, 0.41, "ev3", "under_review", [], []),
    ]
    header = m.Header(device_id="edge-1", boot_id="boot-1", seq=12, ts_ns=time.time_ns())
    return cart, cart_message(cart, header)


def _last_error(outbox_path: Path, visit_id: str) -> str | None:
    with sqlite3.connect(outbox_path) as conn:
        row = conn.execute("SELECT last_error FROM outbox WHERE visit_id = ?", (visit_id,)).fetchone()
    return None if row is None else row[0]


def test_the_edge_sender_delivers_a_cart_that_waits_for_review_then_is_charged(
    app: FastAPI, world: World, container: Container, gateway: TestModePaymentGateway, tmp_path: Path
) -> None:
    other = make_world(container)
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as http:
        code = http.post("/v1/shoppers/me/entry-codes", headers=world.shopper("alice")).json()["token"]
        scan = http.post(f"/v1/gates/{world.gate_id}/scans", json={"token": code}, headers=world.auth(world.gate_key))
        visit_id = m.GateDecision(header=m.Header(device_id="g", boot_id="b", seq=0, ts_ns=0), gate_id="entry-1",
                                  **scan.json()).visit_id  # fmt: skip
        assert visit_id is not None  # the id the gate answered fits the edge's GateDecision
        cart, msg = _edge_cart(visit_id, world.account("alice"))

        wrong = tmp_path / "wrong.db"
        outbox = Outbox(wrong)
        outbox.put(visit_id, _settlement_payload(world.store_id, cart, msg))
        assert CloudSender(outbox, server.url, other.edge_key).send_due() == 0
        assert (_last_error(wrong, visit_id) or "").startswith("HTTP 403")

        path = tmp_path / "outbox.db"
        outbox = Outbox(path)
        outbox.put(visit_id, _settlement_payload(world.store_id, cart, msg))
        sender = CloudSender(outbox, server.url, world.edge_key)
        assert sender.send_due() == 1
        assert outbox.depth() == 0
        assert gateway.captured_total() == 0  # one line is under review: nothing charged yet

        r = http.post(f"/v1/staff/visits/{visit_id}/lines/L3/decision", json={"action": "confirm"},
                      headers=world.auth(world.staff["reviewer"]))  # fmt: skip
        assert r.json()["visit_state"] == "settled"
        # 3 colas 3.49 + water 2.69 + bar 0.99 = 7.17; tax 0.59; total 7.76
        assert gateway.captured_total() == 776
