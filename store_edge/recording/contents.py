"""What a simulated recording carries besides sensor messages: its store and its truth records."""

from __future__ import annotations

from pathlib import Path

from store_edge.layout.loader import load_store_text
from store_edge.layout.model import StoreLayout
from store_edge.protocol.truth import TRUTH_ACTIONS, TruthAction
from store_edge.recording.mcap_io import read_attachment, read_messages


def store_from_recording(path: str | Path) -> StoreLayout:
    data = read_attachment(path, "store.yaml")
    if data is None:
        raise ValueError(f"{path}: the recording carries no store.yaml attachment; pass the store file")
    return load_store_text(data.decode("utf-8"), f"{path}#store.yaml")


def read_actions(path: str | Path) -> list[TruthAction]:
    return [TruthAction.model_validate_json(m.data) for m in read_messages(path, [TRUTH_ACTIONS])]
