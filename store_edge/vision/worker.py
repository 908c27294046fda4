"""`store-edge vision` and `store-edge camera`: the I/O around the two stages of the vision path.

Sources of frames: a video file (MP4, or anything OpenCV opens: an RTSP URL, a USB camera index) for
one camera; a recording with `camera/*/frame` messages (`store-edge simulate --frames`); or the live
`camera/CAM/frame` topics on MQTT. Outputs: `camera/{id}/tracks` per processed frame and `tracks`
(store-level `ShopperTracks`) per tick, published on MQTT or written into a recording.

Offline (file and recording), every frame is processed, in time order, frames of one instant in one
batch. Live, each batch is one instant of the cameras, whose frames may come tens of milliseconds apart:
the worker waits (briefly) for the rest of an instant before it runs it. A worker that falls behind skips
frames: each batch takes the newest frame of every camera.

Live, the stages may run in one process (`LiveVisionWorker` with both stages: frames in, camera tracks
and store tracks out) or apart: `LiveVisionWorker` with the per-camera stage only, for some of the
store's cameras, on each of several machines, and one `LiveStoreWorker` that takes the cameras'
`camera/+/tracks`, one instant at a time in the same way, and publishes `tracks`.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from store_edge.live.mqtt import BrokerAddress, MqttLink
from store_edge.protocol import messages as m
from store_edge.protocol.codec import ProtocolError, decode, encode, schema_name
from store_edge.protocol.topics import ROUTES, parse_topic, store_prefix, topic_for
from store_edge.protocol.truth import TRUTH_MODELS
from store_edge.recording.mcap_io import RecordingWriter, read_messages, read_metadata
from store_edge.vision.detector import CameraResult, Frame, VisionPipeline
from store_edge.vision.store_stage import StoreStage
from store_edge.vision.store_tracker import FloorTrack

log = logging.getLogger(__name__)
NS = 1_000_000_000


@dataclass
class HeaderSource:
    """Headers of one device: a boot id per start and a sequence number per message."""

    device_id: str
    boot_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    seq: int = 0

    def next(self, ts_ns: int) -> m.Header:
        self.seq += 1
        return m.Header(device_id=self.device_id, boot_id=self.boot_id, seq=self.seq, ts_ns=ts_ns)


def decode_image(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ProtocolError("camera frame is not a decodable image")
    return np.asarray(img, dtype=np.uint8)


def frame_from_message(msg: m.CameraFrame) -> Frame:
    return Frame(msg.frame_id, msg.timestamp.ns, decode_image(base64.b64decode(msg.data)))


def recorded_frame_messages(path: str | Path) -> Iterator[m.CameraFrame]:
    """A recording's camera frames as sent, every camera, in recording order."""
    for rec in read_messages(path):
        parsed = parse_topic(rec.topic)
        if parsed is None or parsed.kind != "camera_frame":
            continue
        msg = decode(rec.topic, rec.data, parsed)
        assert isinstance(msg, m.CameraFrame)
        yield msg


def frames_from_recording(path: str | Path) -> Iterator[Frame]:
    for msg in recorded_frame_messages(path):
        yield frame_from_message(msg)


def frames_from_video(source: str, camera_id: str, start_ns: int, fps: float | None = None) -> Iterator[Frame]:
    """Every frame of a video file (or stream), timed from `start_ns` at the file's own rate (or `fps`)."""
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video source {source!r}")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or 15.0
    k = 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                return
            yield Frame(camera_id, start_ns + round(k * NS / rate), np.asarray(img, dtype=np.uint8))
            k += 1
    finally:
        cap.release()


class VisionOutput:
    """Turns pipeline results into protocol messages of one vision worker."""

    def __init__(self, store_id: str, device_id: str) -> None:
        self.store_id = store_id
        self.headers = HeaderSource(device_id)

    def camera_tracks(self, results: Iterable[CameraResult]) -> list[m.CameraTracks]:
        return [
            m.CameraTracks(header=self.headers.next(r.t_ns), camera_id=r.camera_id, frame_ts_ns=r.t_ns, tracks=r.tracks)
            for r in results
        ]

    def shopper_tracks(self, t_ns: int, tracks: list[FloorTrack]) -> m.ShopperTracks:
        return m.ShopperTracks(
            header=self.headers.next(t_ns),
            tracks=[
                m.ShopperTrack(
                    track_id=t.track_id,
                    x=round(t.x, 3),
                    y=round(t.y, 3),
                    confidence=round(t.confidence, 3),
                    appearance=[round(v, 4) for v in t.appearance] if t.appearance is not None else None,
                    hand=m.HandPoint(x=round(t.hand[0], 3), y=round(t.hand[1], 3), z=round(t.hand[2], 3))
                    if t.hand is not None
                    else None,
                )
                for t in tracks
            ],
        )


