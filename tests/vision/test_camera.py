"""`store-edge camera`: frames of a video file or of a recording onto MQTT, as CameraFrame messages."""

from __future__ import annotations

import base64
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from store_edge.cli import main
from store_edge.layout import StoreLayout
from store_edge.live.mqtt import EmbeddedBroker, MqttLink
from store_edge.protocol import messages as m
from store_edge.protocol.codec import decode
from store_edge.protocol.topics import store_prefix
from store_edge.sim.frames import render_frame
from store_edge.sim.generate import random_scenario
from store_edge.sim.plan import build_plan, rng_for
from store_edge.sim.simulator import simulate
from store_edge.vision.worker import decode_image, frame_from_message, publish_recorded_frames

FRAME_FILTER = f"{store_prefix('demo')}/camera/+/frame"


def _collect(broker: EmbeddedBroker, publish: Callable[[], object]) -> list[m.CameraFrame]:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    listener = MqttLink(
        broker.address,
        "test-frame-listener",
        on_message=lambda t, p, _mid: got.put((t, p)),
        subscriptions=(FRAME_FILTER,),
    ).start()
    assert listener.subscribed.wait(10)
    try:
        publish()
        time.sleep(0.5)
    finally:
        listener.stop()
    out = []
    while not got.empty():
        topic, payload = got.get()
        msg = decode(topic, payload)
        assert isinstance(msg, m.CameraFrame)
        out.append(msg)
    return out


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker().start()
    yield embedded
    embedded.stop()


def test_video_file_frames_arrive_in_order_as_jpegs(
    demo_store: StoreLayout, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    plan = build_plan(demo_store, random_scenario(demo_store, 2, 1, seed=2))
    cam = demo_store.cameras[0]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, cam.resolution)
    originals = [render_frame(plan, cam, 5.0 + k / 10, rng_for(0, "cam", k))[0] for k in range(6)]
    for img in originals:
        writer.write(img)
    writer.release()
    url = broker.address.url
    frames = _collect(
        broker,
        lambda: main(["camera", str(video), "--store", "demo", "--camera", cam.id, "--broker", url, "--fps", "50"]),
    )
    assert [f.header.seq for f in frames] == [1, 2, 3, 4, 5, 6]
    assert {f.frame_id for f in frames} == {cam.id}
    stamps = [f.timestamp.ns for f in frames]
    assert stamps == sorted(stamps)
    for sent, original in zip(frames, originals, strict=True):
        img = frame_from_message(sent).image
        assert img.shape == original.shape
        # video and JPEG compression, not another picture
        assert float(np.mean(np.abs(img.astype(float) - original.astype(float)))) < 8.0


def test_recording_frames_of_one_camera_are_republished(
    demo_store: StoreLayout, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rec = tmp_path / "rec.mcap"
    simulate(demo_store, random_scenario(demo_store, 1, 0.5, seed=3), rec, frames=True, frame_fps=0.5)
    cam = demo_store.cameras[1].id
    frames = _collect(broker, lambda: publish_recorded_frames(rec, "demo", broker.address, cam, speed=100.0))
    assert len(frames) == 15  # 30 s at 0.5 frames/s
    assert {f.frame_id for f in frames} == {cam}
    assert decode_image(base64.b64decode(frames[0].data)).shape == (480, 640, 3)
