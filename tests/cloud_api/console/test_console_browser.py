"""The console in a real browser (headless Debian chromium, driven by Playwright): log in, open the
ticket from the live queue, see the weight trace and the floor map, give the item to the other
candidate shopper with the keyboard, and see both receipts change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_api.services.container import Container
from tests.cloud_api.conftest import LiveServer
from tests.cloud_api.console.browser import find_or_install_chromium
from tests.cloud_api.console.conftest import PASSWORD, console_world, staff_login, ticket_case

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    path, why = find_or_install_chromium()
    if path is None:
        pytest.skip(f"no browser for the console tests: {why}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(path), headless=True)
        yield browser
        browser.close()


def test_log_in_open_a_ticket_reassign_it_and_see_the_receipts_change(
    browser: Browser, app: FastAPI, client: TestClient, container: Container
) -> None:
    w = console_world(container)
    case = ticket_case(client, w)
    with LiveServer(app) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{server.url}/console/queue")
        assert page.url.startswith(f"{server.url}/console/login")  # no session: the login page
        page.fill("input[name=login]", staff_login(w, "reviewer"))
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/console/queue")

        row = page.locator(f"tr.item[data-url='/console/tickets/{case.alice_visit}/{case.line_id}']")
        assert "1 x Sandwich" in row.inner_text()
        assert "two shoppers at the shelf" in row.inner_text()
        page.keyboard.press("Enter")  # the first row is selected: the longest-waiting ticket of this store
        page.wait_for_url(f"**/console/tickets/{case.alice_visit}/{case.line_id}")

        plot = page.locator("svg#weight-plot")
        assert plot.is_visible()
        assert plot.locator("polyline.trace").count() == 1
        floor = page.locator("svg#floor-map")
        assert floor.is_visible()
        assert floor.locator("line.plate").count() == 1  # the ticket's plate, highlighted
        assert floor.locator("circle.shopper").count() == 2  # both candidates where they stood
        assert "No camera frames were recorded" in page.inner_text("body")
        shoppers = page.locator("table.shoppers tbody tr")
        assert [shoppers.nth(i).locator("td").nth(1).inner_text() for i in (0, 1)] == ["Alice", "Bob"]
        assert [shoppers.nth(i).locator("td").nth(2).inner_text() for i in (0, 1)] == ["55 %", "45 %"]

        page.goto(f"{server.url}/console/visits/{case.bob_visit}")
        assert page.inner_text(f"#receipt-{case.bob_visit} .receipt-total") == "2.91"  # water 2.69 + tax
        assert page.locator(f"#receipt-{case.bob_visit} tr.extra").count() == 0
        page.go_back()
        page.wait_for_url(f"**/console/tickets/{case.alice_visit}/{case.line_id}")
        page.keyboard.press("2")  # shortcut: candidate 2, Bob, took it
        page.wait_for_url(f"**/console/visits/{case.alice_visit}?decided=*")

        assert "now belongs to visit" in page.inner_text(".flash")
        alice_receipt = page.inner_text(f"#receipt-{case.alice_visit}")
        assert "Sandwich" not in alice_receipt
        assert "Chocolate bar" in alice_receipt
        assert page.inner_text(f"#receipt-{case.alice_visit} .receipt-total") == "1.07"  # the bar 0.99 + tax
        page.click(f".flash a[href='/console/visits/{case.bob_visit}']")
        page.wait_for_url(f"**/console/visits/{case.bob_visit}")
        extra = page.locator(f"#receipt-{case.bob_visit} tr.extra")
        assert "Added later: 1 x Sandwich (succeeded)" in extra.inner_text()
        assert "7.03" in extra.inner_text()  # 6.49 + 8.25 % tax

        page.goto(f"{server.url}/console/queue")
        assert page.locator(f"tr.item[data-url^='/console/tickets/{case.alice_visit}/']").count() == 0
        timing = page.inner_text("#timing")
        assert staff_login(w, "reviewer") in timing
        assert errors == []
        page.close()
