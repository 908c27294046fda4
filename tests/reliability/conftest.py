"""Fixtures of the fault suite: the broker fixture of the live tests, the fast/full switch, and a
report each fault test writes its figures to (what was injected, what was lost)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloud_api.adapters.payments import TestModePaymentGateway
from tests.cloud_api.conftest import base_settings, engine
from tests.live.conftest import broker

__all__ = ["base_settings", "broker", "engine"]

FULL = os.environ.get("RELIABILITY_FULL", "") not in ("", "0")
"""`make reliability` sets RELIABILITY_FULL=1: the issue's durations (a 120 s cloud outage, ...);
`make test` runs the short variants of the same tests."""


Report = Callable[..., None]


def full_or_fast(full: float, fast: float) -> float:
    return full if FULL else fast


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """`report(fault=..., injected=..., disturbed=..., lost=0, charged_twice=0, outcome=...)`: printed, and
    appended as a JSON line to RELIABILITY_REPORT when set (docs/reliability.md's table is made from it)."""

    def write(**figures: Any) -> None:
        row = {"test": request.node.nodeid, "full": FULL, **figures}
        print("RELIABILITY " + json.dumps(row))
        path = os.environ.get("RELIABILITY_REPORT")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with Path(path).open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return write


@pytest.fixture
def gateway() -> TestModePaymentGateway:
    return TestModePaymentGateway()
