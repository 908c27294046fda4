"""The cloud side of the fault tests: the demo store in a cloud database, the visits the edge's
recording opens, and what was charged."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cloud_api.core.security import hash_api_key, new_api_key
from cloud_api.db.models import Account, Device, Payment, Receipt, Visit
from cloud_api.services.container import Container
from cloud_api.services.seed import StoreConfig, seed
from store_edge.live.state import Outbox
from tests.conftest import DEMO_STORE


@dataclass
class EdgeCart:
    visit_id: str
    account_id: str
    payload: bytes
    confirmed: Counter[str]
    under_review: int


def outbox_carts(outbox: Outbox) -> list[EdgeCart]:
    """The carts waiting in the edge's outbox."""
    carts = []
    for item in outbox.due(time.time_ns() + 10**15, limit=10_000):
        body: dict[str, Any] = json.loads(item.payload)
        lines = body["cart"]["lines"]
        confirmed: Counter[str] = Counter()
        for line in lines:
            if line["status"] == "confirmed":
                confirmed[line["sku"]] += line["quantity"]
        under_review = sum(1 for line in lines if line["status"] == "under_review")
        carts.append(EdgeCart(item.visit_id, body["account_id"], item.payload, +confirmed, under_review))
    return carts


def demo_store_in_cloud(c: Container) -> str:
    """The demo store's catalogue (no promotions) and an edge device of this test's own; its key."""
    seed(c, DEMO_STORE, StoreConfig(), demo_accounts=False)
    key = new_api_key("dev")
    with c.transaction() as s:
        s.add(
            Device(
                id=f"edge-{secrets.token_hex(4)}",
                store_id="demo",
                kind="edge",
                key_hash=hash_api_key(key),
                created_ns=c.now_ns(),
            )
        )
    return key


def open_visits(c: Container, accounts: dict[str, str]) -> None:
    """What the gate did when each shopper came in (`accounts`: visit id -> account id): an account with
    a card and an open visit."""
    now = c.now_ns()
    with c.transaction() as s:
        for visit_id, account_id in accounts.items():
            s.add(
                Account(
                    id=account_id,
                    email=f"{account_id}@example.com",
                    name=account_id,
                    key_hash=hash_api_key(new_api_key("shp")),
                    payment_token="tok_visa",
                    created_ns=now,
                )
            )
            s.flush()
            s.add(Visit(id=visit_id, store_id="demo", account_id=account_id, state="open", opened_ns=now))


@dataclass
class Settled:
    state: str
    payments: int
    charged_cents: int
    receipt_lines: Counter[str] | None


def settled_visits(c: Container, visit_ids: list[str]) -> dict[str, Settled]:
    out = {}
    with c.sessions() as s:
        for visit_id in visit_ids:
            visit = s.get(Visit, visit_id)
            assert visit is not None, f"visit {visit_id} lost"
            payments = list(s.scalars(select(Payment).where(Payment.visit_id == visit_id)))
            receipts = list(s.scalars(select(Receipt).where(Receipt.visit_id == visit_id)))
            assert len(receipts) <= 1, f"visit {visit_id} has {len(receipts)} receipts"
            lines = Counter({ln["sku"]: ln["quantity"] for ln in receipts[0].lines}) if receipts else None
            out[visit_id] = Settled(
                visit.state,
                len(payments),
                sum(p.amount_cents for p in payments if p.state == "succeeded"),
                lines,
            )
    return out
