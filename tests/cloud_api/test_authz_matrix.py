"""Who may call what: every route of the app x every kind of caller, in one table.

The routes are read from `app.routes`, so a route added without a row here fails the test. Each cell
is what the caller must get:

  ok     a 2xx (or, on the console, a redirect that is not to the login page): allowed and done
  409    allowed, refused by the state of the thing (e.g. no failed payment to retry)
  401    not identified (no key, or a key of the wrong kind)
  403    identified, not allowed (role, store, device kind, missing CSRF token)
  404    a shopper asking for another shopper's visit or receipt: it does not exist for them
  login  a console page without a console session: redirected to the login page

Callers: no key; the edge worker's and the gate's device keys of store A; store B's gate key; Alice
(a shopper, acting on her own visit and receipt) and Bob (a shopper of the same store, acting on
Alice's); a reviewer of store A, a reviewer and a manager of store B, a manager of store A, an admin
(every store); and console sessions (cookie plus the session's CSRF token) of a reviewer of A, a
reviewer of B and a manager of A. Each allowed call that changes something gets a thing of its own
(a line, a dispute, a visit, a device), so every allowed cell is really done, not refused for state.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from cloud_api.console.auth import SESSION_COOKIE
from cloud_api.db.models import Receipt
from cloud_api.main import create_app
from cloud_api.services import receipts, staff_auth
from cloud_api.services.container import Container
from tests.cloud_api.conftest import World, cart_body, enter, make_world, put_cart

NO_SESSION = " ".join(["login"] * 11)  # every caller but the three console sessions, on a console page
CALLERS = (
    "none", "edge_a", "gate_a", "gate_b", "alice", "bob",
    "reviewer_a", "reviewer_b", "manager_b", "manager_a", "admin",
    "console_reviewer_a", "console_reviewer_b", "console_manager_a",
)  # fmt: skip

# one row per route: the expected outcome for each caller, in the order of CALLERS
ROWS: dict[str, str] = {
    # public
    "GET /healthz":                              "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /openapi.json":                         "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /docs":                                 "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /docs/oauth2-redirect":                 "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /redoc":                                "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /v1/receipts/{receipt_id}/page":        "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",  # a signed link
    # devices: a gate scans codes, the edge worker sends carts, each for its own store only
    "POST /v1/gates/{gate_id}/scans":            "401 403 ok 403 401 401 401 401 401 401 401 401 401 401",
    "PUT /v1/edge/carts/{visit_id}":             "401 ok 403 403 401 401 401 401 401 401 401 401 401 401",
    # shoppers: their own account only; another's visit or receipt is a 404
    "GET /v1/shoppers/me":                       "401 401 401 401 ok ok 401 401 401 401 401 401 401 401",
    "PUT /v1/shoppers/me/payment-method":        "401 401 401 401 ok ok 401 401 401 401 401 401 401 401",
    "POST /v1/shoppers/me/entry-codes":          "401 401 401 401 ok ok 401 401 401 401 401 401 401 401",
    "GET /v1/shoppers/me/visits":                "401 401 401 401 ok ok 401 401 401 401 401 401 401 401",
    "POST /v1/shoppers/me/visits/{visit_id}/payment": "401 401 401 401 409 404 401 401 401 401 401 401 401 401",
    "GET /v1/shoppers/me/receipts":              "401 401 401 401 ok ok 401 401 401 401 401 401 401 401",
    "GET /v1/shoppers/me/receipts/{receipt_id}": "401 401 401 401 ok 404 401 401 401 401 401 401 401 401",
    "POST /v1/shoppers/me/receipts/{receipt_id}/disputes": "401 401 401 401 ok 404 401 401 401 401 401 401 401 401",
    "GET /v1/shoppers/me/disputes":              "401 401 401 401 ok ok 401 401 401 401 401 401 401 401",
    # staff API: reviewer < manager < admin; staff of a store act on that store only
    "GET /v1/staff/visits":                      "401 401 401 401 401 401 ok 403 403 ok ok 401 401 401",
    "GET /v1/staff/visits/{visit_id}":           "401 401 401 401 401 401 ok 403 403 ok ok 401 401 401",
    "POST /v1/staff/visits/{visit_id}/lines/{line_id}/decision":
                                                 "401 401 401 401 401 401 ok 403 403 ok ok 401 401 401",
    "POST /v1/staff/visits/{visit_id}/close":    "401 401 401 401 401 401 ok 403 403 ok ok 401 401 401",
    "POST /v1/staff/visits/{visit_id}/payment-retry":
                                                 "401 401 401 401 401 401 403 403 403 409 409 401 401 401",
    "GET /v1/staff/disputes":                    "401 401 401 401 401 401 403 403 403 ok ok 401 401 401",
    "POST /v1/staff/disputes/{dispute_id}/decision":
                                                 "401 401 401 401 401 401 403 403 403 ok ok 401 401 401",
    "POST /v1/staff/disputes/{dispute_id}/refund-retry":
                                                 "401 401 401 401 401 401 403 403 403 409 409 401 401 401",
    "GET /v1/staff/audit":                       "401 401 401 401 401 401 403 403 403 403 ok 401 401 401",
    "POST /v1/staff/sweep":                      "401 401 401 401 401 401 403 403 403 403 ok 401 401 401",
    "POST /v1/staff/devices":                    "401 401 401 401 401 401 403 403 403 ok ok 401 401 401",
    "DELETE /v1/staff/devices/{device_id}":      "401 401 401 401 401 401 403 403 403 ok ok 401 401 401",
    # console: a session cookie, never an API key; forms need the session's CSRF token
    "MOUNT /console/static":                     "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /console/":                             "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "GET /console/login":                        "ok ok ok ok ok ok ok ok ok ok ok ok ok ok",
    "POST /console/login":                       "403 403 403 403 403 403 403 403 403 403 403 403 403 403",  # no token
    "POST /console/logout":                      NO_SESSION + " ok ok ok",
    "GET /console/queue":                        NO_SESSION + " ok ok ok",
    "GET /console/queue/rows":                   NO_SESSION + " ok ok ok",
    "GET /console/tickets/{visit_id}/{line_id}": NO_SESSION + " ok 403 ok",
    "POST /console/tickets/{visit_id}/{line_id}/decision":
                                                 NO_SESSION + " ok 403 ok",
    "GET /console/visits/{visit_id}":            NO_SESSION + " ok 403 ok",
    "GET /console/disputes/{dispute_id}":        NO_SESSION + " ok 403 ok",
    "POST /console/disputes/{dispute_id}/decision":
                                                 NO_SESSION + " 403 403 ok",
}  # fmt: skip


def app_routes(app: FastAPI) -> set[str]:
    """Every route as 'METHOD path' (HEAD left out: Starlette adds it to each GET), mounts as 'MOUNT path'.
    FastAPI keeps included routers as one entry each; iter_route_contexts opens them."""
    out: set[str] = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            out.add(f"MOUNT {route.path}")
        else:
            out |= {f"{method} {route.path}" for method in route.methods or () if method != "HEAD"}
    return out


@dataclass
class Request:
    path: str
    json: Any = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fixtures:
    """Store A's things the requests act on; `fresh_*` make one more of a kind for each allowed call."""

    c: Container
    client: TestClient
    a: World
    b: World
    paid_visit: str  # Alice's, settled
    receipt_id: str
    receipt_link: str
    held_visit: str  # Alice's, lines L0..L9 under review
    lines: Iterator[str] = field(default_factory=lambda: (f"L{i}" for i in range(9)))
    disputes: list[str] = field(default_factory=list)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)  # caller -> (cookie, csrf token)

    def line(self, allowed: bool) -> str:
        """A line under review of its own for a call that decides it; L9 (never decided) for a refused one."""
        return next(self.lines) if allowed else "L9"

    def dispute(self, allowed: bool) -> str:
        """A waiting dispute of its own for a call that decides it; the shared one for a refused call."""
        return self.fresh_dispute() if allowed else self.disputes[0]

    def fresh_unmatched_visit(self) -> str:
        visit_id = f"vu{secrets.token_hex(4)}"
        put_cart(self.client, self.a, visit_id, cart_body(self.a, visit_id, [("1002", 1, "confirmed")]))
        return visit_id

    def fresh_dispute(self) -> str:
        r = self.client.post(f"/v1/shoppers/me/receipts/{self.receipt_id}/disputes", headers=self.a.shopper("alice"),
                             json={"sku": "1004", "quantity": 1, "reason": "not mine"})  # fmt: skip
        assert r.json()["state"] == "pending_staff", r.text  # a sandwich is over the automatic refund limit
        dispute_id: str = r.json()["dispute_id"]
        return dispute_id

    def fresh_device(self) -> str:
        r = self.client.post("/v1/staff/devices", headers=self.a.auth(self.a.staff["manager"]),
                             json={"store_id": self.a.store_id, "kind": "gate"})  # fmt: skip
        device_id: str = r.json()["device_id"]
        return device_id

    def entry_code(self) -> str:
        token: str = self.client.post("/v1/shoppers/me/entry-codes", headers=self.a.shopper("alice")).json()["token"]
        return token


