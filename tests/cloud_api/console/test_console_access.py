"""The console's security: no session -> login page (pages) or 401 (the queue's polling and the API);
another store's tickets are refused; reviewers cannot do what managers do; forms without the session's
CSRF token are refused; logging out ends the session."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from cloud_api.services.container import Container
from tests.cloud_api.console.conftest import PASSWORD, console_world, csrf_of, login, staff_login, ticket_case


def test_without_a_session_pages_redirect_to_login_and_the_api_answers_401(
    client: TestClient, container: Container
) -> None:
    w = console_world(container)
    case = ticket_case(client, w)
    for path in ("/console/queue", f"/console/tickets/{case.alice_visit}/L1", f"/console/visits/{case.bob_visit}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login?next=")
    r = client.get("/console/queue/rows", headers={"X-Console-Fetch": "1"})
    assert r.status_code == 401
    assert "log in again" in r.json()["message"]
    r = client.post(
        f"/console/tickets/{case.alice_visit}/L1/decision", data={"action": "confirm"}, follow_redirects=False
    )
    assert r.status_code == 303  # to the login page; nothing decided
    assert client.get(f"/v1/staff/visits/{case.alice_visit}").status_code == 401
    assert client.get("/console/static/console.js").status_code == 200  # assets are served locally, openly


def test_a_wrong_password_is_refused_and_logout_ends_the_session(client: TestClient, container: Container) -> None:
    w = console_world(container)
    page = client.get("/console/login")
    r = client.post("/console/login", data={"login": staff_login(w, "reviewer"), "password": "wrong password!",
                                            "csrf_token": csrf_of(page.text)})  # fmt: skip
    assert "wrong staff id, email or password" in r.text
    assert client.get("/console/queue", follow_redirects=False).status_code == 303
    r = client.post("/console/login", data={"login": staff_login(w, "reviewer"), "password": PASSWORD})
    assert r.status_code == 403  # the login form's own CSRF token is missing
    login(client, w)
    queue = client.get("/console/queue")
    assert queue.status_code == 200
    cookie = client.cookies.get("cc_session")
    assert cookie
    set_cookie = [v for k, v in queue.headers.items() if k == "set-cookie"]
    assert set_cookie == []
    assert (
        client.post("/console/logout", data={"csrf_token": csrf_of(queue.text)}, follow_redirects=False).status_code
        == 303
    )
    client.cookies.set("cc_session", cookie, path="/console")  # the old cookie, replayed: the session is gone
    assert client.get("/console/queue", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_and_samesite_strict(client: TestClient, container: Container) -> None:
    w = console_world(container)
    page = client.get("/console/login")
    r = client.post("/console/login", data={"login": staff_login(w, "reviewer"), "password": PASSWORD,
                                            "csrf_token": csrf_of(page.text)}, follow_redirects=False)  # fmt: skip
    (session_cookie,) = [v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("cc_session=")]
    assert "HttpOnly" in session_cookie
    assert "SameSite=strict" in session_cookie or "SameSite=Strict" in session_cookie
    assert "Path=/console" in session_cookie


def test_a_form_without_the_csrf_token_is_refused(client: TestClient, container: Container) -> None:
    w = console_world(container)
    case = ticket_case(client, w)
    login(client, w)
    url = f"/console/tickets/{case.alice_visit}/L1/decision"
    for data in ({"action": "confirm"}, {"action": "confirm", "csrf_token": "forged"}):
        r = client.post(url, data=data, follow_redirects=False)
        assert r.status_code == 403
        assert "reload the page" in r.text
    visit = client.get(f"/v1/staff/visits/{case.alice_visit}", headers=w.auth(w.staff["reviewer"])).json()
    assert visit["lines"][1]["status"] == "under_review"


def test_a_reviewer_of_another_store_cannot_see_or_decide_its_tickets(client: TestClient, container: Container) -> None:
    w = console_world(container)
    other = console_world(container)
    case = ticket_case(client, w)
    login(client, other)
    queue = client.get("/console/queue")
    assert case.alice_visit not in queue.text
    r = client.get(f"/console/tickets/{case.alice_visit}/L1")
    assert r.status_code == 403
    assert "you work for store" in r.text
    assert client.get(f"/console/visits/{case.alice_visit}").status_code == 403
    r = client.post(f"/console/tickets/{case.alice_visit}/L1/decision",
                    data={"action": "void", "csrf_token": csrf_of(queue.text)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    visit = client.get(f"/v1/staff/visits/{case.alice_visit}", headers=w.auth(w.staff["reviewer"])).json()
    assert visit["lines"][1]["status"] == "under_review"


def test_a_reviewer_sees_disputes_but_only_a_manager_decides_them(client: TestClient, container: Container) -> None:
    w = console_world(container)
    case = ticket_case(client, w)
    container.settings = container.settings.with_(auto_refund_limit=Decimal("0"))  # every dispute to staff
    receipt = client.get("/v1/shoppers/me/receipts", headers=w.shopper("bob")).json()[0]
    dispute = client.post(f"/v1/shoppers/me/receipts/{receipt['receipt_id']}/disputes", headers=w.shopper("bob"),
                          json={"sku": "1002", "quantity": 1, "reason": "I put the water back"}).json()  # fmt: skip
    assert dispute["state"] == "pending_staff"
    login(client, w, "reviewer")
    queue = client.get("/console/queue").text
    assert "/console/tickets/" in queue
    assert f"/console/disputes/{dispute['dispute_id']}" in queue
    r = client.post(f"/console/disputes/{dispute['dispute_id']}/decision",
                    data={"approve": "yes", "csrf_token": csrf_of(queue)}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert "needs the manager role" in r.text
    assert case.alice_visit in queue
