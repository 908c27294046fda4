"""A simulated recording: readable by the plain mcap reader, every message valid on its topic,
same seed same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from mcap.reader import make_reader

from store_edge.layout import StoreLayout
from store_edge.protocol import decode
from store_edge.protocol.messages import WeightBatch
from store_edge.recording.mcap_io import read_attachment, read_metadata
from store_edge.sim.generate import random_scenario
from store_edge.sim.simulator import simulate
from tests.conftest import DEMO_STORE


@pytest.fixture(scope="module")
def cli_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command from the issue, run as a user would."""
    out = tmp_path_factory.mktemp("cli") / "x.mcap"
    cmd = [
        sys.executable,
        "-m",
        "store_edge.cli",
        "simulate",
        "--store",
        str(DEMO_STORE),
        "--shoppers",
        "12",
        "--minutes",
        "6",
        "--seed",
        "5",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "visit-s001" in done.stdout
    return out


def test_plain_mcap_reader_sees_every_topic_kind_with_schemas(cli_recording: Path) -> None:
    kinds: Counter[str] = Counter()
    with open(cli_recording, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        assert reader.get_header().profile == "cl.v1"
        for channel in summary.channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.message_encoding == "json"
            assert schema.encoding == "jsonschema"
            assert json.loads(schema.data)["type"] == "object"
        for _, channel, message in reader.iter_messages():
            parts = channel.topic.split("/")
            kinds[parts[3] if parts[0] == "cl" else channel.topic] += 1
            assert message.log_time >= message.publish_time - 10_000_000  # device clocks skew by ms
    for kind in (
        "weight",
        "curtain",
        "gate",
        "tracks",
        "status",
        "truth/actions",
        "truth/visits",
        "truth/receipts",
        "truth/positions",
    ):
        assert kinds[kind] > 0, kind
    # 22 shelves x 5 batches/s x 360 s
    assert kinds["weight"] == 22 * 5 * 360
    assert kinds["truth/visits"] == kinds["truth/receipts"] >= 5


def test_every_sensor_message_decodes_on_its_topic_in_sequence(cli_recording: Path) -> None:
    last_seq: dict[str, int] = {}
    last_log: dict[str, int] = defaultdict(int)
    with open(cli_recording, "rb") as f:
        for _, channel, message in make_reader(f).iter_messages():
            if channel.topic.startswith("truth/"):
                continue
            msg = decode(channel.topic, message.data)
            device = msg.header.device_id
            # one device's messages arrive in order with no gaps (the simulator loses nothing)
            assert msg.header.seq == last_seq.get(device, -1) + 1
            last_seq[device] = msg.header.seq
            assert message.log_time > last_log[device]
            last_log[device] = message.log_time
            if isinstance(msg, WeightBatch):
                assert len(msg.samples) == 12
                assert all(len(row) == len(msg.plate_ids) for row in msg.samples)
                assert msg.period_ns == round(1e9 / 60)


def test_recording_carries_store_scenario_and_metadata(cli_recording: Path) -> None:
    store_yaml = read_attachment(cli_recording, "store.yaml")
    assert store_yaml == DEMO_STORE.read_bytes()
    scenario_yaml = read_attachment(cli_recording, "scenario.yaml")
    assert scenario_yaml is not None
    assert b"seed: 5" in scenario_yaml
    meta = read_metadata(cli_recording)["simulation"]
    assert meta["store_id"] == "demo"
    assert meta["seed"] == "5"


def test_same_seed_same_bytes_other_seed_other_bytes(demo_store: StoreLayout, tmp_path: Path) -> None:
    def run(seed: int, name: str) -> bytes:
        out = tmp_path / name
        simulate(demo_store, random_scenario(demo_store, 3, 1.5, seed), out)
        return out.read_bytes()

    first = run(7, "a.mcap")
    assert first == run(7, "b.mcap")
    assert first != run(8, "c.mcap")


def test_shelf_devices_keep_their_own_clocks(cli_recording: Path) -> None:
    """Scales and curtains are stamped by their own clocks (ms off); the tracker by the edge's."""
    offsets: dict[str, set[int]] = defaultdict(set)
    start = int(read_metadata(cli_recording)["simulation"]["start_ns"])
    true_period = 1e9 / 60
    with open(cli_recording, "rb") as f:
        for _, channel, message in make_reader(f).iter_messages():
            d = json.loads(message.data)
            if "/weight/" in channel.topic:
                since = d["t0_ns"] - start
                offsets[d["header"]["device_id"]].add(since - round(round(since / true_period) * true_period))
            elif channel.topic.endswith("/tracks"):
                assert (d["header"]["ts_ns"] - start) % 100_000_000 == 0  # 10 Hz on the edge's clock
    assert len(offsets) == 22
    assert all(len(v) == 1 for v in offsets.values())  # one clock per scale, steady
    skews = [next(iter(v)) for v in offsets.values()]
    assert sum(abs(s) > 100_000 for s in skews) >= 15  # most scales are off by more than 0.1 ms
    assert max(abs(s) for s in skews) < 8_000_000  # by milliseconds, not more
