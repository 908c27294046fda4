"""Wire protocol: message models, topic tree and codec."""

from store_edge.protocol.codec import ProtocolError, decode, encode, schema_name
from store_edge.protocol.messages import ALL_MESSAGE_TYPES, Header, Message
from store_edge.protocol.topics import ROUTES, parse_topic, store_prefix, subscription, topic_for

__all__ = [
    "ALL_MESSAGE_TYPES",
    "ROUTES",
    "Header",
    "Message",
    "ProtocolError",
    "decode",
    "encode",
    "parse_topic",
    "schema_name",
    "store_prefix",
    "subscription",
    "topic_for",
]
