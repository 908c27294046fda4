"""The README's demo, end to end: `store-edge demo --once` brings up the broker, the cloud API and the edge
worker, plays a recording through the gate, and every visit ends with a receipt (or a review hold);
the receipts sent match the recording's ground truth."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from store_edge.protocol.truth import TRUTH_RECEIPTS, TruthReceipt
from store_edge.recording.mcap_io import read_messages
from tests.conftest import DEMO_STORE, ROOT

RECORDING = ROOT / "sample_data" / "recordings" / "demo-random-8x4min-seed1.mcap"
pytestmark = pytest.mark.slow


@pytest.fixture
def demo_env() -> Iterator[dict[str, str]]:
    """The demo's environment: on PostgreSQL (DATABASE_URL, as in CI) in a schema of its own, dropped after."""
    env = dict(os.environ)
    url = env.get("DATABASE_URL")
    if not url:
        yield env
        return
    schema = f"demotest_{secrets.token_hex(5)}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield env | {"CLOUD_API_DB_SCHEMA": schema}
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_demo_once_sends_receipts_that_match_the_ground_truth(demo_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "store_edge.cli", "demo", "--once", "--quiet", "--out", str(out),
         "--store", str(DEMO_STORE), "--recording", str(RECORDING), "--speed", "20"],
        env=demo_env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "demo-result.json").read_text())

    truth = {}
    for rec in read_messages(RECORDING, [TRUTH_RECEIPTS]):
        t = TruthReceipt.model_validate_json(rec.data)
        truth[t.visit_id] = Counter({ln.sku: ln.quantity for ln in t.lines})
    # every recorded visit came through the gate and got a visit of the cloud's
    assert set(result["visits"]) == set(truth)
    assert not result["refused"]
    cloud_visits = set(result["visits"].values())
    held = set(result["held_for_review"])
    receipts = result["receipts"]
    # each visit ends with a receipt sent, or waits for staff with its uncertain lines uncharged
    assert set(receipts) | held == cloud_visits
    assert receipts, "no receipt was sent"
    for recorded, visit in result["visits"].items():
        if visit in receipts:
            charged = Counter({ln["sku"]: ln["quantity"] for ln in receipts[visit]["lines"]})
            assert charged == +truth[recorded], f"visit {recorded} -> {visit}"
            assert receipts[visit]["payment_state"] == "succeeded"
    assert result["score"]["f1"] == 1.0
    assert "receipts sent:" in proc.stdout
