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


def _ticket_for_l3(visit_id: str) -> m.ReviewTicket:
    """A ticket as the edge sends it for line L3, with the plate's readings and where the candidate stood."""
    return m.ReviewTicket(
        header=m.Header(device_id="edge-1", boot_id="boot-1", seq=11, ts_ns=time.time_ns()),
        ticket_id="T1",
        event_id="ev3",
        reason="two shoppers at the plate",
        shelf_id="G1-S1",
        plate_ids=["G1-S1-P01"],
        products=[m.ProductCandidate(sku="1003", quantity=1, probability=0.9)],
        shoppers=[m.ShopperCandidate(visit_id=visit_id, probability=0.45)],
        window_ns=(1_000_000_000, 2_000_000_000),
        evidence=m.TicketEvidence(
            traces=[
                m.PlateTrace(
                    plate_id="G1-S1-P01", t0_ns=900_000_000, period_ns=16_666_667,
                    grams=[812.4, None, 812.1, 771.0, 770.8],
                )
            ],
            shoppers=[
                m.ShopperPath(
                    visit_id=visit_id, track_id="t7", probability=0.45, points=[(1_000_000_000, 2.1, 3.4)], hands=[]
                )
            ],
        ),
    )  # fmt: skip


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
        outbox.put(visit_id, _settlement_payload(world.store_id, cart, msg, [_ticket_for_l3(visit_id)]))
        sender = CloudSender(outbox, server.url, world.edge_key)
        assert sender.send_due() == 1
        assert outbox.depth() == 0
        assert gateway.captured_total() == 0  # one line is under review: nothing charged yet

        # the reviewer sees the ticket with its evidence, as the edge sent it
        detail = http.get(f"/v1/staff/visits/{visit_id}", headers=world.auth(world.staff["reviewer"])).json()
        (ticket,) = detail["tickets"]
        assert ticket == m.ReviewTicket.model_validate(ticket).model_dump(mode="json")
        assert ticket["ticket_id"] == "T1"
        assert ticket["evidence"]["traces"][0]["grams"] == [812.4, None, 812.1, 771.0, 770.8]
        assert ticket["evidence"]["shoppers"][0]["points"][0] == [1_000_000_000, 2.1, 3.4]

        r = http.post(f"/v1/staff/visits/{visit_id}/lines/L3/decision", json={"action": "confirm"},
                      headers=world.auth(world.staff["reviewer"]))  # fmt: skip
        assert r.json()["visit_state"] == "settled"
        # 3 colas 3.49 + water 2.69 + bar 0.99 = 7.17; tax 0.59; total 7.76
        assert gateway.captured_total() == 776