def process(pipeline: VisionPipeline, output: VisionOutput, frames: list[Frame]) -> list[m.Message]:
    """One batch of frames (one instant, or the newest of each camera): camera tracks, then (with the
    store stage) store tracks made from those same messages, as a store stage elsewhere would get them."""
    camera_tracks = output.camera_tracks(pipeline.camera_stage.detect(frames))
    msgs: list[m.Message] = list(camera_tracks)
    if camera_tracks and pipeline.store_stage is not None:
        msgs.append(store_tick(pipeline.store_stage, output, camera_tracks))
    return msgs


def store_tick(stage: StoreStage, output: VisionOutput, batch: Sequence[m.CameraTracks]) -> m.ShopperTracks:
    """The store stage on one instant's camera tracks: the `ShopperTracks` of that instant."""
    t_ns, tracks = stage.step(batch)
    return output.shopper_tracks(t_ns, tracks)


def run_offline(
    pipeline: VisionPipeline, output: VisionOutput, frames: Iterable[Frame], batch_window_ns: int = NS // 100
) -> Iterator[m.Message]:
    """Frames in time order; those within `batch_window_ns` of the batch's first go through together."""
    batch: list[Frame] = []
    for f in frames:
        if batch and (f.t_ns - batch[0].t_ns > batch_window_ns or any(b.camera_id == f.camera_id for b in batch)):
            yield from process(pipeline, output, batch)
            batch = []
        batch.append(f)
    if batch:
        yield from process(pipeline, output, batch)


def vision_recording(
    pipeline: VisionPipeline,
    source: str | Path,
    out: str | Path,
    device_id: str = "vision",
    keep_frames: bool = False,
    progress: bool = True,
) -> int:
    """A copy of a recording whose `tracks` come from the vision path on its camera frames instead of
    the simulator's tracker; truth and every other sensor are kept, so `store-edge eval` scores the
    fusion on vision's tracks. Returns the number of vision messages written."""
    meta = read_metadata(source)
    store_id = pipeline.store.store_id
    output = VisionOutput(store_id, device_id)
    frames = sum(
        1 for r in read_messages(source) if (p := parse_topic(r.topic)) is not None and p.kind == "camera_frame"
    )
    written = 0
    with RecordingWriter(out) as w:
        for name, values in meta.items():
            w.metadata(name, values)
        w.copy_attachments(source)
        for rec in read_messages(source):
            parsed = parse_topic(rec.topic)
            if rec.topic.startswith("truth/"):
                w.write(
                    rec.topic, rec.schema_name, TRUTH_MODELS[rec.topic], rec.data, rec.log_time_ns, rec.publish_time_ns
                )
            elif parsed is not None and parsed.kind == "shopper_tracks":
                continue  # replaced by vision's
            elif parsed is not None and (keep_frames or parsed.kind != "camera_frame"):
                model = ROUTES[parsed.kind].model
                w.write(rec.topic, rec.schema_name, model, rec.data, rec.log_time_ns, rec.publish_time_ns)
        with tqdm(total=frames, unit="frame", desc="vision", disable=not progress) as bar:
            for msg in run_offline(pipeline, output, _counted(frames_from_recording(source), bar)):
                ts = msg.header.ts_ns
                w.write(topic_for(store_id, msg), schema_name(type(msg)), type(msg), encode(msg), ts, ts, written)
                written += 1
    return written


def _counted(frames: Iterator[Frame], bar: tqdm[Any]) -> Iterator[Frame]:
    for f in frames:
        bar.update()
        yield f


class _Timed(Protocol):
    """What batching by instant needs of an item: its camera and its time."""

    @property
    def camera_id(self) -> str: ...

    @property
    def t_ns(self) -> int: ...


Item = TypeVar("Item", bound=_Timed)


