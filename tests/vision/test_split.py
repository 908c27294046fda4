"""The vision path split over machines: camera-stage workers for parts of a store's cameras publish
`camera/CAM/tracks`, a store stage joins them into `tracks`. It must give the store tracks the one
process gives, so the camera tracks must carry everything the store stage uses: each person's look
and the camera's hand evidence. Needs the trained detector in models/."""

from __future__ import annotations

import os
import queue
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest

from store_edge.layout import StoreLayout
from store_edge.live.mqtt import BrokerAddress, EmbeddedBroker, MqttLink, parse_broker_url
from store_edge.protocol import messages as m
from store_edge.protocol.codec import decode, encode
from store_edge.protocol.topics import store_prefix, topic_for
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import random_scenario
from store_edge.sim.plan import build_plan, rng_for
from store_edge.vision.detector import DEFAULT_WEIGHTS, DetectorConfig, Frame, VisionPipeline
from store_edge.vision.store_stage import StoreStage
from store_edge.vision.worker import (
    LiveStoreWorker,
    LiveVisionWorker,
    VisionOutput,
    process,
    recorded_frame_messages,
    store_tick,
)
from tests.conftest import ROOT
from tests.vision.conftest import UNSPACED

pytestmark = pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(),
    reason=f"detector weights {DEFAULT_WEIGHTS} absent: run tools/train_detector.py",
)
NS = 1_000_000_000
RECORDING = ROOT / "sample_data" / "recordings" / "demo-frames-3x1min-seed9.mcap"
REACH = (0.0, 36.5, 37.75, 38.0, 38.25)
"""Instants (s) of the 3-shopper seed-3 scenario: the empty store (the cameras learn their background),
then shopper s003 alone in the store, reaching into a shelf from 37.51 s to 38.51 s."""


