from __future__ import annotations

from pathlib import Path

import pytest

from store_edge.layout import StoreLayout, load_store

ROOT = Path(__file__).resolve().parents[1]
DEMO_STORE = ROOT / "sample_data" / "stores" / "demo.yaml"
HARD_STORE = ROOT / "sample_data" / "stores" / "hard.yaml"
HARD_CASES = ROOT / "sample_data" / "scenarios" / "demo-hard-cases.yaml"


@pytest.fixture(scope="session")
def demo_store() -> StoreLayout:
    return load_store(DEMO_STORE)


@pytest.fixture(scope="session")
def hard_store() -> StoreLayout:
    return load_store(HARD_STORE)
