from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud_api.adapters.payments import TestModePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.db.models import Visit
from cloud_api.main import create_app
from cloud_api.services.worker import Sweeper
from tests.cloud_api.conftest import Clock, cart_body, enter, make_container, make_world, put_cart


def test_the_sweeper_thread_releases_expired_holds_on_its_own(
    base_settings: Settings, engine: Engine, gateway: TestModePaymentGateway, clock: Clock
) -> None:
    c = make_container(base_settings.with_(sweep_interval_s=0.05, review_deadline_s=0.2), engine, gateway, clock)
    w = make_world(c)
    with TestClient(create_app(container=c)) as client:
        visit_id = enter(client, w)
        put_cart(client, w, visit_id, cart_body(w, visit_id, [("1002", 1, "confirmed"), ("1004", 1, "under_review")]))
    sweeper = Sweeper(c)
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        state = "held"
        while state != "settled" and time.monotonic() < deadline:
            time.sleep(0.05)
            with c.sessions() as s:
                visit = s.get(Visit, visit_id)
                assert visit is not None
                state = visit.state
    finally:
        sweeper.stop()
    assert state == "settled"
    assert gateway.captured_total() == 291  # water 2.69 + 0.22 tax; the sandwich under review was dropped
