from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

from cloud_api.cli import main
from cloud_api.core.config import load_settings
from cloud_api.db.models import Account, Device, Product, Promotion, Store
from cloud_api.services import staff_auth
from cloud_api.services.container import build_container
from tests.cloud_api.conftest import free_port
from tests.conftest import DEMO_STORE

ROOT = Path(__file__).resolve().parents[2]


def test_migrate_then_seed_a_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CLOUD_API_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    assert {"stores", "visits", "payments", "receipts", "disputes", "audit_log"} <= set(
        inspect(engine).get_table_names()
    )
    assert (tmp_path / "secret_key.secret").read_text().strip()  # a generated dev secret, kept outside the repo
    config = ROOT / "cloud_api" / "data" / "demo-store.yaml"
    assert main(["seed", "--store", str(DEMO_STORE), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "store demo: 75 products, 2 promotions" in out
    keys = [line.split(": ")[-1] for line in out.splitlines() if line.startswith("  ")]
    assert sum(k.startswith("dev_") for k in keys) == 2
    assert sum(k.startswith("shp_") for k in keys) == 2
    with Session(engine) as s:
        store = s.get(Store, "demo")
        assert store is not None
        assert (store.tax_rate, store.currency) == ("0.0825", "USD")
        water = s.get(Product, ("demo", "2012095557794"))
        assert water is not None
        assert water.price_cents == 269
        assert len(list(s.scalars(select(Promotion)))) == 2
        for device in s.scalars(select(Device)):
            assert device.key_hash not in out  # only hashes are stored, only keys are printed
            assert all(device.key_hash != k for k in keys)
        assert s.scalars(select(Account).where(Account.email == "bob@example.com")).one().payment_token == "tok_decline"
    # seeding again updates the catalogue and creates no second set of keys
    assert main(["seed", "--store", str(DEMO_STORE)]) == 0
    assert "New keys" not in capsys.readouterr().out
    engine.dispose()


def test_serve_starts_migrates_and_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"CLOUD_API_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud_api.cli", "serve", "--quiet", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "cloud-api serve did not answer within 30 s"
                time.sleep(0.1)
        assert r.json()["status"] == "ok"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/gates/entry-1/scans", json={"token": "x"})
        assert r.status_code == 401
        assert (tmp_path / "cloud.db").exists()  # migrated at start
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_staff_create_makes_a_console_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CLOUD_API_DATA_DIR", str(tmp_path))
    assert main(["seed", "--store", str(DEMO_STORE), "--json"]) == 0
    seeded = json.loads(capsys.readouterr().out)
    assert set(seeded["console"]["logins"]) == {"reviewer", "manager", "admin"}
    password_file = tmp_path / "pw"
    password_file.write_text("a long enough password\n")
    create = ["staff", "create", "--id", "ana", "--name", "Ana", "--role", "reviewer", "--store-id", "demo"]
    assert main([*create, "--email", "ana@example.com", "--password-file", str(password_file)]) == 0
    assert "API key (shown once" in capsys.readouterr().out
    assert main([*create, "--password-file", str(password_file)]) == 2  # exists already
    assert "exists already" in capsys.readouterr().err
    settings = load_settings()
    c = build_container(settings)
    assert staff_auth.login(c, "ana@example.com", "a long enough password").staff.id == "ana"
    reviewer = seeded["console"]["logins"]["reviewer"]
    assert staff_auth.login(c, reviewer["login"], reviewer["password"]).staff.role == "reviewer"
    c.close()
