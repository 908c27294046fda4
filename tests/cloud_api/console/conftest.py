"""Console fixtures: a world whose staff have passwords, a ticket with evidence, and a logged-in client."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from fastapi.testclient import TestClient

from cloud_api.db.models import Store
from cloud_api.services import staff_auth
from cloud_api.services.container import Container
from cloud_api.services.seed import floor_map
from store_edge.layout import load_store
from tests.cloud_api.conftest import World, cart_body, enter, make_world, put_cart
from tests.conftest import DEMO_STORE

PASSWORD = "correct horse battery"
PLATE = "G1-S1-P01"  # a plate of the demo store, so the floor map has it


def staff_login(w: World, role: str) -> str:
    return f"{role}-{w.store_id[1:]}"


def console_world(c: Container) -> World:
    """A world whose reviewer and manager can log in, with the demo store's floor map."""
    w = make_world(c)
    with c.transaction() as s:
        store = s.get(Store, w.store_id)
        assert store is not None
        store.floor_map = floor_map(load_store(DEMO_STORE))
    for role in ("reviewer", "manager", "admin"):
        staff_auth.set_password(c, staff_login(w, role), PASSWORD)
    return w


def login(client: TestClient, w: World, role: str = "reviewer") -> None:
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    r = client.post(
        "/console/login",
        data={"login": staff_login(w, role), "password": PASSWORD, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/queue"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


@dataclass
class TicketCase:
    """Alice's visit holds one uncertain line (a sandwich) that Bob probably took; Bob's visit is settled."""

    alice_visit: str
    bob_visit: str
    line_id: str


def ticket_case(client: TestClient, w: World) -> TicketCase:
    alice, bob = enter(client, w, "alice"), enter(client, w, "bob")
    put_cart(client, w, bob, cart_body(w, bob, [("1002", 1, "confirmed")], w.account("bob")))
    body = cart_body(w, alice, [("1003", 1, "confirmed"), ("1004", 1, "under_review")], w.account("alice"))
    now = time.time_ns()
    start = now - 5 * 10**9
    period = 10**9 // 60
    grams = [1500.0] * 120 + [1500.0 - 250 * i / 30 for i in range(30)] + [1250.0] * 150  # a 250 g sandwich taken
    body["tickets"] = [
        {
            "kind": "review_ticket",
            "header": {"device_id": "edge-1", "boot_id": "b1", "seq": 9, "ts_ns": now},
            "ticket_id": "T1",
            "event_id": "e1",
            "reason": "two shoppers at the shelf",
            "shelf_id": "G1-S1",
            "plate_ids": [PLATE],
            "products": [
                {"sku": "1004", "quantity": 1, "probability": 0.7},
                {"sku": "1003", "quantity": 2, "probability": 0.3},
            ],
            "shoppers": [{"visit_id": alice, "probability": 0.55}, {"visit_id": bob, "probability": 0.45}],
            "window_ns": [start + 2 * 10**9, start + 2 * 10**9 + 30 * period],
            "evidence": {
                "traces": [{"plate_id": PLATE, "t0_ns": start, "period_ns": period, "grams": grams}],
                "shoppers": [
                    {"visit_id": alice, "track_id": "t1", "probability": 0.55, "hands": [],
                     "points": [(start + i * 10**8, 2.0 + 0.02 * i, 3.0) for i in range(50)]},
                    {"visit_id": bob, "track_id": "t2", "probability": 0.45, "hands": [],
                     "points": [(start + i * 10**8, 3.5, 2.0 + 0.01 * i) for i in range(50)]},
                ],
            },
        }
    ]  # fmt: skip
    put_cart(client, w, alice, body)
    return TicketCase(alice, bob, "L1")
