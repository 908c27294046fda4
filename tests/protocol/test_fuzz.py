"""Fuzzing the MQTT payload parsers: whatever arrives on a topic, decoding either gives a valid message
or raises ProtocolError with a reason (never anything else), and the live worker dead-letters what it
cannot use without stopping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_edge.layout import StoreLayout
from store_edge.live.worker import EdgeWorker, WorkerConfig
from store_edge.protocol.codec import ProtocolError, decode
from store_edge.protocol.topics import ROUTES
from store_edge.recording.mcap_io import read_messages
from tests.conftest import ROOT

RECORDING = ROOT / "sample_data" / "recordings" / "demo-hard-cases.mcap"
SAMPLES: dict[str, tuple[str, bytes]] = {}
for _rec in read_messages(RECORDING):
    _kind = _rec.topic.split("/")[3] if _rec.topic.startswith("cl/") else ""
    SAMPLES.setdefault(_kind, (_rec.topic, _rec.data))
TOPICS = [topic for topic, _ in SAMPLES.values()] + ["cl/v1/demo/nonsense", "elsewhere/x", "cl/v1/demo/weight/"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


def decodes_or_refuses(topic: str, payload: bytes) -> None:
    reason = "decoded"
    try:
        decode(topic, payload)
    except ProtocolError as e:
        reason = e.reason
    assert reason  # a refusal carries a reason a person can act on, for the dead letter


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TOPICS), st.binary(max_size=400))
def test_random_bytes(topic: str, payload: bytes) -> None:
    decodes_or_refuses(topic, payload)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TOPICS), json_values)
def test_random_json(topic: str, value: Any) -> None:
    decodes_or_refuses(topic, json.dumps(value, allow_nan=True).encode())


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_real_messages_with_one_field_changed(kind: str, data: st.DataObject) -> None:
    topic, payload = SAMPLES[kind]
    body = json.loads(payload)
    path: list[Any] = []
    node: Any = body
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    decodes_or_refuses(topic, json.dumps(body, allow_nan=True).encode())


def test_every_kind_has_a_sample() -> None:
    # the mutation test above covers the message kinds a store's devices send
    sent_by_devices = {"weight", "curtain", "gate", "tracks", "status"}
    assert sent_by_devices <= set(SAMPLES), sorted(SAMPLES)
    assert len(ROUTES) >= len(sent_by_devices)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.tuples(st.sampled_from(TOPICS), st.binary(max_size=200) | json_values), max_size=20))
def test_the_worker_never_stops_on_bad_input(
    demo_store: StoreLayout, tmp_path: Path, payloads: list[tuple[str, Any]]
) -> None:
    worker = EdgeWorker(demo_store, WorkerConfig(state_dir=tmp_path / "state"))
    for topic, value in payloads:
        raw = value if isinstance(value, bytes) else json.dumps(value, allow_nan=True).encode()
        worker.handle_raw(topic, raw)  # raises nothing: bad input becomes a dead letter
    worker.flush()
