"""The vision worker on rendered frames: an MP4 file, a recording, and live frames over MQTT, each
producing tracks where the simulator put the shoppers. Needs the trained detector in models/."""

from __future__ import annotations

import base64
import math
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from store_edge.cli import main
from store_edge.evaluation import evaluate
from store_edge.layout import Camera, StoreLayout
from store_edge.live.mqtt import BrokerAddress, EmbeddedBroker, MqttLink, parse_broker_url
from store_edge.protocol import messages as m
from store_edge.protocol.codec import decode, encode
from store_edge.protocol.topics import store_prefix, topic_for
from store_edge.recording.mcap_io import read_messages
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import random_scenario
from store_edge.sim.plan import Plan, build_plan, rng_for
from store_edge.sim.simulator import simulate
from store_edge.vision.detector import DEFAULT_WEIGHTS, DetectorConfig, VisionPipeline
from store_edge.vision.worker import (
    LiveVisionWorker,
    VisionOutput,
    frames_from_video,
    run_offline,
    vision_recording,
)
from tests.conftest import DEMO_STORE

pytestmark = pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(),
    reason=f"detector weights {DEFAULT_WEIGHTS} absent: run tools/train_detector.py",
)
FPS = 5.0
SECONDS = 3.0
NS = 1_000_000_000


@pytest.fixture(scope="module")
def plan(demo_store: StoreLayout) -> Plan:
    return build_plan(demo_store, random_scenario(demo_store, 6, 2, seed=21))


def _busy_window(plan: Plan, store: StoreLayout) -> tuple[Camera, float]:
    """A camera and a start time at which it sees somebody for the whole clip."""
    for t0 in np.arange(10.0, 100.0, 1.0):
        for cam in store.cameras:
            counts = [
                len(render_frame(plan, cam, float(t), rng_for(0, "probe", cam.id))[1])
                for t in (t0, t0 + SECONDS / 2, t0 + SECONDS - 0.2)
            ]
            if min(counts) >= 1:
                return cam, float(t0)
    raise AssertionError("no camera sees anybody in this scenario")


def _truth_at(plan: Plan, t: float) -> list[tuple[float, float]]:
    return [
        (float(xy[0]), float(xy[1])) for p in plan.shoppers if p.enter_s <= t <= p.exit_s for xy in [p.trajectory.at(t)]
    ]


def _nearest(truth: list[tuple[float, float]], x: float, y: float) -> float:
    return min(math.hypot(x - tx, y - ty) for tx, ty in truth)


@pytest.fixture(scope="module")
def pipeline(demo_store: StoreLayout) -> VisionPipeline:
    return VisionPipeline(demo_store, DetectorConfig(device="cpu"))


def test_worker_on_an_mp4_file_tracks_people_where_they_are(
    plan: Plan, demo_store: StoreLayout, pipeline: VisionPipeline, tmp_path: Path
) -> None:
    cam, t0 = _busy_window(plan, demo_store)
    video = tmp_path / f"{cam.id}.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), FPS, cam.resolution)
    n = int(SECONDS * FPS)
    for k in range(n):
        img, _ = render_frame(plan, cam, t0 + k / FPS, rng_for(0, "mp4", k))
        writer.write(img)
    writer.release()

    start_ns = round(t0 * NS)
    msgs = list(
        run_offline(pipeline, VisionOutput("demo", "vision-test"), frames_from_video(str(video), cam.id, start_ns))
    )
    camera_tracks = [x for x in msgs if isinstance(x, m.CameraTracks)]
    store_tracks = [x for x in msgs if isinstance(x, m.ShopperTracks)]
    assert len(camera_tracks) == n
    assert len(store_tracks) == n

    errors = []
    for msg in camera_tracks:
        truth = _truth_at(plan, msg.frame_ts_ns / NS)
        errors += [_nearest(truth, *t.floor) for t in msg.tracks if t.floor is not None]
    assert len(errors) >= n  # somebody in (nearly) every frame
    assert float(np.median(errors)) < 0.3
    placed = [_nearest(_truth_at(plan, s.header.ts_ns / NS), t.x, t.y) for s in store_tracks for t in s.tracks]
    assert placed
    assert float(np.median(placed)) < 0.3
    # one person walking through one camera keeps one store-level id
    ids = {t.track_id for s in store_tracks for t in s.tracks}
    people = max(len(s.tracks) for s in store_tracks)
    assert len(ids) <= people + 1


