"""Limits per caller: key guessing (401s per client address), entry-code brute force (forged or malformed
codes per gate device), and request body size. Every refusal is JSON with a message; 429 says when to
come back (Retry-After)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.main import create_app
from tests.cloud_api.conftest import Clock, World, cart_body, make_container, make_world


class StoppedClock(Clock):
    """Time moves only when the test says: the buckets refill at 10 tokens a second, and a slow shared CI
    box took over 0.1 s for a few requests (a token came back mid-test)."""

    def __init__(self) -> None:
        super().__init__()
        self.start_ns = time.time_ns()

    def __call__(self) -> int:
        return self.start_ns + self.offset_ns


@pytest.fixture
def stopped() -> StoppedClock:
    return StoppedClock()


@pytest.fixture
def limited(
    base_settings: Settings, engine: Engine, gateway: TestModePaymentGateway, stopped: StoppedClock
) -> Iterator[tuple[TestClient, World]]:
    settings = base_settings.with_(
        auth_failure_burst=5, auth_failures_per_minute=600, bad_code_burst=3, bad_codes_per_minute=600,
        max_body_bytes=20_000,
    )  # fmt: skip
    c = make_container(settings, engine, gateway, stopped)
    with TestClient(create_app(container=c)) as client:
        yield client, make_world(c)


def _code(client: TestClient, w: World) -> str:
    token: str = client.post("/v1/shoppers/me/entry-codes", headers=w.shopper("alice")).json()["token"]
    return token


def test_guessing_keys_is_slowed_down_then_allowed_again(
    limited: tuple[TestClient, World], stopped: StoppedClock
) -> None:
    client, w = limited
    answers = [client.get("/v1/shoppers/me/visits", headers=w.auth(f"shp_guess{i}")).status_code for i in range(7)]
    assert answers == [401] * 5 + [429] * 2
    r = client.get("/v1/shoppers/me/visits", headers=w.shopper("alice"))  # the address is slowed, whoever asks
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "unknown keys" in r.json()["message"]
    stopped.advance(0.3)  # 600 a minute: a token every 0.1 s
    assert client.get("/v1/shoppers/me/visits", headers=w.shopper("alice")).status_code == 200


def test_valid_keys_are_never_slowed(limited: tuple[TestClient, World]) -> None:
    client, w = limited
    assert {client.get("/v1/shoppers/me/visits", headers=w.shopper("alice")).status_code for _ in range(30)} == {200}


def test_brute_forcing_codes_at_a_gate_is_refused(limited: tuple[TestClient, World], stopped: StoppedClock) -> None:
    client, w = limited
    forged = _code(client, w)[:-4] + "AAAA"

    def scan(token: str) -> tuple[int, str]:
        r = client.post(f"/v1/gates/{w.gate_id}/scans", json={"token": token}, headers=w.auth(w.gate_key))
        body = r.json()
        return r.status_code, str(body.get("reason") or body.get("message"))

    assert [scan(forged), scan("garbage"), scan(forged)] == [(200, "forged"), (200, "malformed"), (200, "forged")]
    status, message = scan(_code(client, w))  # even a good code waits: the gate is being brute-forced
    assert status == 429
    assert "forged or malformed" in message
    stopped.advance(0.3)
    assert scan(_code(client, w)) == (200, "None")  # opened: no reason


def test_a_busy_gate_with_valid_codes_is_not_slowed(limited: tuple[TestClient, World]) -> None:
    client, w = limited
    for _ in range(12):
        r = client.post(f"/v1/gates/{w.gate_id}/scans", json={"token": _code(client, w)}, headers=w.auth(w.gate_key))
        assert (r.status_code, r.json()["decision"]) == (200, "open")


def test_oversized_bodies_are_refused_with_413(limited: tuple[TestClient, World]) -> None:
    client, w = limited
    body = cart_body(w, "v-big", [("1001", 1, "confirmed")] * 200)  # about 30 kB
    headers = w.auth(w.edge_key) | {"Content-Type": "application/json"}
    r = client.put("/v1/edge/carts/v-big", json=body, headers=headers)
    assert r.status_code == 413
    assert "limit is 20000" in r.json()["message"]
    chunks = iter([b"{" + b" " * 15_000, b" " * 15_000 + b"}"])  # no Content-Length: sent in chunks
    r = client.put("/v1/edge/carts/v-big", content=chunks, headers=headers)
    assert r.status_code == 413
    assert "over the limit" in r.json()["message"]
    small = cart_body(w, "v-small", [("1001", 1, "confirmed")])
    assert client.put("/v1/edge/carts/v-small", json=small, headers=headers).status_code == 200