class _InstantWorker(Generic[Item]):
    """Takes one camera item (a frame, or a frame's camera tracks) per camera and instant from MQTT,
    runs each whole instant as one batch (`_handle`) and publishes what that gives."""

    def __init__(
        self,
        store_id: str,
        broker: BrokerAddress,
        device_id: str,
        cameras: Iterable[str],
        subscriptions: tuple[str, ...],
        settle_s: float,
    ) -> None:
        self.store_id = store_id
        self.output = VisionOutput(store_id, device_id)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=1000)
        self.stopping = threading.Event()
        self.received = self.done = self.skipped = self.bad = self.batches = 0
        """Messages received, items run, items passed over (a newer one of their camera came, or the
        inbox was full), messages that could not be decoded, batches run."""
        self.cameras = frozenset(cameras)
        """The cameras this worker serves; items of other cameras are dropped."""
        self.settle_s = settle_s
        """How long a batch still waiting for an expected camera waits after the last item that joined it."""
        self.expected = set(self.cameras)
        """The cameras a batch waits for: this worker's, less those that sent nothing while a batch waited
        out `settle_s` (a camera down, or not installed); a camera is expected again once it sends."""
        self._held: list[Item] = []
        """Items of a camera's next instant that came while a batch waited: the next batch's first."""
        self._last_t_ns: int | None = None
        """The instant of the last batch."""
        self.link = MqttLink(
            broker, device_id, on_message=self._message, subscriptions=subscriptions, skip_retained=True
        )
        self.thread = threading.Thread(target=self._run, name=f"vision-{device_id}", daemon=True)

    def _decode(self, topic: str, payload: bytes) -> Item | None:
        """The item in a message, or None for a message of another kind; raises `ProtocolError`."""
        raise NotImplementedError

    def _handle(self, batch: list[Item]) -> list[m.Message]:
        """One instant: the messages to publish."""
        raise NotImplementedError

    def _message(self, topic: str, payload: bytes, mid: int) -> None:
        self.received += 1
        try:
            self.inbox.put_nowait((topic, payload))
        except queue.Full:
            self.skipped += 1

    def _take(self, timeout_s: float) -> Item | None:
        """The next item of this worker's cameras from the inbox, waiting up to `timeout_s` (0: only one
        queued now)."""
        while True:
            try:
                topic, payload = self.inbox.get(timeout=timeout_s) if timeout_s > 0 else self.inbox.get_nowait()
            except queue.Empty:
                return None
            try:
                item = self._decode(topic, payload)
            except ProtocolError as e:
                self.bad += 1
                log.warning("dropped a message on %s: %s", topic, e.reason)
                continue
            if item is None or item.camera_id not in self.cameras:
                continue
            self.expected.add(item.camera_id)
            return item

    def _keep_newest(self, batch: dict[str, Item], item: Item) -> None:
        old = batch.get(item.camera_id)
        if old is not None:
            self.skipped += 1
        if old is None or item.t_ns >= old.t_ns:
            batch[item.camera_id] = item

    def _instant(self, batch: dict[str, Item]) -> int | None:
        """The newest item time of the batch, if later than the last batch's instant (items that come
        after their instant went through only join the next one; they do not make an instant of their own)."""
        t_ns = max(f.t_ns for f in batch.values())
        return t_ns if self._last_t_ns is None or t_ns > self._last_t_ns else None

    def _complete(self, batch: dict[str, Item], t_ns: int | None) -> bool:
        return t_ns is not None and all(c in batch and batch[c].t_ns >= t_ns for c in self.expected)

    def _next_batch(self) -> list[Item]:
        """One instant: the newest item of each camera.

        Starts from the items held back by the last batch, or waits for one, and takes everything queued
        with them, keeping the newest item of each camera: a worker that fell behind skips frames. The
        newest of those items is the batch's instant. Then it waits for the rest of that instant: until
        every expected camera has an item at or after it, or `settle_s` passes with no item joining. An
        item of a camera that already has one at or after the instant is of its next instant: it is held
        for the next batch, not merged into this one."""
        batch: dict[str, Item] = {}
        arrived, self._held = self._held, []
        if not arrived:
            first = self._take(0.2)
            if first is None:
                return []
            arrived = [first]
        while (f := self._take(0)) is not None:
            arrived.append(f)
        for f in arrived:
            self._keep_newest(batch, f)
        t_ns = self._instant(batch)
        deadline = time.monotonic() + self.settle_s
        while not (complete := self._complete(batch, t_ns)):
            left = deadline - time.monotonic()
            f = self._take(left) if left > 0 else None
            if f is None:
                break
            if t_ns is not None and f.camera_id in batch and batch[f.camera_id].t_ns >= t_ns:
                self._held.append(f)
                continue
            self._keep_newest(batch, f)
            if t_ns is None:
                t_ns = self._instant(batch)
            deadline = time.monotonic() + self.settle_s
        if t_ns is not None:
            self._last_t_ns = t_ns
            if not complete:
                silent = self.expected - batch.keys() - {f.camera_id for f in self._held}
                if silent:
                    log.info("nothing of this instant from %s: not waiting for them until they send", sorted(silent))
                    self.expected -= silent
        return sorted(batch.values(), key=lambda f: f.t_ns)

    def _run(self) -> None:
        while not self.stopping.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            for msg in self._handle(batch):
                self.link.publish(topic_for(self.store_id, msg), encode(msg))
            self.done += len(batch)
            self.batches += 1

    def start(self) -> _InstantWorker[Item]:
        self.link.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.link.stop()


