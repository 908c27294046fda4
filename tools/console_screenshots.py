"""Screenshots of the review console for docs/console/: the login page, the queue, a ticket and a visit
after a decision, from the demo store seeded into a fresh SQLite database.

    .venv/bin/python tools/console_screenshots.py [--out docs/console]

Needs Debian's chromium (/usr/bin/chromium) and playwright (the dev extra). The tickets' evidence is
made here (a weight drop on a real plate of the demo store, two shoppers in the aisle in front of it),
in the shape the edge sends it."""

from __future__ import annotations

import argparse
import math
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cloud_api.core.config import Settings
from cloud_api.db import migrate
from cloud_api.main import create_app
from cloud_api.services.container import build_container
from cloud_api.services.seed import StoreConfig, seed
from store_edge.layout import StoreLayout, load_store

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "sample_data" / "stores" / "demo.yaml"
NS = 1_000_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ticket(layout: StoreLayout, n: int, plate_index: int, visits: list[str], now: int) -> tuple[dict[str, Any], str]:
    """A ticket on one plate of the demo store: the plate's product taken, two candidates beside it."""
    placement = layout.planogram[plate_index]
    plate_id = next(iter(placement.plates))
    geo = layout.plate_geometry[plate_id]
    product = next(p for p in layout.products if p.sku == placement.sku)
    unit = product.unit_weight_g.mean
    start, period = now - 8 * NS, NS // 60
    grams = [4000.0 + 3 * math.sin(i / 7) for i in range(180)]
    grams += [4000.0 - unit * i / 30 for i in range(30)] + [4000.0 - unit + 2 * math.sin(i / 5) for i in range(150)]
    (fx1, fy1), (fx2, fy2) = geo.front_left, geo.front_right
    dx, dy = fx2 - fx1, fy2 - fy1
    length = math.hypot(dx, dy)
    nx, ny = -dy / length, dx / length  # towards the aisle
    cx, cy = (fx1 + fx2) / 2, (fy1 + fy2) / 2
    paths = []
    for k, (visit_id, p) in enumerate(zip(visits, (0.56, 0.44), strict=True)):
        off = 0.6 if k == 0 else -0.5
        points = [
            (start + i * NS // 5, round(cx + nx * (0.55 + 0.1 * k) + dx / length * (off + 0.01 * (i - 20)), 3),
             round(cy + ny * (0.55 + 0.1 * k) + dy / length * (off + 0.01 * (i - 20)), 3))
            for i in range(40)
        ]  # fmt: skip
        paths.append({"visit_id": visit_id, "track_id": f"t{k}", "probability": p, "points": points, "hands": []})
    ticket = {
        "kind": "review_ticket",
        "header": {"device_id": "demo-edge-1", "boot_id": "b1", "seq": n, "ts_ns": now},
        "ticket_id": f"T{n}",
        "event_id": f"E{n}",
        "reason": "two shoppers within reach of the plate",
        "shelf_id": geo.shelf_id,
        "plate_ids": [plate_id],
        "products": [{"sku": placement.sku, "quantity": 1, "probability": 0.81},
                     {"sku": layout.planogram[plate_index + 1].sku, "quantity": 1, "probability": 0.19}],
        "shoppers": [{"visit_id": v, "probability": p} for v, p in zip(visits, (0.56, 0.44), strict=True)],
        "window_ns": [start + 3 * NS, start + 3 * NS + 30 * period],
        "evidence": {"traces": [{"plate_id": plate_id, "t0_ns": start, "period_ns": period, "grams": grams}],
                     "shoppers": paths},
    }  # fmt: skip
    return ticket, placement.sku


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="console-shots-"))
    settings = Settings(database_url=f"sqlite:///{data / 'cloud.db'}", secret_key="screenshots",
                        webhook_secret="screenshots", data_dir=data)  # fmt: skip
    c = build_container(settings)
    migrate.upgrade(c.engine)
    result = seed(c, STORE, StoreConfig.load(ROOT / "cloud_api" / "data" / "demo-store.yaml"), shoppers=4)
    layout = load_store(STORE)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container=c), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=30)
    edge = {"Authorization": f"Bearer {result.devices['edge']}"}
    gate = {"Authorization": f"Bearer {result.devices['gate']}"}
    visits = []
    for shopper in result.shoppers[2:6]:
        me = {"Authorization": f"Bearer {shopper['key']}"}
        code = http.post("/v1/shoppers/me/entry-codes", headers=me).json()["token"]
        visits.append(http.post("/v1/gates/entry-1/scans", json={"token": code}, headers=gate).json()["visit_id"])
    now = time.time_ns()
    for i, visit_id in enumerate(visits):
        other = visits[(i + 1) % len(visits)]
        ticket, sku = _ticket(layout, i + 1, 3 * i, [visit_id, other], now - (len(visits) - i) * 90 * NS)
        confirmed = layout.planogram[20 + i].sku
        lines = [
            {"line_id": "L1", "sku": confirmed, "quantity": 2, "confidence": 0.98, "event_ids": ["E0"],
             "status": "confirmed"},
            {"line_id": "L2", "sku": sku, "quantity": 1, "confidence": 0.56, "event_ids": [f"E{i + 1}"],
             "status": "under_review"},
        ]  # fmt: skip
        body = {
            "store_id": result.store_id, "visit_id": visit_id, "account_id": None, "closed_ns": now,
            "receipt": [{"sku": confirmed, "quantity": 2}],
            "cart": {"kind": "cart_update", "header": {"device_id": "demo-edge-1", "boot_id": "b1", "seq": i,
                     "ts_ns": now}, "visit_id": visit_id, "version": 3, "state": "closed", "lines": lines},
            "tickets": [ticket],
        }  # fmt: skip
        answer = http.put(f"/v1/edge/carts/{visit_id}", json=body, headers=edge | {"Idempotency-Key": visit_id})
        answer.raise_for_status()
        time.sleep(0.3)  # distinct waiting times in the queue
    login = result.logins["reviewer"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
        page.goto(f"{url}/console/login")
        page.fill("input[name=login]", login["login"])
        page.screenshot(path=str(args.out / "login.png"))
        page.fill("input[name=password]", login["password"])
        page.click("button[type=submit]")
        page.wait_for_url("**/console/queue")
        page.screenshot(path=str(args.out / "queue.png"), full_page=True)
        page.keyboard.press("Enter")
        page.wait_for_url("**/console/tickets/**")
        page.screenshot(path=str(args.out / "ticket.png"), full_page=True)
        page.keyboard.press("2")  # the other candidate took it
        page.wait_for_url("**/console/visits/**")
        page.screenshot(path=str(args.out / "after-decision.png"), full_page=True)
        page.goto(f"{url}/console/queue")
        page.screenshot(path=str(args.out / "queue-after.png"), full_page=True)
        browser.close()
    server.should_exit = True
    print(f"screenshots in {args.out}: login, queue, ticket, after-decision, queue-after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