def make_fixtures(c: Container, client: TestClient) -> Fixtures:
    a, b = make_world(c), make_world(c)
    paid = enter(client, a, "alice")
    put_cart(client, a, paid, cart_body(a, paid, [("1004", 9, "confirmed")], a.account("alice")))
    held = enter(client, a, "alice")
    put_cart(client, a, held, cart_body(a, held, [("1003", 1, "under_review")] * 10, a.account("alice")))
    (receipt,) = client.get("/v1/shoppers/me/receipts", headers=a.shopper("alice")).json()
    with c.sessions() as s:
        row = s.get(Receipt, receipt["receipt_id"])
        assert row is not None
        link = receipts.signed_link(c, row.id, row.created_ns).removeprefix(c.settings.public_url.rstrip("/"))
    f = Fixtures(c, client, a, b, paid, receipt["receipt_id"], link, held)
    for caller, world, role in (("console_reviewer_a", a, "reviewer"), ("console_reviewer_b", b, "reviewer"),
                                ("console_manager_a", a, "manager")):  # fmt: skip
        staff_id = f"{role}-{world.store_id[1:]}"
        staff_auth.set_password(c, staff_id, "correct horse battery")
        session = staff_auth.login(c, staff_id, "correct horse battery")
        f.sessions[caller] = (session.token, session.csrf_token)
    return f


