"""The JSON Schemas in docs/schemas are the ones the models generate (regenerate: make schemas)."""

from __future__ import annotations

from pathlib import Path

from store_edge.protocol.schemas import write_schemas
from tests.conftest import ROOT


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in write_schemas(tmp_path)}
    committed = {p.name: p.read_bytes() for p in (ROOT / "docs" / "schemas").glob("*.json")}
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"out of date, run `make schemas`: {stale}"
