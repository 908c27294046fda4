"""Messages round-trip on their topics; bad payloads are refused with a reason a person can act on."""

from __future__ import annotations

import pytest

from store_edge.protocol import ProtocolError, decode, encode, parse_topic, topic_for
from store_edge.protocol.codec import MAX_PAYLOAD_BYTES
from store_edge.protocol.messages import (
    CurtainEvent,
    DeadLetter,
    DeviceStatus,
    GatePassage,
    Header,
    Message,
    ShopperTrack,
    ShopperTracks,
    WeightBatch,
)

H = Header(device_id="scale-G1-S1", boot_id="b1", seq=7, ts_ns=1_767_600_000_000_000_000)
WEIGHT = WeightBatch(
    header=H,
    shelf_id="G1-S1",
    plate_ids=["P1", "P2"],
    t0_ns=H.ts_ns,
    period_ns=16_666_667,
    samples=[[1001.0, 998.5], [1002.0, 999.0]],
)


@pytest.mark.parametrize(
    ("msg", "topic"),
    [
        (WEIGHT, "cl/v1/demo/weight/G1-S1"),
        (CurtainEvent(header=H, shelf_id="G1-S1", event="enter", x_m=0.42), "cl/v1/demo/curtain/G1-S1"),
        (GatePassage(header=H, gate_id="exit-1", direction="out", count=3), "cl/v1/demo/gate/exit-1/passage"),
        (ShopperTracks(header=H, tracks=[ShopperTrack(track_id="t1", x=1, y=2)]), "cl/v1/demo/tracks"),
        (DeviceStatus(header=H, role="scale", status="online"), "cl/v1/demo/status/scale-G1-S1"),
        (DeadLetter(header=H, topic="x", reason="r", payload_b64=""), "cl/v1/demo/deadletter"),
    ],
)
def test_round_trip_on_its_topic(msg: Message, topic: str) -> None:
    assert topic_for("demo", msg) == topic
    assert decode(topic, encode(msg)) == msg
    parsed = parse_topic(topic)
    assert parsed is not None
    assert parsed.store_id == "demo"
    assert parsed.kind == msg.kind


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("cl/v1/demo/weight/G1-S1", b"{not json", "invalid weight message"),
        ("cl/v1/demo/weight/G1-S1", b"\xff\xfe", "invalid weight message"),
        ("cl/v1/demo/weight/G1-S1", b'{"kind": "weight"}', "header: Field required"),
        (
            "cl/v1/demo/weight/G1-S2",
            encode(WEIGHT),
            "topic says shelf_id='G1-S2' but the message says 'G1-S1'",
        ),
        (
            "cl/v1/demo/weight/G1-S1",
            encode(WEIGHT).replace(b'"seq":7', b'"seq":-1'),
            "header.seq: Input should be greater than or equal to 0",
        ),
        ("cl/v1/demo/nonsense/x", encode(WEIGHT), "is not in the cl/v1/<store>/... tree"),
        ("other/topic", b"{}", "is not in the cl/v1/<store>/... tree"),
        ("cl/v1/demo/weight/G1-S1", b" " * (MAX_PAYLOAD_BYTES + 1), "exceeds the 262144-byte limit"),
        ("cl/v1/demo/curtain/G1-S1", encode(WEIGHT), "invalid curtain message"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(topic, payload)
    assert reason in err.value.reason


def test_weight_batch_needs_one_reading_per_plate() -> None:
    ragged = encode(WEIGHT).replace(b"[1002.0,999.0]", b"[1002.0]")
    with pytest.raises(ProtocolError) as err:
        decode("cl/v1/demo/weight/G1-S1", ragged)
    assert "samples[1] has 1 readings for 2 plates" in err.value.reason
    repeated = encode(WEIGHT).replace(b'"P2"', b'"P1"')
    with pytest.raises(ProtocolError) as err:
        decode("cl/v1/demo/weight/G1-S1", repeated)
    assert "plate_ids repeats a plate" in err.value.reason


def test_a_newer_producer_may_add_fields() -> None:
    newer = encode(WEIGHT).replace(b'"kind":"weight",', b'"kind":"weight","firmware":"2.1",')
    assert decode("cl/v1/demo/weight/G1-S1", newer) == WEIGHT