def api_key(f: Fixtures, caller: str) -> str | None:
    keys = {
        "edge_a": f.a.edge_key, "gate_a": f.a.gate_key, "gate_b": f.b.gate_key,
        "alice": f.a.shoppers["alice"][1], "bob": f.a.shoppers["bob"][1],
        "reviewer_a": f.a.staff["reviewer"], "reviewer_b": f.b.staff["reviewer"], "manager_b": f.b.staff["manager"],
        "manager_a": f.a.staff["manager"], "admin": f.a.staff["admin"],
    }  # fmt: skip
    return keys.get(caller)


def build(f: Fixtures, route: str, caller: str, allowed: bool) -> Request:
    """The request a caller sends to a route, with a thing of its own when the call is to succeed."""
    csrf = f.sessions.get(caller, ("", ""))[1]
    a = f.a
    match route:
        case "GET /v1/receipts/{receipt_id}/page":
            return Request(f.receipt_link)
        case "POST /v1/gates/{gate_id}/scans":
            return Request(f"/v1/gates/{a.gate_id}/scans", json={"token": f.entry_code(), "party_size": 1})
        case "PUT /v1/edge/carts/{visit_id}":
            visit_id = f"ve{secrets.token_hex(4)}"
            return Request(f"/v1/edge/carts/{visit_id}", json=cart_body(a, visit_id, [("1002", 1, "confirmed")]))
        case "PUT /v1/shoppers/me/payment-method":
            return Request("/v1/shoppers/me/payment-method", json={"token": "tok_visa"})
        case "POST /v1/shoppers/me/visits/{visit_id}/payment":
            return Request(f"/v1/shoppers/me/visits/{f.paid_visit}/payment")
        case "GET /v1/shoppers/me/receipts/{receipt_id}":
            return Request(f"/v1/shoppers/me/receipts/{f.receipt_id}")
        case "POST /v1/shoppers/me/receipts/{receipt_id}/disputes":
            return Request(f"/v1/shoppers/me/receipts/{f.receipt_id}/disputes",
                           json={"sku": "1004", "quantity": 1, "reason": "I put it back"})  # fmt: skip
        case "GET /v1/staff/visits":
            return Request(f"/v1/staff/visits?store_id={a.store_id}")
        case "GET /v1/staff/visits/{visit_id}":
            return Request(f"/v1/staff/visits/{f.held_visit}")
        case "POST /v1/staff/visits/{visit_id}/lines/{line_id}/decision":
            line = f.line(allowed)
            return Request(f"/v1/staff/visits/{f.held_visit}/lines/{line}/decision", json={"action": "void"})
        case "POST /v1/staff/visits/{visit_id}/close":
            visit_id = f.fresh_unmatched_visit() if allowed else f.held_visit
            return Request(f"/v1/staff/visits/{visit_id}/close", json={"note": "a restocking run"})
        case "POST /v1/staff/visits/{visit_id}/payment-retry":
            return Request(f"/v1/staff/visits/{f.paid_visit}/payment-retry")
        case "GET /v1/staff/disputes":
            return Request(f"/v1/staff/disputes?store_id={a.store_id}")
        case "POST /v1/staff/disputes/{dispute_id}/decision":
            dispute_id = f.dispute(allowed)
            return Request(f"/v1/staff/disputes/{dispute_id}/decision", json={"approve": False, "note": "on video"})
        case "POST /v1/staff/disputes/{dispute_id}/refund-retry":
            return Request(f"/v1/staff/disputes/{f.disputes[0]}/refund-retry")
        case "POST /v1/staff/devices":
            return Request("/v1/staff/devices", json={"store_id": a.store_id, "kind": "gate"})
        case "DELETE /v1/staff/devices/{device_id}":
            return Request(f"/v1/staff/devices/{f.fresh_device()}")
        case "MOUNT /console/static":
            return Request("/console/static/console.js")
        case "POST /console/login":
            return Request("/console/login", data={"login": "nobody", "password": "wrong password"})
        case "POST /console/logout":
            return Request("/console/logout", data={"csrf_token": csrf})
        case "GET /console/tickets/{visit_id}/{line_id}":
            return Request(f"/console/tickets/{f.held_visit}/L9")
        case "POST /console/tickets/{visit_id}/{line_id}/decision":
            line = f.line(allowed)
            return Request(
                f"/console/tickets/{f.held_visit}/{line}/decision", data={"action": "confirm", "csrf_token": csrf}
            )
        case "GET /console/visits/{visit_id}":
            return Request(f"/console/visits/{f.paid_visit}")
        case "GET /console/disputes/{dispute_id}":
            return Request(f"/console/disputes/{f.disputes[0]}")
        case "POST /console/disputes/{dispute_id}/decision":
            dispute_id = f.dispute(allowed)
            return Request(f"/console/disputes/{dispute_id}/decision", data={"approve": "no", "csrf_token": csrf})
    return Request(route.split(" ", 1)[1])  # routes without parameters or bodies