def _frames(plan: Plan, store: StoreLayout, t0: float) -> Iterator[m.CameraFrame]:
    for k in range(int(SECONDS * FPS)):
        t = t0 + k / FPS
        for cam in store.cameras[:4]:
            img, _ = render_frame(plan, cam, t, rng_for(0, "mqtt", cam.id, k))
            ok, buf = cv2.imencode(".jpg", img)
            assert ok
            ns = round(t * NS)
            yield m.CameraFrame(
                header=m.Header(device_id=cam.id, boot_id="b1", seq=k + 1, ts_ns=ns),
                timestamp=m.FoxgloveTime.from_ns(ns),
                frame_id=cam.id,
                data=base64.b64encode(buf.tobytes()).decode(),
            )


def test_live_worker_on_mqtt_frames_publishes_store_tracks(plan: Plan, demo_store: StoreLayout) -> None:
    embedded = EmbeddedBroker().start()
    broker: BrokerAddress = embedded.address
    got: queue.Queue[bytes] = queue.Queue()
    listener = MqttLink(
        broker,
        "test-tracks-listener",
        on_message=lambda _t, payload, _mid: got.put(payload),
        subscriptions=(f"{store_prefix('demo')}/tracks",),
    ).start()
    assert listener.subscribed.wait(10)
    pipeline = VisionPipeline(demo_store, DetectorConfig(device="cpu"))
    worker = LiveVisionWorker(pipeline, broker, "vision-demo-test").start()
    assert worker.link.subscribed.wait(10)
    publisher = MqttLink(broker, "test-camera").start()
    t0 = 30.0
    try:
        for sent, frame in enumerate(_frames(plan, demo_store, t0), start=1):
            publisher.publish(topic_for("demo", frame), encode(frame)).wait_for_publish(timeout=10)
            if frame.frame_id == demo_store.cameras[3].id:
                # the last camera of this instant: let the worker finish it (it skips frames when behind)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (
                    worker.frames_in < sent or worker.frames_done + worker.frames_skipped < worker.frames_in
                ):
                    time.sleep(0.02)
        time.sleep(0.5)
    finally:
        publisher.stop()
        worker.stop()
        listener.stop()
        embedded.stop()
    msgs = []
    while not got.empty():
        msg = decode(f"{store_prefix('demo')}/tracks", got.get())
        assert isinstance(msg, m.ShopperTracks)
        msgs.append(msg)
    assert len(msgs) >= SECONDS * FPS / 2
    assert worker.frames_done > 0
    placed = [_nearest(_truth_at(plan, s.header.ts_ns / NS), t.x, t.y) for s in msgs for t in s.tracks]
    assert placed
    assert float(np.median(placed)) < 0.3


def _camera_frame(camera_id: str, t_ns: int, img: np.ndarray) -> m.CameraFrame:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return m.CameraFrame(
        header=m.Header(device_id=camera_id, boot_id="b1", seq=1 + t_ns % 10**6, ts_ns=t_ns),
        timestamp=m.FoxgloveTime.from_ns(t_ns),
        frame_id=camera_id,
        data=base64.b64encode(buf.tobytes()).decode(),
    )


