"""The topic tree: `cl/v1/{store}/...`. One table says which message kind lives on which topic."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from store_edge.protocol.messages import (
    CameraFrame,
    CameraTracks,
    CartUpdate,
    CurtainEvent,
    DeadLetter,
    DeviceStatus,
    GateDecision,
    GatePassage,
    GateScan,
    Message,
    ReviewTicket,
    ShopperTracks,
    WeightBatch,
)

PROTOCOL_PREFIX = "cl/v1"


@dataclass(frozen=True)
class TopicRoute:
    """`template` is relative to `cl/v1/{store}/`; `{key}` is filled from the message's `key_field`."""

    template: str
    model: type[Message]
    key_field: str | None


ROUTES: dict[str, TopicRoute] = {
    "weight": TopicRoute("weight/{key}", WeightBatch, "shelf_id"),
    "curtain": TopicRoute("curtain/{key}", CurtainEvent, "shelf_id"),
    "gate_scan": TopicRoute("gate/{key}/scan", GateScan, "gate_id"),
    "gate_decision": TopicRoute("gate/{key}/decision", GateDecision, "gate_id"),
    "gate_passage": TopicRoute("gate/{key}/passage", GatePassage, "gate_id"),
    "camera_frame": TopicRoute("camera/{key}/frame", CameraFrame, "frame_id"),
    "camera_tracks": TopicRoute("camera/{key}/tracks", CameraTracks, "camera_id"),
    "shopper_tracks": TopicRoute("tracks", ShopperTracks, None),
    "cart_update": TopicRoute("cart/{key}", CartUpdate, "visit_id"),
    "review_ticket": TopicRoute("review/{key}", ReviewTicket, "ticket_id"),
    "device_status": TopicRoute("status/{key}", DeviceStatus, "header.device_id"),
    "dead_letter": TopicRoute("deadletter", DeadLetter, None),
}


def store_prefix(store_id: str) -> str:
    return f"{PROTOCOL_PREFIX}/{store_id}"


def _key_of(msg: Message, key_field: str) -> str:
    value: object = msg
    for part in key_field.split("."):
        value = getattr(value, part)
    return str(value)


def topic_for(store_id: str, msg: Message) -> str:
    route = ROUTES[msg.kind]
    key = _key_of(msg, route.key_field) if route.key_field else ""
    return f"{store_prefix(store_id)}/{route.template.format(key=key)}"


@dataclass(frozen=True)
class ParsedTopic:
    store_id: str
    kind: str
    key: str | None


@lru_cache(maxsize=65536)
def parse_topic(topic: str) -> ParsedTopic | None:
    """Which store and message kind a topic carries; None for a topic outside the tree. Cached: a store's
    topics are a fixed set (a few per shelf and device), each parsed thousands of times a minute, and a
    flood of made-up topics only evicts."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PROTOCOL_PREFIX:
        return None
    store_id, rest = parts[2], parts[3:]
    for kind, route in ROUTES.items():
        tmpl = route.template.split("/")
        if len(tmpl) != len(rest):
            continue
        key: str | None = None
        for t, r in zip(tmpl, rest, strict=True):
            if t == "{key}":
                key = r
            elif t != r:
                break
        else:
            return ParsedTopic(store_id, kind, key)
    return None


def subscription(store_id: str) -> str:
    """The MQTT filter for everything of one store."""
    return f"{store_prefix(store_id)}/#"
