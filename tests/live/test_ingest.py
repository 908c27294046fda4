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


def test_merge_waits_for_the_slowest_active_device_only() -> None:
    r = Reorderer(lag_ns=100 * MS)
    assert r.push(curtain("fast", 1, 120)) == [curtain("fast", 1, 120)]  # the only device talking
    assert r.push(curtain("slow", 1, 130)) == []  # fast has reported up to 120 only: 130 waits
    assert [m.header.ts_ns // MS for m in r.push(curtain("fast", 2, 180))] == [130]
    assert [m.header.ts_ns // MS for m in r.push(curtain("slow", 2, 190))] == [180]
    assert [m.header.ts_ns // MS for m in r.push(curtain("fast", 3, 250))] == [190]
    # slow has now been silent for longer than the lag: it no longer holds the others up
    assert [m.header.ts_ns // MS for m in r.push(curtain("fast", 4, 300))] == [250, 300]


def test_merge_stays_a_jitter_behind_the_newest_for_devices_that_speak_again() -> None:
    r = Reorderer(lag_ns=100 * MS, jitter_ns=20 * MS)
    assert r.push(curtain("a", 1, 50)) == []  # alone: watermark 50 - 20 ms
    assert r.push(curtain("b", 1, 40)) == []  # arrives after a's 50 ms message but is not late
    assert [m.header.ts_ns // MS for m in r.push(curtain("a", 2, 70))] == [40]  # b has reported up to 40
    assert [m.header.ts_ns // MS for m in r.push(curtain("b", 2, 90))] == [50, 70]  # min(70, 90 - 20)
    assert r.push(curtain("c", 1, 75)) == []  # a quiet device speaks, 15 ms behind the newest: not late
    assert [m.header.ts_ns // MS for m in r.flush()] == [75, 90]


def test_jitter_larger_than_the_lag_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Reorderer(lag_ns=10 * MS, jitter_ns=20 * MS)


def test_a_message_behind_what_was_released_is_late() -> None:
    r = Reorderer(lag_ns=10 * MS)
    r.push(curtain("a", 1, 0))
    r.push(curtain("a", 2, 100))
    r.push(curtain("a", 3, 200))  # a is the only device talking: each is handed on at once
    with pytest.raises(LateMessageError, match="150 ms behind the watermark"):
        r.push(curtain("b", 1, 50))


def test_an_expected_device_is_waited_for_at_start_up() -> None:
    r = Reorderer(lag_ns=1000 * MS, jitter_ns=20 * MS, expected_devices=["scale-1", "scale-2"])
    assert r.push(curtain("scale-1", 1, 100)) == []  # scale-2 has not spoken yet
    assert r.push(curtain("scale-1", 2, 600)) == []
    assert [m.header.ts_ns // MS for m in r.push(curtain("scale-2", 1, 90))] == [90]  # late, not refused
    assert [m.header.ts_ns // MS for m in r.push(curtain("scale-2", 2, 610))] == [100]  # 600 > 610 - jitter
    # a device expected but silent for longer than the lag holds nothing up
    r = Reorderer(lag_ns=100 * MS, jitter_ns=20 * MS, expected_devices=["scale-1", "dead-scale"])
    assert r.push(curtain("scale-1", 1, 100)) == []
    assert [m.header.ts_ns // MS for m in r.push(curtain("scale-1", 2, 300))] == [100]  # 300 - jitter