def test_live_worker_runs_an_instant_whose_frames_trickle_in_as_one_batch(
    plan: Plan, demo_store: StoreLayout, pipeline: VisionPipeline
) -> None:
    """Every camera of the store sends its frame of an instant, 25 ms after the one before (as over a
    real network), then the same for the next instant: each instant is one batch, so one store-level
    `tracks` per instant, over all the cameras' frames (it used to run the first frame alone)."""
    url = os.environ.get("MQTT_URL")  # the real Mosquitto (CI), else the embedded broker
    embedded = None if url else EmbeddedBroker().start()
    broker = embedded.address if embedded else parse_broker_url(url or "")
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    listener = MqttLink(
        broker,
        f"test-instant-listener-{os.getpid()}",
        on_message=lambda topic, payload, _mid: got.put((topic, payload)),
        subscriptions=(f"{store_prefix('demo')}/tracks", f"{store_prefix('demo')}/camera/+/tracks"),
    ).start()
    device = f"vision-instant-test-{os.getpid()}"
    worker = LiveVisionWorker(pipeline, broker, device).start()
    publisher = MqttLink(broker, f"test-instant-cameras-{os.getpid()}").start()
    cameras = demo_store.cameras
    t1 = time.time_ns()
    instants = [t1, t1 + NS // 4]  # 4 frames/s
    try:
        assert listener.subscribed.wait(10)
        assert worker.link.subscribed.wait(10)
        assert publisher.connected.wait(10)
        frames = [
            _camera_frame(cam.id, t_ns, render_frame(plan, cam, 30.0 + k / 4, rng_for(0, "instant", cam.id, k))[0])
            for k, t_ns in enumerate(instants)
            for cam in cameras
        ]
        for frame in frames:
            publisher.publish(topic_for("demo", frame), encode(frame)).wait_for_publish(timeout=10)
            time.sleep(0.025)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.frames_done + worker.frames_skipped < len(frames):
            time.sleep(0.02)
        time.sleep(0.5)
    finally:
        publisher.stop()
        worker.stop()
        listener.stop()
        if embedded is not None:
            embedded.stop()
    store_times, camera_frames = [], []
    while not got.empty():
        topic, payload = got.get()
        msg = decode(topic, payload)
        if msg.header.device_id != device:
            continue
        if isinstance(msg, m.ShopperTracks):
            store_times.append(msg.header.ts_ns)
        else:
            assert isinstance(msg, m.CameraTracks)
            camera_frames.append((msg.camera_id, msg.frame_ts_ns))
    assert store_times == instants
    assert sorted(camera_frames) == sorted((f.frame_id, f.header.ts_ns) for f in frames)
    assert (worker.batches, worker.frames_done, worker.frames_skipped) == (2, len(frames), 0)


def test_live_worker_behind_skips_to_the_newest_instant_whole(
    demo_store: StoreLayout, pipeline: VisionPipeline
) -> None:
    """A worker that fell behind takes the newest instant of what is queued, waits for the rest of it
    rather than cutting it in half, and keeps a camera's next instant for the next batch."""
    worker = LiveVisionWorker(pipeline, BrokerAddress("127.0.0.1", 1), "vision-behind-test", settle_s=0.5)
    cams = [c.id for c in demo_store.cameras[:3]]
    img = np.zeros((240, 320, 3), dtype=np.uint8)
    a, b, c, d = (1_000 * NS + k * NS // 4 for k in range(4))

    def send(cam: str, t_ns: int) -> None:
        frame = _camera_frame(cam, t_ns, img)
        worker._message(topic_for("demo", frame), encode(frame), 0)

    for t_ns in (a, b):
        for cam in cams:
            send(cam, t_ns)
    send(cams[0], c)
    send(cams[1], c)

    def late() -> None:
        for cam, t_ns in [(cams[2], c), (cams[0], d)]:
            time.sleep(0.03)
            send(cam, t_ns)

    feeder = threading.Thread(target=late)
    feeder.start()
    first = worker._next_batch()
    feeder.join()
    assert [(f.camera_id, f.t_ns) for f in first] == [(cam, c) for cam in cams]
    assert worker.frames_skipped == 6  # instants a and b
    # the other 11 cameras of the layout sent nothing: no longer waited for
    assert worker.expected == set(cams)

    for cam in cams[1:]:
        send(cam, d)
    second = worker._next_batch()
    assert [(f.camera_id, f.t_ns) for f in second] == [(cam, d) for cam in cams]
    assert worker.frames_skipped == 6


def test_vision_recording_replaces_the_simulated_tracks(demo_store: StoreLayout, tmp_path: Path) -> None:
    scenario = random_scenario(demo_store, 1, 0.5, seed=3)
    sim = tmp_path / "sim.mcap"
    simulate(demo_store, scenario, sim, frames=True, frame_fps=0.5)
    out = tmp_path / "vision.mcap"
    pipeline = VisionPipeline(demo_store, DetectorConfig(device="cpu"))
    n = vision_recording(pipeline, sim, out, device_id="vision-test", progress=False)
    assert n > 0
    topics = Counter(r.topic for r in read_messages(out))
    sim_topics = Counter(r.topic for r in read_messages(sim))
    tracks_topic = f"{store_prefix('demo')}/tracks"
    devices = {decode(tracks_topic, r.data).header.device_id for r in read_messages(out, [tracks_topic])}
    assert devices == {"vision-test"}  # the simulator's tracker is gone
    # every frame instant gives one store-level message; truth and the other sensors are all kept
    frame_times = {
        (r.json()["timestamp"]["sec"], r.json()["timestamp"]["nsec"])
        for r in read_messages(sim)
        if "/camera/" in r.topic
    }
    assert topics[tracks_topic] == len(frame_times)
    for topic, count in sim_topics.items():
        if topic.startswith("truth/") or "/weight/" in topic or "/gate/" in topic:
            assert topics[topic] == count
    assert not any("/frame" in t for t in topics)
    assert evaluate(out).truth == evaluate(sim).truth


def test_cli_runs_the_worker_on_a_video_file(plan: Plan, demo_store: StoreLayout, tmp_path: Path) -> None:
    cam, t0 = _busy_window(plan, demo_store)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), FPS, cam.resolution)
    for k in range(5):
        writer.write(render_frame(plan, cam, t0 + k / FPS, rng_for(0, "cli", k))[0])
    writer.release()
    out = tmp_path / "tracks.mcap"
    rc = main(
        [
            "vision",
            "--store",
            str(DEMO_STORE),
            "--video",
            str(video),
            "--camera",
            cam.id,
            "--out",
            str(out),
            "--device",
            "cpu",
            "--start-ns",
            "0",
        ]
    )
    assert rc == 0
    topics = Counter(r.topic for r in read_messages(out))
    assert topics[f"{store_prefix('demo')}/camera/{cam.id}/tracks"] == 5
    assert topics[f"{store_prefix('demo')}/tracks"] == 5


