"""The database restarts during settlement (part of #9; PostgreSQL only). A PostgreSQL server of the
test's own is stopped (fast shutdown: connections cut, open transactions rolled back) while the edge
PUTs carts and the cloud charges them, and started again. While it is down the API answers 503 with a
JSON message, never a 500 or a dropped connection; the edge retries; afterwards the sweeper finishes
any charge cut off mid-way, and every visit is settled with exactly one charge."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.db import migrate
from cloud_api.main import create_app
from cloud_api.services.container import Container, build_container
from cloud_api.services.worker import run_due
from store_edge.layout import StoreLayout
from tests.cloud_api.conftest import Clock, LiveServer, World, cart_body
from tests.live.helpers import wait_for
from tests.reliability.cloud import demo_store_in_cloud, open_visits, settled_visits
from tests.reliability.conftest import Report, full_or_fast
from tests.reliability.postgres import PrivatePostgres, postgres_bin

VISITS = int(full_or_fast(200, 60))
DOWN_S = full_or_fast(20, 2)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL") or "").startswith("postgres"),
        reason="PostgreSQL only (DATABASE_URL=postgresql://...): SQLite is a file in the API's own process, "
        "there is no server to restart",
    ),
    pytest.mark.skipif(postgres_bin() is None, reason="needs the PostgreSQL server binaries (initdb, pg_ctl)"),
]


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.remove()


def test_a_database_restart_mid_settlement_charges_each_visit_once(
    demo_store: StoreLayout, tmp_path: Path, private_postgres: PrivatePostgres, report: Report
) -> None:
    settings = Settings(
        database_url=private_postgres.url,
        secret_key=secrets.token_urlsafe(32),
        webhook_secret=secrets.token_urlsafe(32),
        data_dir=tmp_path,
    )
    gateway = TestModePaymentGateway(latency_s=0.05)  # a processor's round trip: settlement takes a while
    clock = Clock()
    container: Container = build_container(settings, gateway)
    container.now_ns = clock
    migrate.upgrade(container.engine)
    edge_key = demo_store_in_cloud(container)
    skus = [p.sku for p in demo_store.products[:5]]
    visits = {f"visit-db-{i:03d}": f"acct-db-{i:03d}" for i in range(VISITS)}
    open_visits(container, visits)
    store = World("demo", "", "", edge_key, {}, {})
    bodies = {
        v: cart_body(store, v, [(skus[i % 5], 1 + i % 3, "confirmed"), (skus[(i + 1) % 5], 1, "confirmed")], a)
        for i, (v, a) in enumerate(visits.items())
    }
    statuses: Counter[int] = Counter()
    refused: list[str] = []  # anything but 200 or a JSON 503
    lock = threading.Lock()

    def edge(visit_ids: list[str]) -> None:
        """The edge's sender: PUT each cart until it is accepted (a connection error or 503: retry)."""
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for visit_id in visit_ids:
                while True:
                    try:
                        r = client.put(
                            f"/v1/edge/carts/{visit_id}",
                            json=bodies[visit_id],
                            headers={"Authorization": f"Bearer {edge_key}", "Idempotency-Key": visit_id},
                        )
                    except httpx.TransportError as e:
                        with lock:
                            refused.append(f"{visit_id}: connection: {e}")
                        time.sleep(0.2)
                        continue
                    with lock:
                        statuses[r.status_code] += 1
                        if r.status_code != 200 and not (r.status_code == 503 and "message" in r.json()):
                            refused.append(f"{visit_id}: {r.status_code} {r.text[:200]}")
                    if r.status_code == 200:
                        break
                    time.sleep(0.2)

    with LiveServer(create_app(container=container)) as server:
        ids = list(visits)
        threads = [threading.Thread(target=edge, args=(ids[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: statuses[200] >= VISITS // 6, 60, "settlement under way")
        private_postgres.stop()
        stopped_after = statuses[200]
        time.sleep(DOWN_S)
        private_postgres.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    assert refused == []
    assert statuses[503] > 0, "the restart fell between requests: nothing was refused while it was down"
    cut_off = sum(1 for s in settled_visits(container, ids).values() if s.state != "settled")
    # charges cut off by the restart stay claimed for a lease; once it has passed, the sweeper retries
    clock.advance(120)
    for _ in range(5):
        run_due(container)
    got = settled_visits(container, ids)
    states = Counter(s.state for s in got.values())
    assert states == Counter({"settled": VISITS}), states
    assert all(s.payments == 1 for s in got.values())
    captured = Counter(i.status for i in gateway.intents.values())
    assert captured == Counter({"succeeded": VISITS}), captured  # one charge at the processor per visit
    container.close()
    report(
        fault="database restart during settlement",
        injected=f"private PostgreSQL stopped (fast) for {DOWN_S:.0f} s after {stopped_after} of {VISITS} carts",
        disturbed=f"{statuses[503]} requests answered 503 (JSON), {VISITS} carts PUT by 4 senders",
        lost=0,
        charged_twice=0,
        outcome=f"{VISITS} visits settled, each with one payment and one processor charge ({cut_off} "
        "finished by the sweeper); no 500s",
    )
