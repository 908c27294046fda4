"""Deduplication and the watermark merge, without a broker."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest

from store_edge.layout import StoreLayout
from store_edge.live.ingest import Deduplicator, LateMessageError, Reorderer, merge_key
from store_edge.live.worker import EdgeWorker, WorkerConfig
from store_edge.protocol.messages import CurtainEvent, GateDecision, Header, Message

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


LANES = {"scale-A": "A", "curtain-A": "A", "scale-B": "B", "curtain-B": "B"}


def times(msgs: list[Message]) -> list[tuple[str, int]]:
    return [(m.header.device_id, m.header.ts_ns // MS) for m in msgs]


def test_a_shelf_waits_for_its_own_devices_and_the_shared_ones_not_for_other_shelves() -> None:
    r = Reorderer(lag_ns=1000 * MS, jitter_ns=20 * MS, lanes=LANES)
    assert r.push(curtain("scale-B", 1, 40)) == []  # alone: 40 > newest - jitter
    assert times(r.push(curtain("tracker", 1, 100))) == [("scale-B", 40)]
    assert r.push(curtain("scale-A", 1, 100)) == []  # the tracker has reported up to 100 only, the jitter 80
    # the tracker at 150: shelf A's 100 goes on although shelf B's scale has reported up to 40 only
    assert times(r.push(curtain("tracker", 2, 150))) == [("scale-A", 100), ("tracker", 100)]
    assert r.push(curtain("curtain-B", 1, 90)) == []  # shelf B's own scale is at 40: its curtain waits
    assert times(r.push(curtain("scale-B", 2, 140))) == [("curtain-B", 90)]  # in order with the tracker's 100
    # total order: shelf A's 100 would have waited for shelf B's scale
    total = Reorderer(lag_ns=1000 * MS, jitter_ns=20 * MS)
    released: list[Message] = []
    for msg in [curtain("scale-B", 1, 40), curtain("tracker", 1, 100), curtain("scale-A", 1, 100)]:
        released += total.push(msg)
    released += total.push(curtain("tracker", 2, 150))
    assert times(released) == [("scale-B", 40)]


def test_a_lane_message_behind_its_lane_and_a_shared_one_behind_any_are_late() -> None:
    r = Reorderer(lag_ns=1000 * MS, jitter_ns=20 * MS, lanes=LANES)
    r.push(curtain("tracker", 1, 100))
    r.push(curtain("scale-A", 1, 100))
    r.push(curtain("tracker", 2, 200))
    r.push(curtain("scale-A", 2, 200))
    with pytest.raises(LateMessageError):
        r.push(curtain("curtain-A", 1, 90))  # behind what shelf A handed on
    # shelf B has handed on nothing: not late; the tracker's 100 has gone ahead of it, as shared messages do
    assert times(r.push(curtain("curtain-B", 1, 90))) == [("curtain-B", 90)]
    with pytest.raises(LateMessageError):
        r.push(curtain("gate", 1, 95))  # a shared message behind what any shelf handed on is late


def test_a_silent_device_of_a_shelf_holds_its_shelf_for_the_lag_only() -> None:
    r = Reorderer(lag_ns=300 * MS, jitter_ns=20 * MS, lanes=LANES)
    r.push(curtain("scale-A", 1, 0))  # shelf A's scale, then nothing more from it
    assert times(r.push(curtain("curtain-A", 1, 100))) == [("scale-A", 0)]  # the curtain's 100 waits for it
    assert r.push(curtain("tracker", 1, 250)) == []
    # the scale has been silent for longer than the lag: shelf A goes on with the tracker
    assert times(r.push(curtain("tracker", 2, 310))) == [("curtain-A", 100), ("tracker", 250)]


def test_a_light_curtain_holds_its_shelf_only_for_the_jitter_after_a_hand_left() -> None:
    def run(event_devices: list[str]) -> list[tuple[str, int]]:
        r = Reorderer(lag_ns=500 * MS, jitter_ns=20 * MS, lanes=LANES, event_devices=event_devices)
        released: list[Message] = []
        released += r.push(curtain("curtain-A", 1, 0))  # a hand left shelf A; the curtain says nothing more
        for k in range(1, 4):  # shelf A's scale and the tracker go on every 100 ms
            released += r.push(curtain("scale-A", k, 100 * k))
            released += r.push(curtain("tracker", k, 100 * k))
        return times(released)

    # as an event device the curtain's silence holds nothing: readings go on as the tracker passes them
    assert run(["curtain-A", "curtain-B"]) == [
        ("curtain-A", 0), ("scale-A", 100), ("tracker", 100), ("scale-A", 200), ("tracker", 200)
    ]  # fmt: skip
    # counted as a streaming device, it holds shelf A at 0 until the lag has passed: only the tracker goes on
    assert run([]) == [("curtain-A", 0), ("tracker", 100), ("tracker", 200)]


def test_a_light_curtains_report_behind_its_shelf_goes_on_at_once_within_the_lag() -> None:
    r = Reorderer(lag_ns=500 * MS, jitter_ns=20 * MS, lanes=LANES, event_devices=["curtain-A"])
    for k in range(1, 4):
        r.push(curtain("scale-A", k, 1000 + 100 * k))
        r.push(curtain("tracker", k, 1000 + 100 * k))
    assert r.lane_watermark_ns("A") >= 1200 * MS
    # a hand's report delayed behind what shelf A handed on: used out of order rather than lost
    assert times(r.push(curtain("curtain-A", 1, 1150))) == [("curtain-A", 1150)]
    assert r.late_handed_on == 1
    with pytest.raises(LateMessageError):  # beyond the lag it is late, as any message is
        r.push(curtain("curtain-A", 2, 600))


@pytest.mark.parametrize("lanes", [True, False])
@pytest.mark.parametrize("seed", range(10))
def test_random_arrivals_with_lanes_lose_nothing_and_keep_each_lane_in_order(seed: int, lanes: bool) -> None:
    rng = random.Random(seed)
    devices = {"tracker": 100, "gate": 700, "scale-A": 200, "scale-B": 200, "curtain-A": 450, "curtain-B": 600}
    sent: list[tuple[float, CurtainEvent]] = []
    for device, every_ms in devices.items():
        arrival = 0.0
        for seq in range(40):
            ts = seq * every_ms + rng.randrange(every_ms // 2)
            arrival = max(arrival, ts + rng.uniform(2, 60))  # in order per device, as on one connection
            sent.append((arrival, curtain(device, seq, ts)))
    sent.sort(key=lambda a: a[0])
    r = Reorderer(
        lag_ns=500 * MS, jitter_ns=100 * MS, lanes=LANES if lanes else None, event_devices=["curtain-A", "curtain-B"]
    )
    out: list[Message] = []
    accepted = 0
    for _, msg in sent:
        try:
            out += r.push(msg)
            accepted += 1
        except LateMessageError:
            pass
    out += r.flush()
    assert len(out) == accepted
    assert len(r) == 0
    assert accepted >= 0.95 * len(sent)
    if not lanes:  # one total order
        assert [merge_key(m) for m in out] == sorted(merge_key(m) for m in out)
    position = {merge_key(m): i for i, m in enumerate(out)}
    shared = [merge_key(m) for m in out if m.header.device_id not in LANES]
    for lane in ("A", "B"):
        mine = [merge_key(m) for m in out if LANES.get(m.header.device_id) == lane]
        assert mine == sorted(mine), f"lane {lane} out of order"
        for key in mine:  # every shared message before a lane message in time was handed on before it
            assert all(position[s] < position[key] for s in shared if s < key)


def test_a_merge_buffer_from_before_lanes_is_refused_not_half_loaded() -> None:
    r = Reorderer(lag_ns=100 * MS, jitter_ns=20 * MS, lanes=LANES)
    assert r.push(curtain("scale-A", 1, 10)) == []  # waits a jitter
    assert len(pickle.loads(pickle.dumps(r))) == 1  # a snapshot of today's buffer loads
    old = {k: v for k, v in r.__dict__.items() if k not in ("_heaps", "_lane_of")} | {"_heap": []}
    with pytest.raises(ValueError, match="older version"):
        Reorderer.__new__(Reorderer).__setstate__(old)


def gate_decision(seq: int, ts_ms: int) -> GateDecision:
    return GateDecision(
        header=Header(device_id="gate-1", boot_id="b1", seq=seq, ts_ns=ts_ms * MS),
        gate_id="entry-1",
        decision="open",
        visit_id="v1",
    )


def test_a_gate_message_behind_the_watermark_within_the_lag_is_handed_on_not_refused() -> None:
    # the gate's clock runs 0.2 s behind: its decision comes after the shelf was handed on past its time
    r = Reorderer(lag_ns=500 * MS, jitter_ns=100 * MS, lanes={"c1": "S1"})
    released = [m for i in range(10) for m in r.push(curtain("c1", i + 1, 1000 + i * 100))]
    assert released[-1].header.ts_ns > 1600 * MS
    late = gate_decision(1, 1600)
    assert r.push(late) == [late]  # a visit whose gate decision is refused would be lost
    assert r.late_handed_on == 1
    # further behind than the lag it is refused like any late message
    with pytest.raises(LateMessageError):
        r.push(gate_decision(2, 1000))


def test_a_gate_that_spoke_holds_no_shelf_back() -> None:
    r = Reorderer(lag_ns=1000 * MS, jitter_ns=20 * MS, lanes=LANES)
    r.push(curtain("tracker", 1, 100))
    r.push(curtain("scale-A", 1, 100))
    decision = gate_decision(1, 150)
    released = r.push(decision) + r.push(curtain("tracker", 2, 300)) + r.push(curtain("scale-A", 2, 300))
    released += r.push(curtain("tracker", 3, 400))
    # the shelf's 300 goes on with the tracker's 400, not a second (the lag) after the gate's 150
    assert ("scale-A", 300) in times(released)
    assert decision in released


def test_a_snapshot_from_before_event_devices_gets_the_stores_curtains(demo_store: StoreLayout, tmp_path: Path) -> None:
    old = EdgeWorker(demo_store, WorkerConfig(state_dir=tmp_path))
    curtains = {shelf.curtain.device_id for shelf in demo_store.shelves_by_id.values() if shelf.curtain}
    assert curtains
    assert old.reorder.event_devices == curtains
    # a merge buffer pickled before there were event devices loads without any...
    state = {k: v for k, v in old.reorder.__dict__.items() if k != "event_devices"}
    loaded = Reorderer.__new__(Reorderer)
    loaded.__setstate__(state)
    assert loaded.event_devices == frozenset()
    # ...and a worker restarting from such a snapshot takes them from its store again
    old.reorder = loaded
    old.snapshot()
    restarted = EdgeWorker(demo_store, WorkerConfig(state_dir=tmp_path))
    restarted.recover()
    assert restarted.reorder.event_devices == curtains