def outcome(status: int, location: str) -> str:
    if status == 303 and location.startswith("/console/login?next="):  # logging out also ends on /console/login
        return "login"
    if status < 400:
        return "ok"
    return str(status)


def send(f: Fixtures, route: str, caller: str, expected: str) -> str:
    request = build(f, route, caller, expected == "ok")
    method = route.split(" ", 1)[0]
    method = "GET" if method == "MOUNT" else method
    key = api_key(f, caller)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    f.client.cookies.clear()
    if caller in f.sessions:
        f.client.cookies.set(SESSION_COOKIE, f.sessions[caller][0], path="/console")
    r = f.client.request(method, request.path, json=request.json, data=request.data, headers=headers,
                         follow_redirects=False)  # fmt: skip
    return outcome(r.status_code, r.headers.get("location", ""))


@pytest.fixture
def app(container: Container) -> FastAPI:
    """The app with the 401 rate limit out of the way: the matrix collects some 200 refusals on purpose
    (the limit has its own tests in test_ratelimit.py)."""
    container.settings = container.settings.with_(auth_failure_burst=100_000)
    return create_app(container=container)


@pytest.fixture
def fixtures(container: Container, client: TestClient) -> Fixtures:
    f = make_fixtures(container, client)
    f.disputes.append(f.fresh_dispute())  # one waiting dispute for the calls that must be refused
    return f


def test_every_route_has_a_row(app: FastAPI) -> None:
    routes = app_routes(app)
    assert routes - set(ROWS) == set(), "routes without a row in the authorisation matrix"
    assert set(ROWS) - routes == set(), "rows for routes the app no longer has"
    assert all(len(row.split()) == len(CALLERS) for row in ROWS.values())


def test_authorisation_matrix(fixtures: Fixtures) -> None:
    wrong: list[str] = []
    logout_last = sorted(ROWS, key=lambda route: route == "POST /console/logout")
    for route in logout_last:
        for caller, expected in zip(CALLERS, ROWS[route].split(), strict=True):
            got = send(fixtures, route, caller, expected)
            if got != expected:
                wrong.append(f"{route} as {caller}: expected {expected}, got {got}")
    assert wrong == []