class LiveVisionWorker(_InstantWorker[Frame]):
    """Subscribes to the frames of the pipeline's cameras (`camera/+/frame` for all of a store's) and
    publishes their camera tracks, and with the store stage (`VisionPipeline(store_stage=True)`, the
    default) the store tracks too."""

    def __init__(self, pipeline: VisionPipeline, broker: BrokerAddress, device_id: str, settle_s: float = 0.1) -> None:
        """`settle_s`: the ~14 cameras' frames of one instant come over MQTT within tens of milliseconds, and
        cameras send 2-4 frames/s (250-500 ms apart): 0.1 s is under half a frame period, so a camera that
        is late or down costs a batch at most that, and a batch never waits into the next instant."""
        self.pipeline = pipeline
        store_id = pipeline.store.store_id
        super().__init__(store_id, broker, device_id, pipeline.cameras, frame_topics(pipeline), settle_s)

    @property
    def frames_in(self) -> int:
        return self.received

    @property
    def frames_done(self) -> int:
        return self.done

    @property
    def frames_skipped(self) -> int:
        return self.skipped

    @property
    def bad_frames(self) -> int:
        return self.bad

    def _decode(self, topic: str, payload: bytes) -> Frame | None:
        msg = decode(topic, payload)
        return frame_from_message(msg) if isinstance(msg, m.CameraFrame) else None

    def _handle(self, batch: list[Frame]) -> list[m.Message]:
        return process(self.pipeline, self.output, batch)

    def start(self) -> LiveVisionWorker:
        super().start()
        return self


def frame_topics(pipeline: VisionPipeline) -> tuple[str, ...]:
    """What a vision worker subscribes to: `camera/+/frame` for every camera of the store, else each of
    its cameras' frame topic (the broker sends it no other camera's frames)."""
    prefix = store_prefix(pipeline.store.store_id)
    if set(pipeline.cameras) == {c.id for c in pipeline.store.cameras}:
        return (f"{prefix}/camera/+/frame",)
    return tuple(f"{prefix}/camera/{cid}/frame" for cid in pipeline.cameras)


@dataclass(frozen=True)
class _Tracks:
    """One camera's tracks of one frame, as the store stage batches them."""

    msg: m.CameraTracks

    @property
    def camera_id(self) -> str:
        return self.msg.camera_id

    @property
    def t_ns(self) -> int:
        return self.msg.frame_ts_ns


class LiveStoreWorker(_InstantWorker[_Tracks]):
    """The store stage on its own: subscribes to `camera/+/tracks` (or those of `cameras`), takes one
    instant of the cameras at a time like the vision worker does with frames (waiting for every camera
    it expects, or `settle_s` with nothing joining), and publishes that instant's `tracks`."""

    def __init__(
        self,
        stage: StoreStage,
        broker: BrokerAddress,
        device_id: str,
        cameras: Iterable[str] | None = None,
        settle_s: float = 0.2,
    ) -> None:
        """`settle_s` (0.2 s by default, twice the vision worker's): the tracks of one instant come from
        several camera machines, each after running its batch, so they spread over the difference in
        those machines' processing times as well as over the cameras' sending."""
        self.stage = stage
        store_id = stage.store.store_id
        chosen = list(cameras) if cameras is not None else [c.id for c in stage.store.cameras]
        unknown = sorted(set(chosen) - set(stage.cameras))
        if unknown:
            raise ValueError(f"store {store_id} has no camera {', '.join(unknown)}")
        prefix = store_prefix(store_id)
        if cameras is None:
            topics: tuple[str, ...] = (f"{prefix}/camera/+/tracks",)
        else:
            topics = tuple(f"{prefix}/camera/{cid}/tracks" for cid in chosen)
        super().__init__(store_id, broker, device_id, chosen, topics, settle_s)

    def _decode(self, topic: str, payload: bytes) -> _Tracks | None:
        msg = decode(topic, payload)
        return _Tracks(msg) if isinstance(msg, m.CameraTracks) else None

    def _handle(self, batch: list[_Tracks]) -> list[m.Message]:
        return [store_tick(self.stage, self.output, [item.msg for item in batch])]

    def start(self) -> LiveStoreWorker:
        super().start()
        return self


