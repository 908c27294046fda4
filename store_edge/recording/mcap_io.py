"""Writing and reading MCAP files with JSON messages and JSON Schemas (readable by Foxglove and by
the plain `mcap` Python reader)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from pydantic import BaseModel

PROFILE = "cl.v1"


def json_schema_bytes(model: type[BaseModel]) -> bytes:
    return json.dumps(model.model_json_schema(), sort_keys=True, separators=(",", ":")).encode()


class RecordingWriter:
    """One MCAP file. Channels and schemas are registered on first use; message bytes pass through."""

    def __init__(self, output: str | Path | IO[bytes], library: str = "cashierless-checkout") -> None:
        self._own = isinstance(output, str | Path)
        self._stream: IO[bytes] = open(output, "wb") if isinstance(output, str | Path) else output  # noqa: SIM115
        self._writer = Writer(self._stream, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library=library)
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self.count = 0

    def _schema_id(self, name: str, model: type[BaseModel]) -> int:
        if name not in self._schemas:
            self._schemas[name] = self._writer.register_schema(name, "jsonschema", json_schema_bytes(model))
        return self._schemas[name]

    def write(
        self,
        topic: str,
        schema_name: str,
        model: type[BaseModel],
        payload: bytes,
        log_time_ns: int,
        publish_time_ns: int,
        sequence: int = 0,
    ) -> None:
        if topic not in self._channels:
            sid = self._schema_id(schema_name, model)
            self._channels[topic] = self._writer.register_channel(topic, "json", sid)
        self._writer.add_message(self._channels[topic], log_time_ns, payload, publish_time_ns, sequence % 2**32)
        self.count += 1

    def attach(self, name: str, media_type: str, data: bytes, time_ns: int) -> None:
        self._writer.add_attachment(time_ns, time_ns, name, media_type, data)

    def copy_attachments(self, source: str | Path) -> None:
        """Every attachment of another recording (the store and scenario files of a simulated one), as
        it is there: for a recording derived from another."""
        with open(source, "rb") as f:
            for att in make_reader(f).iter_attachments():
                self._writer.add_attachment(att.log_time, att.create_time, att.name, att.media_type, bytes(att.data))

    def metadata(self, name: str, values: dict[str, str]) -> None:
        self._writer.add_metadata(name, values)

    def close(self) -> None:
        self._writer.finish()  # type: ignore[no-untyped-call]
        if self._own:
            self._stream.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RecordedMessage:
    topic: str
    schema_name: str
    log_time_ns: int
    publish_time_ns: int
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


def read_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[RecordedMessage]:
    """Messages in log-time order (the order a live subscriber would have received them)."""
    with open(path, "rb") as f:
        reader = make_reader(f)
        for schema, channel, message in reader.iter_messages(topics=list(topics) if topics else None):
            yield RecordedMessage(
                channel.topic,
                schema.name if schema else "",
                message.log_time,
                message.publish_time,
                message.data,
            )


def read_attachment(path: str | Path, name: str) -> bytes | None:
    with open(path, "rb") as f:
        for att in make_reader(f).iter_attachments():
            if att.name == name:
                return bytes(att.data)
    return None


def read_metadata(path: str | Path) -> dict[str, dict[str, str]]:
    with open(path, "rb") as f:
        return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}
