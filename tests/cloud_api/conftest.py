"""Cloud API fixtures: PostgreSQL when DATABASE_URL is set (a fresh schema for this session, dropped at
the end), otherwise a SQLite file in a temporary folder. Every test builds its own store, devices and
accounts with fresh ids, so tests share the schema without seeing each other's rows."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from cloud_api.adapters.payments import PaymentGateway, TestModePaymentGateway
from cloud_api.core.config import Settings, normalize_database_url
from cloud_api.core.security import hash_api_key, new_api_key
from cloud_api.db import migrate
from cloud_api.db.models import Account, Device, Gate, Product, Promotion, Staff, Store
from cloud_api.db.session import make_engine
from cloud_api.main import create_app
from cloud_api.services.container import Container, build_container

PRODUCTS = {  # sku: (name, price)
    "1001": ("Cola can", "1.39"),
    "1002": ("Water 500 ml", "2.69"),
    "1003": ("Chocolate bar", "0.99"),
    "1004": ("Sandwich", "6.49"),
}
PROMOTIONS = {"1001": (3, "3.49")}
TAX_RATE = "0.0825"


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("cloud")
    url = os.environ.get("DATABASE_URL")
    schema = None
    if url:
        url = normalize_database_url(url)
        schema = f"cloudtest_{secrets.token_hex(6)}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    else:
        url = f"sqlite:///{data_dir / 'cloud.db'}"
    settings = Settings(
        database_url=url,
        secret_key=secrets.token_urlsafe(32),
        webhook_secret=secrets.token_urlsafe(32),
        db_schema=schema,
        data_dir=Path(data_dir),
        public_url="http://testserver",
        webhook_first_backoff_s=0.0,
    )
    try:
        yield settings
    finally:
        if schema is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


@pytest.fixture(scope="session")
def engine(base_settings: Settings) -> Iterator[Engine]:
    eng = make_engine(base_settings)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


class Clock:
    """A settable clock: real time plus an offset, so tests can step past expiries."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns

    def advance(self, seconds: float) -> None:
        self.offset_ns += round(seconds * 1e9)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway() -> TestModePaymentGateway:
    return TestModePaymentGateway()


def make_container(settings: Settings, engine: Engine, gateway: PaymentGateway, clock: Clock) -> Container:
    c = build_container(settings, gateway, engine=engine)
    c.now_ns = clock
    return c


@pytest.fixture
def container(base_settings: Settings, engine: Engine, gateway: TestModePaymentGateway, clock: Clock) -> Container:
    return make_container(base_settings, engine, gateway, clock)


@pytest.fixture
def app(container: Container) -> FastAPI:
    return create_app(container=container)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as tc:
        yield tc


@dataclass
class World:
    """One store with a gate, two devices, shoppers and staff; keys in clear for the test."""

    store_id: str
    gate_id: str
    gate_key: str
    edge_key: str
    shoppers: dict[str, tuple[str, str]]  # name -> (account_id, key)
    staff: dict[str, str]  # role -> key

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def shopper(self, name: str) -> dict[str, str]:
        return self.auth(self.shoppers[name][1])

    def account(self, name: str) -> str:
        return self.shoppers[name][0]


def make_world(c: Container, tokens: dict[str, str | None] | None = None, preauth: Decimal = Decimal("0")) -> World:
    tag = secrets.token_hex(4)
    store_id = f"s{tag}"
    now = c.now_ns()
    tokens = tokens or {"alice": "tok_visa", "bob": "tok_visa"}
    shoppers: dict[str, tuple[str, str]] = {}
    staff: dict[str, str] = {}
    gate_key, edge_key = new_api_key("dev"), new_api_key("dev")
    with c.transaction() as s:
        s.add(
            Store(
                id=store_id,
                name=f"Test store {tag}",
                currency="USD",
                tax_rate=TAX_RATE,
                preauth_cents=int(preauth * 100),
                created_ns=now,
            )
        )
        s.flush()
        for sku, (name, price) in PRODUCTS.items():
            s.add(Product(store_id=store_id, sku=sku, name=name, price_cents=int(Decimal(price) * 100)))
        for sku, (qty, price) in PROMOTIONS.items():
            s.add(Promotion(store_id=store_id, sku=sku, quantity=qty, price_cents=int(Decimal(price) * 100)))
        s.add(Gate(id=f"entry-{tag}", store_id=store_id))
        s.add(Device(id=f"gate-{tag}", store_id=store_id, kind="gate", key_hash=hash_api_key(gate_key), created_ns=now))
        s.add(Device(id=f"edge-{tag}", store_id=store_id, kind="edge", key_hash=hash_api_key(edge_key), created_ns=now))
        for name, token in tokens.items():
            key = new_api_key("shp")
            account_id = f"a-{name}-{tag}"
            s.add(
                Account(
                    id=account_id,
                    email=f"{name}-{tag}@example.com",
                    name=name.title(),
                    key_hash=hash_api_key(key),
                    payment_token=token,
                    created_ns=now,
                )
            )
            shoppers[name] = (account_id, key)
        for role in ("reviewer", "manager", "admin"):
            key = new_api_key("stf")
            s.add(
                Staff(
                    id=f"{role}-{tag}",
                    name=role,
                    role=role,
                    store_id=None if role == "admin" else store_id,
                    key_hash=hash_api_key(key),
                    created_ns=now,
                )
            )
            staff[role] = key
    return World(store_id, f"entry-{tag}", gate_key, edge_key, shoppers, staff)


@pytest.fixture
def world(container: Container) -> World:
    return make_world(container)


def enter(client: TestClient, w: World, shopper: str = "alice", party_size: int = 1) -> str:
    """The shopper gets a code and the gate opens a visit; returns the visit id."""
    code = client.post("/v1/shoppers/me/entry-codes", headers=w.shopper(shopper)).json()["token"]
    r = client.post(
        f"/v1/gates/{w.gate_id}/scans", json={"token": code, "party_size": party_size}, headers=w.auth(w.gate_key)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "open", body
    visit_id: str = body["visit_id"]
    return visit_id


def cart_body(
    w: World, visit_id: str, lines: list[tuple[str, int, str]], account_id: str | None = None
) -> dict[str, object]:
    """The edge's settlement payload; lines are (sku, quantity, status)."""
    now = time.time_ns()
    cart_lines = [
        {
            "line_id": f"L{i}",
            "sku": sku,
            "quantity": q,
            "confidence": 0.99 if st == "confirmed" else 0.5,
            "event_ids": [f"e{i}"],
            "status": st,
        }
        for i, (sku, q, st) in enumerate(lines)
    ]
    receipt: dict[str, int] = {}
    for sku, q, st in lines:
        if st == "confirmed":
            receipt[sku] = receipt.get(sku, 0) + q
    return {
        "store_id": w.store_id,
        "visit_id": visit_id,
        "account_id": account_id,
        "closed_ns": now,
        "receipt": [{"sku": s, "quantity": q} for s, q in receipt.items()],
        "cart": {
            "kind": "cart_update",
            "header": {"device_id": "edge-1", "boot_id": "b1", "seq": 7, "ts_ns": now},
            "visit_id": visit_id,
            "version": 3,
            "state": "closed",
            "lines": cart_lines,
        },
    }


def put_cart(client: TestClient, w: World, visit_id: str, body: dict[str, object]) -> dict[str, object]:
    r = client.put(f"/v1/edge/carts/{visit_id}", json=body, headers=w.auth(w.edge_key) | {"Idempotency-Key": visit_id})
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """The app under a real uvicorn server in a thread (for concurrent requests and schemathesis)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
