"""Limits per caller: key guessing (401s per client address), entry-code brute force (forged or malformed
codes per gate device), and request body size. Every refusal is JSON with a message; 429 says when to
come back (Retry-After). The buckets are rows in the database, shared by every app (worker process) on it:
each test calls from an address of its own."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.core.ratelimit import Limit, SharedBuckets
from cloud_api.db.models import RateLimitBucket
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


def _limits(base_settings: Settings) -> Settings:
    return base_settings.with_(
        auth_failure_burst=5, auth_failures_per_minute=600, bad_code_burst=3, bad_codes_per_minute=600,
        max_body_bytes=20_000,
    )  # fmt: skip


def _address() -> tuple[str, int]:
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}", 50000


@pytest.fixture
def limited(
    base_settings: Settings, engine: Engine, gateway: TestModePaymentGateway, stopped: StoppedClock
) -> Iterator[tuple[TestClient, World]]:
    c = make_container(_limits(base_settings), engine, gateway, stopped)
    with TestClient(create_app(container=c), client=_address()) as client:
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


def test_two_server_processes_share_one_budget(
    base_settings: Settings, engine: Engine, gateway: TestModePaymentGateway, stopped: StoppedClock
) -> None:
    """Two apps on one database, as two `--workers` processes or two API machines are: guesses spread over
    both get 429 after the burst in all, not after a burst on each."""
    containers = [make_container(_limits(base_settings), engine, gateway, stopped) for _ in range(2)]
    address = _address()
    with (
        TestClient(create_app(container=containers[0]), client=address) as one,
        TestClient(create_app(container=containers[1]), client=address) as two,
    ):
        w = make_world(containers[0])
        forged = _code(one, w)[:-4] + "AAAA"
        scans = [
            (one, two)[i % 2].post(f"/v1/gates/{w.gate_id}/scans", json={"token": forged}, headers=w.auth(w.gate_key))
            for i in range(4)
        ]
        assert [r.status_code for r in scans] == [200, 200, 200, 429]  # burst 3 forged codes
        guesses = [(one, two)[i % 2].get("/v1/shoppers/me/visits", headers=w.auth(f"shp_guess{i}")) for i in range(7)]
        assert [r.status_code for r in guesses] == [401] * 5 + [429] * 2
        assert two.get("/v1/shoppers/me/visits", headers=w.shopper("alice")).status_code == 429
        stopped.advance(0.3)
        assert one.get("/v1/shoppers/me/visits", headers=w.shopper("alice")).status_code == 200


def test_concurrent_takes_each_count(engine: Engine, stopped: StoppedClock) -> None:
    """Takes at the same moment, each on its own connection as from separate processes: none is lost."""
    buckets = SharedBuckets(engine, clock=lambda: stopped() / 1e9)
    limit = Limit("test", burst=100, per_minute=0)  # no refill
    key = _address()[0]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: buckets.take(limit, key), range(40)))
    with engine.connect() as conn:
        row = select(RateLimitBucket.tokens).where(RateLimitBucket.name == limit.name, RateLimitBucket.key == key)
        assert conn.execute(row).scalar_one() == 60.0
    assert buckets.retry_after_s(limit, key) is None
    for _ in range(60):
        buckets.take(limit, key)
    assert buckets.retry_after_s(limit, key) == 3600  # no refill: an hour


def test_rows_back_to_full_are_pruned(engine: Engine, stopped: StoppedClock) -> None:
    buckets = SharedBuckets(engine, clock=lambda: stopped() / 1e9)
    limit = Limit("test", burst=2, per_minute=600)  # full again 0.2 s after a take
    idle, busy = _address()[0], _address()[0]
    buckets.take(limit, idle)
    stopped.advance(0.3)
    buckets.take(limit, busy)
    buckets.prune(limit, stopped() / 1e9)
    with engine.connect() as conn:
        rows = select(RateLimitBucket.key).where(
            RateLimitBucket.name == limit.name, RateLimitBucket.key.in_([idle, busy])
        )
        assert set(conn.execute(rows).scalars()) == {busy}