def publish_camera(
    source: str,
    camera_id: str,
    store_id: str,
    broker: BrokerAddress,
    fps: float | None = None,
    loop: bool = False,
    max_frames: int | None = None,
    jpeg_quality: int = 80,
) -> int:
    """`store-edge camera`: frames of a video file, RTSP URL or USB camera (OpenCV) as `CameraFrame`s on
    `camera/{id}/frame`, at `fps` (default the source's own). Returns frames sent."""
    link = MqttLink(broker, f"camera-{camera_id}").start()
    if not link.connected.is_set():
        link.stop()
        raise ConnectionError(f"MQTT broker {broker.url} not reachable")
    headers = HeaderSource(camera_id)
    sent = 0
    try:
        while True:
            cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
            if not cap.isOpened():
                raise FileNotFoundError(f"cannot open video source {source!r}")
            rate = fps or cap.get(cv2.CAP_PROP_FPS) or 15.0
            t0 = time.monotonic()
            k = 0
            while max_frames is None or sent < max_frames:
                ok, img = cap.read()
                if not ok:
                    break
                delay = t0 + k / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                if not ok:
                    continue
                ts = time.time_ns()
                msg = m.CameraFrame(
                    header=headers.next(ts),
                    timestamp=m.FoxgloveTime.from_ns(ts),
                    frame_id=camera_id,
                    format="jpeg",
                    data=base64.b64encode(buf.tobytes()).decode(),
                )
                link.publish(topic_for(store_id, msg), encode(msg)).wait_for_publish(timeout=10)
                sent += 1
                k += 1
            cap.release()
            if not loop or (max_frames is not None and sent >= max_frames):
                return sent
    finally:
        link.stop()


def publish_recorded_frames(
    recording: str | Path,
    store_id: str,
    broker: BrokerAddress,
    camera_id: str | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    speed: float = 1.0,
) -> int:
    """`store-edge camera REC.mcap`: a recording's camera frames (one camera, or all) on MQTT with their
    recorded spacing (divided by `speed`), stamped with the present time; `fps` thins each camera to at
    most that rate."""
    link = MqttLink(broker, f"camera-replay-{time.time_ns() % 10**9}").start()
    if not link.connected.is_set():
        link.stop()
        raise ConnectionError(f"MQTT broker {broker.url} not reachable")
    headers: dict[str, HeaderSource] = {}
    last_sent: dict[str, int] = {}
    t0_rec: int | None = None
    t0_wall = time.time_ns()
    sent = 0
    try:
        for msg in recorded_frame_messages(recording):
            if camera_id is not None and msg.frame_id != camera_id:
                continue
            t_rec = msg.timestamp.ns
            if fps and msg.frame_id in last_sent and t_rec - last_sent[msg.frame_id] < NS / fps - NS // 1000:
                continue
            last_sent[msg.frame_id] = t_rec
            if t0_rec is None:
                t0_rec = t_rec
            due = t0_wall + round((t_rec - t0_rec) / speed)
            delay = (due - time.time_ns()) / NS
            if delay > 0:
                time.sleep(delay)
            src = headers.setdefault(msg.frame_id, HeaderSource(msg.frame_id))
            out = m.CameraFrame(
                header=src.next(due),
                timestamp=m.FoxgloveTime.from_ns(due),
                frame_id=msg.frame_id,
                format=msg.format,
                data=msg.data,
            )
            link.publish(topic_for(store_id, out), encode(out)).wait_for_publish(timeout=10)
            sent += 1
            if max_frames is not None and sent >= max_frames:
                break
    finally:
        link.stop()
    return sent
