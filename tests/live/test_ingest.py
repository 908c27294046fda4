"""Deduplication and the watermark merge, without a broker."""

from __future__ import annotations

import pytest

from store_edge.live.ingest import Deduplicator, LateMessageError, Reorderer
from store_edge.protocol.messages import CurtainEvent, Header

MS = 1_000_000


def curtain(device: str, seq: int, ts_ms: int, boot: str = "b1") -> CurtainEvent:
    return CurtainEvent(
        header=Header(device_id=device, boot_id=boot, seq=seq, ts_ns=ts_ms * MS), shelf_id="S1", event="enter", x_m=0.1
    )


def test_repeats_are_dropped_and_gaps_counted() -> None:
    d = Deduplicator()
    assert d.accept(curtain("c1", 1, 0))
    assert not d.accept(curtain("c1", 1, 0))  # QoS 1 redelivery
    assert d.accept(curtain("c1", 4, 30))  # 2 and 3 never came
    assert d.gaps == 2
    assert d.accept(curtain("c1", 3, 20))  # ...3 came late after all
    assert d.gaps == 1
    assert d.duplicates == 1
    assert d.accept(curtain("c1", 1, 40, boot="b2"))  # the device restarted: its sequence starts again


def test_merge_releases_in_timestamp_order_behind_the_watermark() -> None:
    r = Reorderer(lag_ns=100 * MS)
    assert r.push(curtain("slow", 1, 50)) == []
    assert r.push(curtain("fast", 1, 120)) == []
    released = r.push(curtain("fast", 2, 180))  # watermark 80 ms: only the 50 ms message may go
    assert [m.header.ts_ns for m in released] == [50 * MS]
    assert [m.header.ts_ns for m in r.push(curtain("slow", 2, 100))] == []  # 100 > watermark 80
    assert [m.header.ts_ns // MS for m in r.flush()] == [100, 120, 180]


def test_a_message_behind_what_was_released_is_late() -> None:
    r = Reorderer(lag_ns=10 * MS)
    r.push(curtain("a", 1, 0))
    r.push(curtain("a", 2, 100))
    r.push(curtain("a", 3, 200))  # watermark 190 ms: 0 and 100 are handed on
    with pytest.raises(LateMessageError, match="50 ms behind the watermark"):
        r.push(curtain("b", 1, 50))
