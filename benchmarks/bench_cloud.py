"""Cloud API under load: gate decision latency, settlement latency and throughput, exit to receipt sent.

    .venv/bin/python benchmarks/bench_cloud.py [--visits 400] [--concurrency 8]

Runs `cloud-api serve` as a separate process on PostgreSQL (DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/test; a fresh schema, dropped at the end) with the test-mode
payment processor, and drives it from this process with a thread pool of HTTP clients:

- gate: POST /v1/gates/{gate}/scans with a fresh entry code (the code is fetched first, not timed);
- settlement: PUT /v1/edge/carts/{visit} with a 5-line cart (priced, charged, receipt queued);
- exit to receipt sent: from just before that PUT until the signed receipt webhook arrives at a
  receiver in this process (what the shopper's app backend sees).

Prints a markdown table. Not a test: no thresholds; targets are gate p99 < 50 ms and exit to
receipt sent p99 < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.core.config import Settings, normalize_database_url
from cloud_api.core.security import hash_api_key, new_api_key
from cloud_api.db import migrate
from cloud_api.db.models import Account
from cloud_api.services.container import build_container
from cloud_api.services.seed import StoreConfig, seed
from store_edge.layout import load_store

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "sample_data" / "stores" / "demo.yaml"
STORE_CONFIG = ROOT / "cloud_api" / "data" / "demo-store.yaml"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Receiver:
    """Records when each receipt webhook arrives (monotonic clock of this process)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrivals[body["data"]["visit_id"]] = time.monotonic()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/receipts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visits", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--shoppers", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()

    url = normalize_database_url(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    receiver = Receiver()
    server: subprocess.Popen[bytes] | None = None
    try:
        tmp = tempfile.mkdtemp(prefix="bench-cloud-")
        settings = Settings(
            database_url=url,
            secret_key=secrets.token_urlsafe(32),
            webhook_secret=secrets.token_urlsafe(32),
            db_schema=schema,
            data_dir=Path(tmp),
        )
        c = build_container(settings, TestModePaymentGateway())
        migrate.upgrade(c.engine)
        seeded = seed(c, STORE, StoreConfig.load(STORE_CONFIG), demo_accounts=False)
        gate_key = next(k for label, k in seeded.keys.items() if "gate" in label)
        edge_key = next(k for label, k in seeded.keys.items() if "edge" in label)
        shopper_keys: list[tuple[str, str]] = []
        with c.transaction() as s:
            for i in range(args.shoppers):
                key = new_api_key("shp")
                account = Account(id=f"bench-{i}", email=f"bench-{i}@example.com", name=f"Bench {i}")
                account.key_hash, account.payment_token, account.created_ns = (
                    hash_api_key(key),
                    "tok_visa",
                    time.time_ns(),
                )
                s.add(account)
                shopper_keys.append((f"bench-{i}", key))
        skus = [p.sku for p in load_store(STORE).products]
        c.close()

        port = 18000 + random.randrange(1000)
        env = os.environ | {
            "DATABASE_URL": url,
            "CLOUD_API_DB_SCHEMA": schema,
            "CLOUD_API_SECRET_KEY": settings.secret_key,
            "CLOUD_API_WEBHOOK_SECRET": settings.webhook_secret,
            "CLOUD_API_WEBHOOK_URL": receiver.url,
            "CLOUD_API_DATA_DIR": tmp,
            "CLOUD_API_PAYMENT_GATEWAY": "test",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloud_api.cli",
                "serve",
                "--quiet",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.1)

        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base, timeout=30)
            http: httpx.Client = local.client
            return http

        gate_ms: list[float] = []
        put_ms: list[float] = []
        sent_at: dict[str, float] = {}
        failures: list[str] = []

        def visit(i: int) -> None:
            account_id, key = shopper_keys[i % len(shopper_keys)]
            http = client()
            code = http.post("/v1/shoppers/me/entry-codes", headers={"Authorization": f"Bearer {key}"}).json()["token"]
            t0 = time.perf_counter()
            r = http.post(
                "/v1/gates/entry-1/scans", json={"token": code}, headers={"Authorization": f"Bearer {gate_key}"}
            )
            gate_ms.append((time.perf_counter() - t0) * 1e3)
            answer = r.json()
            if answer.get("decision") != "open":
                failures.append(f"gate: {answer}")
                return
            visit_id = answer["visit_id"]
            rng = random.Random(i)
            lines = [
                {"line_id": f"L{j}", "sku": rng.choice(skus), "quantity": rng.choice([1, 1, 2, 3]), "confidence": 0.98,
                 "event_ids": [f"e{j}"], "status": "confirmed"}
                for j in range(5)
            ]  # fmt: skip
            now = time.time_ns()
            body = {
                "store_id": seeded.store_id, "visit_id": visit_id, "account_id": account_id, "closed_ns": now,
                "receipt": [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in lines],
                "cart": {"kind": "cart_update", "header": {"device_id": "edge", "boot_id": "b", "seq": i, "ts_ns": now},
                         "visit_id": visit_id, "version": 1, "state": "closed", "lines": lines},
            }  # fmt: skip
            sent_at[visit_id] = time.monotonic()
            t0 = time.perf_counter()
            r = http.put(
                f"/v1/edge/carts/{visit_id}", json=body,
                headers={"Authorization": f"Bearer {edge_key}", "Idempotency-Key": visit_id},
            )  # fmt: skip
            put_ms.append((time.perf_counter() - t0) * 1e3)
            if r.status_code != 200:
                failures.append(f"put: {r.status_code} {r.text[:200]}")

        for i in range(min(20, args.visits)):  # warm-up: connections, caches
            visit(10**6 + i)
        gate_ms.clear()
        put_ms.clear()
        sent_at.clear()
        t_start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(visit, range(args.visits)))
        wall = time.perf_counter() - t_start
        wait_until = time.monotonic() + 30
        while time.monotonic() < wait_until and not all(v in receiver.arrivals for v in sent_at):
            time.sleep(0.05)
        receipt_ms = [(receiver.arrivals[v] - t) * 1e3 for v, t in sent_at.items() if v in receiver.arrivals]
        missing = len(sent_at) - len(receipt_ms)

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average {load})"
        print(
            f"machine: {machine}, python {platform.python_version()}; PostgreSQL; server: {args.workers} uvicorn "
            f"process(es); load: {args.concurrency} client threads in a second process; "
            f"{args.visits} visits, 5-line carts"
        )
        print()
        print("| measure | n | p50 ms | p99 ms | max ms | throughput |")
        print("|---|---:|---:|---:|---:|---:|")
        rows: list[tuple[str, list[float], str]] = [
            ("gate decision (POST scans)", gate_ms, ""),
            ("cart PUT incl. pricing + charge", put_ms, f"{len(put_ms) / wall:.0f} visits/s (gate + cart)"),
            ("exit to receipt webhook received", receipt_ms, ""),
        ]
        for name, values, extra in rows:
            if values:
                print(f"| {name} | {len(values)} | {percentile(values, 0.5):.1f} | {percentile(values, 0.99):.1f} | "
                      f"{max(values):.1f} | {extra} |")  # fmt: skip
        if failures or missing:
            print(f"\n{len(failures)} failures, {missing} receipts not received: {failures[:3]}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
