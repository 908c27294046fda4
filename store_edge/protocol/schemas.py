"""JSON Schemas of the wire messages and truth records, generated from the pydantic models."""

from __future__ import annotations

from pathlib import Path

from store_edge.protocol.codec import schema_name
from store_edge.protocol.messages import ALL_MESSAGE_TYPES
from store_edge.protocol.truth import TRUTH_MODELS
from store_edge.recording.mcap_io import json_schema_bytes


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in [*ALL_MESSAGE_TYPES, *TRUTH_MODELS.values()]:
        path = out / f"{schema_name(model)}.schema.json"  # type: ignore[arg-type]
        path.write_bytes(json_schema_bytes(model) + b"\n")
        written.append(path)
    return written