def test_cli_says_what_is_missing_without_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "vision",
            "--store",
            str(DEMO_STORE),
            "--video",
            "x.mp4",
            "--camera",
            "cam-01",
            "--weights",
            str(tmp_path / "none.pt"),
        ]
    )
    assert rc == 2
    assert "weights" in capsys.readouterr().err


def test_end_to_end_vision_tracks_drive_the_fusion_engine(demo_store: StoreLayout, tmp_path: Path) -> None:
    """A shopper alone in the store: frames -> vision -> fusion, against the same recording's truth.
    (With several shoppers identity is not good enough yet: see docs/vision.md.)"""
    sim = tmp_path / "sim.mcap"
    simulate(demo_store, random_scenario(demo_store, 1, 1.5, seed=2), sim, frames=True, frame_fps=2.0)
    out = tmp_path / "vision.mcap"
    vision_recording(VisionPipeline(demo_store, DetectorConfig(device="cpu")), sim, out, progress=False)
    with_vision, with_simulated_tracks = evaluate(out), evaluate(sim)
    assert with_vision.items.actual >= 3
    # bound at the gate by vision's track, every charged item is right, and review settles the rest
    assert with_vision.items.true_positive == with_vision.items.predicted
    assert with_vision.after_review.f1 == pytest.approx(1.0)
    assert with_vision.items.f1 >= with_simulated_tracks.items.f1 - 0.01


def test_end_to_end_three_shoppers_each_cart_as_with_simulated_tracks(demo_store: StoreLayout, tmp_path: Path) -> None:
    """Three shoppers in the store at once (people at shelves keeping their bodies apart, as random
    scenarios do): every visit is bound at the turnstile to its own vision track, and the fusion charges
    nothing wrong: what it is not sure of goes to staff, and staff's answers make every cart what the
    truth says. With the simulator's tracks (which also carry hands and looks) every item is charged.

    This holds for this scenario, not for every one: over seven 3-shopper scenarios (seeds 3-6
    shoulder to shoulder, 4-6 spaced) vision's tracks charged 6 units wrong with the shipped detector
    and 8 with the one before it, and on seed 3 shoulder to shoulder (this test's scene until the
    detector was retrained) 2 of 3 (docs/vision.md). Vision is not yet within one point of simulated
    tracks."""
    sim = tmp_path / "sim.mcap"
    simulate(demo_store, random_scenario(demo_store, 3, 1.5, seed=6), sim, frames=True, frame_fps=2.0)
    out = tmp_path / "vision.mcap"
    vision_recording(VisionPipeline(demo_store, DetectorConfig(device="cpu")), sim, out, progress=False)
    with_vision, with_simulated_tracks = evaluate(out), evaluate(sim)
    assert with_vision.visits == 3
    assert with_vision.items.actual >= 3
    assert with_vision.items.true_positive == with_vision.items.predicted >= with_vision.items.actual - 1
    assert with_vision.after_review.f1 == pytest.approx(1.0)
    assert with_simulated_tracks.items.true_positive == with_simulated_tracks.items.actual
