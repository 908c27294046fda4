"""Bytes <-> messages. Decoding never raises anything but ProtocolError, whose reason goes to the
dead-letter topic."""

from __future__ import annotations

from pydantic import ValidationError

from store_edge.errors import format_field_path
from store_edge.protocol.messages import CameraFrame, Message
from store_edge.protocol.topics import ROUTES, ParsedTopic, _key_of, parse_topic

MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest payload accepted for any message but camera frames."""
MAX_FRAME_PAYLOAD_BYTES = 8 * 1024 * 1024


class ProtocolError(ValueError):
    """A payload that cannot be used; `reason` says why in words a person can act on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def encode(msg: Message) -> bytes:
    return msg.model_dump_json(exclude_none=False).encode("utf-8")


def decode(topic: str, payload: bytes, parsed: ParsedTopic | None = None) -> Message:
    """`parsed`: the topic already parsed by the caller (saves parsing it twice on a hot path)."""
    parsed = parsed or parse_topic(topic)
    if parsed is None:
        raise ProtocolError(f"topic {topic!r} is not in the cl/v1/<store>/... tree")
    route = ROUTES[parsed.kind]
    limit = MAX_FRAME_PAYLOAD_BYTES if route.model is CameraFrame else MAX_PAYLOAD_BYTES
    if len(payload) > limit:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the {limit}-byte limit for {parsed.kind}")
    try:
        msg = route.model.model_validate_json(payload)
    except ValidationError as e:
        first = e.errors(include_url=False)[:3]
        detail = "; ".join(f"{format_field_path(err['loc'])}: {err['msg']}" for err in first)
        if e.error_count() > 3:
            detail += f"; and {e.error_count() - 3} more"
        raise ProtocolError(f"invalid {parsed.kind} message: {detail}") from e
    if route.key_field and parsed.key != (in_msg := _key_of(msg, route.key_field)):
        raise ProtocolError(f"topic says {route.key_field}={parsed.key!r} but the message says {in_msg!r}")
    return msg


def schema_name(model: type[Message]) -> str:
    """Name used for the JSON Schema of a message kind (in MCAP files and docs/schemas)."""
    return f"cl.v1.{model.__name__}"