def _halves(store: StoreLayout) -> tuple[list[str], list[str]]:
    ids = [c.id for c in store.cameras]
    return ids[: len(ids) // 2], ids[len(ids) // 2 :]


def _same(a: m.ShopperTracks, b: m.ShopperTracks) -> float:
    """Two store-level messages of one instant say the same: ids, positions, hands and looks. Returns
    the largest difference in a position or a look (exact here; the tolerance is for detector numerics
    that may differ with the batch size on other hardware)."""
    assert a.header.ts_ns == b.header.ts_ns
    assert [t.track_id for t in a.tracks] == [t.track_id for t in b.tracks]
    worst = 0.0
    for x, y in zip(a.tracks, b.tracks, strict=True):
        assert (x.x, x.y, x.confidence) == pytest.approx((y.x, y.y, y.confidence), abs=1e-3)
        assert x.hand == y.hand
        assert (x.appearance is None) == (y.appearance is None)
        if x.appearance is not None and y.appearance is not None:
            assert x.appearance == pytest.approx(y.appearance, abs=1e-3)
            worst = max(worst, *(abs(u - v) for u, v in zip(x.appearance, y.appearance, strict=True)))
        worst = max(worst, abs(x.x - y.x), abs(x.y - y.y))
    return worst


@pytest.fixture(scope="module")
def reach_frames(demo_store: StoreLayout) -> list[list[Frame]]:
    plan = build_plan(demo_store, random_scenario(demo_store, 3, 2, seed=3, mix=UNSPACED))
    return [
        [
            Frame(cam.id, round((1000 + t) * NS), render_frame(plan, cam, t, rng_for(0, "split", cam.id, k))[0])
            for cam in demo_store.cameras
        ]
        for k, t in enumerate(REACH)
    ]


def test_camera_stages_and_a_store_stage_give_what_one_process_gives(
    demo_store: StoreLayout, reach_frames: list[list[Frame]]
) -> None:
    """The same frames through one process, and through two camera stages (7 cameras each) whose camera
    tracks go through the wire codec to a store stage: the same camera tracks, and the same store tracks
    with the same hand and looks. Without the looks and hand evidence on the wire the store stage finds
    neither."""
    store_id = demo_store.store_id
    config = DetectorConfig(device="cpu")
    one = VisionPipeline(demo_store, config)
    one_out = VisionOutput(store_id, "vision-one")
    halves = [VisionPipeline(demo_store, config, cameras=ids, store_stage=False) for ids in _halves(demo_store)]
    half_outs = [VisionOutput(store_id, f"vision-half-{k}") for k in range(2)]
    split, stripped = StoreStage(demo_store), StoreStage(demo_store)
    split_out, stripped_out = VisionOutput(store_id, "tracker-split"), VisionOutput(store_id, "tracker-stripped")
    hands = 0
    for frames in reach_frames:
        in_process = process(one, one_out, frames)
        reference = in_process[-1]
        assert isinstance(reference, m.ShopperTracks)
        wire: list[m.CameraTracks] = []
        for half, out in zip(halves, half_outs, strict=True):
            for msg in process(half, out, frames):
                got = decode(topic_for(store_id, msg), encode(msg))
                assert isinstance(got, m.CameraTracks)
                wire.append(got)
        wire.reverse()  # the store stage does not care in which order the cameras' tracks come
        # the per-camera stage makes the same camera tracks on either side
        by_camera = {c.camera_id: c.tracks for c in wire}
        assert {c.camera_id: c.tracks for c in in_process[:-1] if isinstance(c, m.CameraTracks)} == by_camera
        assert _same(reference, store_tick(split, split_out, wire)) == pytest.approx(0.0, abs=1e-3)
        # what the wire carries is what the store stage needs
        people = [t for c in wire for t in c.tracks if t.floor is not None]
        assert all(t.appearance is not None and t.hand_candidates is not None for t in people)
        blank = {"appearance": None, "hand_candidates": None}
        bare = [c.model_copy(update={"tracks": [t.model_copy(update=blank) for t in c.tracks]}) for c in wire]
        without = store_tick(stripped, stripped_out, bare)
        assert all(t.hand is None and t.appearance is None for t in without.tracks)
        assert all(t.appearance is not None for t in reference.tracks)
        hands += sum(t.hand is not None for t in reference.tracks)
    assert hands >= 1  # s003's reach is seen, so the comparison covers hands


def _recorded_instants(first_s: float, last_s: float) -> list[list[m.CameraFrame]]:
    """The recording's camera frames from `first_s` to before `last_s` (s from its first frame), by instant."""
    by_time: dict[int, list[m.CameraFrame]] = defaultdict(list)
    for msg in recorded_frame_messages(RECORDING):
        by_time[msg.timestamp.ns].append(msg)
    start = min(by_time)
    return [by_time[t] for t in sorted(by_time) if first_s * NS <= t - start < last_s * NS]


class _Tracks:
    """Store-level `tracks` of one store from one device, by instant, as they arrive."""

    def __init__(self, broker: BrokerAddress, store_id: str, device_id: str) -> None:
        self.device_id = device_id
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.by_time: dict[int, m.ShopperTracks] = {}
        self.link = MqttLink(
            broker,
            f"test-split-tracks-{device_id}",
            on_message=lambda topic, payload, _mid: self.got.put((topic, payload)),
            subscriptions=(f"{store_prefix(store_id)}/tracks",),
        ).start()
        assert self.link.subscribed.wait(10)

    def wait(self, t_ns: int, timeout_s: float = 120) -> m.ShopperTracks:
        end = time.monotonic() + timeout_s
        while t_ns not in self.by_time:
            topic, payload = self.got.get(timeout=max(end - time.monotonic(), 0.01))
            msg = decode(topic, payload)
            if isinstance(msg, m.ShopperTracks) and msg.header.device_id == self.device_id:
                self.by_time[msg.header.ts_ns] = msg
        return self.by_time[t_ns]


def _feed(
    publisher: MqttLink, store_id: str, instants: list[list[m.CameraFrame]], tracks: _Tracks
) -> list[m.ShopperTracks]:
    """Each instant's frames, the next once the store-level tracks of the last are out (no frame skipped)."""
    out = []
    for frames in instants:
        for frame in frames:
            publisher.publish(topic_for(store_id, frame), encode(frame)).wait_for_publish(timeout=10)
        out.append(tracks.wait(frames[0].timestamp.ns))
    return out


@pytest.fixture
def broker_url() -> Iterator[str]:
    """The real Mosquitto when MQTT_URL names it (CI), else an embedded broker."""
    url = os.environ.get("MQTT_URL")
    if url:
        yield url
        return
    embedded = EmbeddedBroker().start()
    yield embedded.address.url
    embedded.stop()


def test_split_over_the_broker_gives_the_tracks_of_one_process(demo_store: StoreLayout, broker_url: str) -> None:
    """12 s of the sample recording (14 cameras, 2 frames/s) over MQTT, through `store-edge vision` in one
    process, then through two camera-stage workers of 7 cameras each and a store-stage worker: the same
    store-level tracks at every instant."""
    pid = os.getpid()
    store = demo_store.model_copy(update={"store_id": f"split-test-{pid}"})  # topics of its own on a shared broker
    store_id = store.store_id
    broker = parse_broker_url(broker_url)
    instants = _recorded_instants(6.0, 18.0)
    assert len(instants) == 24
    assert all(len(i) == 14 for i in instants)
    publisher = MqttLink(broker, f"test-split-cameras-{pid}").start()
    assert publisher.connected.wait(10)
    config = DetectorConfig(device="cpu")
    started = time.monotonic()
    try:
        tracks = _Tracks(broker, store_id, f"vision-one-{pid}")
        one = LiveVisionWorker(VisionPipeline(store, config), broker, tracks.device_id).start()
        try:
            assert one.link.subscribed.wait(10)
            reference = _feed(publisher, store_id, instants, tracks)
        finally:
            one.stop()
            tracks.link.stop()
        one_s = time.monotonic() - started

        tracks = _Tracks(broker, store_id, f"tracker-split-{pid}")
        store_stage = LiveStoreWorker(StoreStage(store), broker, tracks.device_id, settle_s=5.0).start()
        cameras = [
            LiveVisionWorker(
                VisionPipeline(store, config, cameras=ids, store_stage=False), broker, f"vision-{ids[0]}-{pid}"
            ).start()
            for ids in _halves(store)
        ]
        try:
            workers: list[LiveStoreWorker | LiveVisionWorker] = [store_stage, *cameras]
            assert all(w.link.subscribed.wait(10) for w in workers)
            split = _feed(publisher, store_id, instants, tracks)
        finally:
            for w in workers:
                w.stop()
            tracks.link.stop()
    finally:
        publisher.stop()
    observed = sum(len(s.tracks) for s in reference)
    assert observed >= 10  # shoppers come in at 7 s: there is something to compare
    worst = max(_same(a, b) for a, b in zip(reference, split, strict=True))
    split_s = time.monotonic() - started - one_s
    print(f"one process {one_s:.1f} s, split {split_s:.1f} s; {observed} store-level tracks, difference {worst}")
    assert (store_stage.batches, store_stage.done, store_stage.skipped) == (24, 24 * 14, 0)
    # every frame went through (a worker may run an instant in two batches when its frames come slowly)
    assert [(w.done, w.skipped) for w in cameras] == [(24 * 7, 0)] * 2


def test_cli_refuses_an_unknown_camera(capsys: pytest.CaptureFixture[str]) -> None:
    from store_edge.cli import main
    from tests.conftest import DEMO_STORE

    rc = main(["vision", "--store", str(DEMO_STORE), "--broker", "mqtt://127.0.0.1:1", "--cameras", "cam-99"])
    assert rc == 2
    assert "cam-99" in capsys.readouterr().err
