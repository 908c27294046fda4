"""`store-edge demo`: the whole store on one machine, with one command.

It starts an MQTT broker (embedded, or `MQTT_URL`), the cloud API (`cloud-api serve`, on SQLite in the
output folder or on `DATABASE_URL`) seeded with the store and one shopper account per recorded
account, the edge worker (`store-edge run`), and, when the recording holds camera frames, the vision
worker (`store-edge vision`). Then it plays a recording made by the simulator into the broker faster
than real time, acting as the entry gate: where the recording has a shopper scan a
code, the shopper's account asks the cloud for a fresh entry code, the gate posts it to the cloud and
publishes the cloud's decision (with the cloud's visit id) instead of the recorded one. With camera
frames, the recorded (simulated) tracks are left out and the frames go to the vision worker instant by
instant as it can take them (`VisionFeed`); the rest keeps in step with it, as the edge worker needs
its tracks in time order with the other inputs. Receipts come back through the cloud's webhook to a
small receiver here, which prints each as it arrives. At the end it scores the receipts against the
recording's ground truth and says where staff review the visits held for review; with vision, also
what the vision worker did and the carts of any visits still open on the edge worker (a shopper vision
never tracked at all; one it lost is counted out by the exit's person counter).

The parts talk only over MQTT and HTTP, as they would in a store: this module imports neither the
worker nor the cloud service.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from store_edge.evaluation import score_items
from store_edge.live.mqtt import EmbeddedBroker, MqttLink, free_port, parse_broker_url
from store_edge.protocol.codec import ProtocolError, decode, encode
from store_edge.protocol.messages import (
    CameraFrame,
    CameraTracks,
    CartUpdate,
    DeviceStatus,
    GateDecision,
    GateScan,
    ShopperTracks,
)
from store_edge.protocol.topics import parse_topic, store_prefix
from store_edge.protocol.truth import TRUTH_RECEIPTS, TruthReceipt
from store_edge.recording.mcap_io import RecordedMessage, read_messages

if TYPE_CHECKING:
    from store_edge.layout import StoreLayout

log = logging.getLogger(__name__)
NS = 1_000_000_000
VISION_START_S = 180.0
"""The vision worker loads its detector (and PyTorch) before it listens: slow on a busy machine."""
VISION_ANSWER_S = 60.0
"""Longest wait for the vision worker's tracks of one frame instant."""
VISION_RESEND_S = 10.0
"""No answer at all to the first frames after this long: they are sent once more."""
REPLAY_BACKLOG = 500
"""Most messages the replay runs ahead of what the edge worker has taken (well under a broker's queue)."""
REPLAY_STALL_S = 10.0
"""Longest the replay waits for the edge worker to catch up before it goes on regardless."""


class DemoError(RuntimeError):
    """A part of the demo did not come up or answered wrongly; the message says which and why."""


@dataclass(frozen=True)
class DemoConfig:
    store: Path
    recording: Path
    out_dir: Path
    speed: float = 10.0
    once: bool = False
    broker_url: str | None = None
    database_url: str | None = None
    progress: bool = True


@dataclass
class DemoResult:
    visits: dict[str, str] = field(default_factory=dict)
    """Recorded visit id -> the cloud's visit id."""
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Cloud visit id -> the receipt as the webhook delivered it."""
    held: list[str] = field(default_factory=list)
    """Cloud visits whose receipt waits for staff review."""
    refused: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)
    """Cloud visits whose cart the edge worker still holds open when the replay is over (with vision's
    tracks: a shopper vision never tracked; offline, `store-edge eval` would close them at the end)."""
    open_carts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Cloud visit id -> its open cart as the edge worker last published it (`cart/VISIT`)."""
    gate_ms: list[float] = field(default_factory=list)
    score: dict[str, float] = field(default_factory=dict)
    vision: dict[str, Any] = field(default_factory=dict)
    """What the vision worker did (empty when the recording has no camera frames)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "visits": self.visits,
            "receipts": self.receipts,
            "held_for_review": self.held,
            "refused": self.refused,
            "open_at_edge": self.open,
            "open_carts": self.open_carts,
            "gate_ms": self.gate_ms,
            "score": self.score,
            "vision": self.vision,
        }


# --- HTTP helpers ------------------------------------------------------------------------------------
def call(method: str, url: str, key: str | None = None, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raise DemoError(f"{method} {url} answered {e.code}: {e.read().decode(errors='replace')[:300]}") from e


def wait_until_up(url: str, what: str, proc: subprocess.Popen[bytes] | None, timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: it is up
        except OSError:
            time.sleep(0.2)
    raise DemoError(f"{what} did not answer on {url} within {timeout_s:.0f} s")


class ReceiptReceiver:
    """The shopper app's backend, as far as the demo needs one: takes the cloud's receipt webhooks."""

    def __init__(self, on_receipt: Any) -> None:
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if body.get("event") == "receipt.created":
                    receiver.on_receipt(body["data"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.on_receipt = on_receipt
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, name="receipts", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/receipts"

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class Instant:
    """The camera frames of one instant of the recording, as they are sent (topic, payload) by camera."""

    t_ns: int
    frames: dict[str, tuple[str, bytes]] = field(default_factory=dict)


class VisionFeed:
    """Feeds the vision worker a recording's camera frames and follows what it publishes.

    The worker (`store-edge vision`) runs one instant of the cameras per batch: one `camera/CAM/tracks`
    per frame, then one store-level `tracks` at the batch's time; a worker that falls behind keeps only
    the newest frame of each camera. So that no frame is skipped, the next instant's frames go out just
    after the worker has published a batch: while it works on one instant, the next one waits in its
    queue, and never more (two instants of a camera queued together would lose the older)."""

    def __init__(self, device_id: str, instants: list[Instant]) -> None:
        self.device_id = device_id
        self.instants = instants
        self.sent = 0
        """Instants sent, oldest first."""
        self.done = 0
        """Instants whose tracks the worker has published (a prefix of those sent)."""
        self.cond = threading.Condition()
        self.seq = 0
        """Messages from the worker so far (each one's arrival number)."""
        self.answered: dict[tuple[str, int], int] = {}
        """(camera, frame time) -> the arrival number of its camera tracks."""
        self.newest: dict[str, tuple[int, int]] = {}
        """Camera -> (frame time, arrival number) of its newest camera tracks."""
        self.store_seq = 0
        """Arrival number of the newest store-level `tracks` message."""
        self.store_seen_at_send = 0
        self.resent = False
        self.camera_messages = self.store_messages = self.shopper_observations = 0
        self.track_ids: set[str] = set()

    def on_message(self, topic: str, payload: bytes, mid: int) -> None:
        try:
            msg = decode(topic, payload)
        except ProtocolError:
            return  # not the worker's (on a shared broker anybody may publish here)
        if msg.header.device_id != self.device_id:
            return
        with self.cond:
            self.seq += 1
            if isinstance(msg, CameraTracks):
                self.answered[(msg.camera_id, msg.frame_ts_ns)] = self.seq
                if msg.frame_ts_ns >= self.newest.get(msg.camera_id, (-1, 0))[0]:
                    self.newest[msg.camera_id] = (msg.frame_ts_ns, self.seq)
                self.camera_messages += 1
            elif isinstance(msg, ShopperTracks):
                self.store_seq = self.seq
                self.store_messages += 1
                self.shopper_observations += len(msg.tracks)
                self.track_ids.update(t.track_id for t in msg.tracks)
            self.cond.notify_all()

    def _answered(self, instant: Instant) -> bool:
        """Every frame answered (or passed over for a newer one of its camera), and the store-level
        tracks of the batch that held the last of them published."""
        last = 0
        for camera in instant.frames:
            got = self.answered.get((camera, instant.t_ns))
            if got is None:
                newer_ns, newer_seq = self.newest.get(camera, (-1, 0))
                if newer_ns <= instant.t_ns:
                    return False
                got = newer_seq
            last = max(last, got)
        return self.store_seq > last

    def pump(self, pub: MqttLink) -> None:
        """Note what the worker has answered; send the next instant when it is ready for it."""
        with self.cond:
            while self.done < self.sent and self._answered(self.instants[self.done]):
                self.done += 1
            waiting = self.sent - self.done
            if self.sent < len(self.instants) and (
                waiting == 0 or (waiting == 1 and self.store_messages > self.store_seen_at_send)
            ):
                for topic, data in self.instants[self.sent].frames.values():
                    pub.publish(topic, data)
                self.sent += 1
                self.store_seen_at_send = self.store_messages

    def resend_first(self, pub: MqttLink) -> None:
        """Nothing answered yet: its subscription may have reached the broker after the first frames.
        Sent again once (the worker may also just be slow to start: a frame twice does no harm)."""
        with self.cond:
            if self.seq == 0 and self.sent and not self.resent:
                for topic, data in self.instants[0].frames.values():
                    pub.publish(topic, data)
                self.resent = True

    def wait(self, timeout_s: float) -> None:
        """Until the worker publishes something (or the time is up)."""
        with self.cond:
            seq = self.seq
            self.cond.wait_for(lambda: self.seq != seq, timeout_s)

    def pending_before(self, t_ns: int) -> int | None:
        """Time of the oldest instant before `t_ns` not yet answered (None: all answered)."""
        with self.cond:
            if self.done < len(self.instants) and self.instants[self.done].t_ns < t_ns:
                return self.instants[self.done].t_ns
            return None


def format_receipt(r: dict[str, Any]) -> str:
    lines = [f"receipt {r['receipt_id']} for visit {r['visit_id']} ({r.get('account_id')}), {r['payment_state']}"]
    for ln in r["lines"]:
        promo = f"  [{ln['promotion']}]" if ln.get("promotion") else ""
        lines.append(f"    {ln['quantity']:>3} x {ln['name'][:40]:<40} {r['currency']} {ln['total']:>8}{promo}")
    lines.append(f"    subtotal {r['subtotal']}, discount {r['discount']}, tax {r['tax']}: total {r['total']}")
    return "\n".join(lines)


# --- the demo ---------------------------------------------------------------------------------------
class Demo:
    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.result = DemoResult()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.embedded: EmbeddedBroker | None = None
        self.receiver: ReceiptReceiver | None = None
        self.links: list[MqttLink] = []
        self.lock = threading.Lock()
        self.bin = Path(sys.executable).parent
        self.worker_id: str | None = None
        self.health_port: int | None = None
        self._records: list[RecordedMessage] | None = None
        self.vision: VisionFeed | None = None
        self.carts: dict[str, CartUpdate] = {}
        """The edge worker's newest cart update per visit (watched with the vision worker only)."""
        self.vision_proc: subprocess.Popen[bytes] | None = None

    def say(self, text: str) -> None:
        tqdm.write(text, file=sys.stdout)

    def _on_receipt(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.result.receipts[data["visit_id"]] = data
        self.say(format_receipt(data))

    def start(self) -> None:
        cfg = self.cfg
        if cfg.out_dir.exists():
            shutil.rmtree(cfg.out_dir / "cloud", ignore_errors=True)
            shutil.rmtree(cfg.out_dir / "edge-state", ignore_errors=True)
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        # broker
        if cfg.broker_url:
            self.broker = parse_broker_url(cfg.broker_url, os.environ)
        else:
            self.embedded = EmbeddedBroker().start()
            self.broker = self.embedded.address
        self.say(f"MQTT broker: {self.broker.url}{' (embedded)' if self.embedded else ''}")
        # receipts come back here
        self.receiver = ReceiptReceiver(self._on_receipt)
        # cloud
        port = free_port()
        self.cloud_url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "CLOUD_API_DATA_DIR": str(cfg.out_dir / "cloud"),
            "CLOUD_API_WEBHOOK_URL": self.receiver.url,
            "CLOUD_API_PUBLIC_URL": self.cloud_url,
        }
        if cfg.database_url:
            env["DATABASE_URL"] = cfg.database_url
        accounts = sorted(self._recorded_accounts())
        seeded = subprocess.run(
            [
                str(self.bin / "cloud-api"),
                "seed",
                "--store",
                str(cfg.store),
                "--json",
                "--shoppers",
                str(len(accounts)),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if seeded.returncode != 0:
            raise DemoError(f"cloud-api seed failed: {seeded.stderr.strip()[-600:]}")
        keys = json.loads(seeded.stdout)
        keys_file = cfg.out_dir / "keys.json"
        keys_file.write_text(seeded.stdout)
        keys_file.chmod(0o600)  # a demo's keys, but keys: only for this user
        self.gate_key: str = keys["devices"]["gate"]
        edge_key: str = keys["devices"]["edge"]
        self.staff_key: str = keys["staff"]["reviewer"]
        self.console_login: dict[str, str] = keys.get("console", {}).get("logins", {}).get("reviewer", {})
        # the test-mode accounts made for this (the named demo accounts include one whose card declines)
        shoppers: list[dict[str, str]] = [a for a in keys["shoppers"] if a["account_id"].startswith("acct-shopper-")]
        if len(shoppers) < len(accounts):
            raise DemoError(
                f"cloud-api seed made {len(shoppers)} shopper accounts, the recording needs {len(accounts)}"
            )
        self.accounts = {rec: shoppers[i] for i, rec in enumerate(accounts)}
        cloud = subprocess.Popen(
            [str(self.bin / "cloud-api"), "serve", "--port", str(port), "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(cfg.out_dir / "cloud-api.log", "wb"),  # noqa: SIM115 - the process owns it
        )
        self.procs.append(cloud)
        wait_until_up(f"{self.cloud_url}/openapi.json", "the cloud API", cloud)
        self.say(f"cloud API: {self.cloud_url} (OpenAPI at {self.cloud_url}/docs)")
        # edge worker
        # an id of this run's own: the worker keeps a persistent session, and on a shared broker an old
        # session of the same id would hand the new worker what other runs published meanwhile
        worker_id = self.worker_id = f"edge-demo-{uuid.uuid4().hex[:8]}"
        online = threading.Event()

        def on_status(topic: str, payload: bytes, mid: int) -> None:
            msg = decode(topic, payload)
            if isinstance(msg, DeviceStatus) and msg.header.device_id == worker_id and msg.status == "online":
                online.set()

        store_id = self._store_id()
        watch = MqttLink(
            self.broker,
            "demo-watch",
            on_message=on_status,
            subscriptions=(f"{store_prefix(store_id)}/status/+",),
            skip_retained=True,
        )
        self.links.append(watch.start())
        health = self.health_port = free_port()
        edge = subprocess.Popen(
            [str(self.bin / "store-edge"), "run", "--store", str(cfg.store), "--broker", self.broker.url,
             "--cloud", self.cloud_url, "--state-dir", str(cfg.out_dir / "edge-state"), "--worker-id", worker_id,
             "--health-port", str(health)],
            env=os.environ | {"CLOUD_API_KEY": edge_key},
            stdout=subprocess.DEVNULL,
            stderr=open(cfg.out_dir / "edge-worker.log", "wb"),  # noqa: SIM115 - the process owns it
        )  # fmt: skip
        self.procs.append(edge)
        if self._frames():
            self._start_vision()  # loads its detector meanwhile
        if not online.wait(60):
            raise DemoError(f"the edge worker did not come online (see {cfg.out_dir / 'edge-worker.log'})")
        self.say(f"edge worker: online (health and metrics on http://127.0.0.1:{health}/healthz)")
        if self.vision is not None:
            self._vision_ready()

    def _start_vision(self) -> None:
        """`store-edge vision` on the broker's camera frames; its tracks go to the edge worker by MQTT."""
        cfg = self.cfg
        device_id = f"vision-demo-{uuid.uuid4().hex[:8]}"
        feed = self.vision = VisionFeed(device_id, self._instants())
        prefix = store_prefix(self._store_id())
        link = MqttLink(
            self.broker,
            f"demo-vision-watch-{uuid.uuid4().hex[:8]}",
            on_message=feed.on_message,
            subscriptions=(f"{prefix}/tracks", f"{prefix}/camera/+/tracks"),
            skip_retained=True,
        )
        # a visit whose shopper vision never tracked stays open on the edge worker: its cart is shown at the end
        carts = MqttLink(
            self.broker,
            f"demo-carts-{uuid.uuid4().hex[:8]}",
            on_message=self._on_cart,
            subscriptions=(f"{prefix}/cart/+",),
            skip_retained=True,
        )
        self.links.append(carts.start())
        self.links.append(link.start())
        if not link.subscribed.wait(10):
            raise DemoError(f"could not subscribe to the vision worker's tracks on {self.broker.url}")
        log_path = cfg.out_dir / "vision-worker.log"
        proc = self.vision_proc = subprocess.Popen(
            [str(self.bin / "store-edge"), "vision", "--store", str(cfg.store), "--broker", self.broker.url,
             "--worker-id", device_id],
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "wb"),  # noqa: SIM115 - the process owns it
        )  # fmt: skip
        self.procs.append(proc)

    def _vision_ready(self) -> None:
        """The vision worker says so once it listens, after loading its detector."""
        feed, proc = self.vision, self.vision_proc
        assert feed is not None
        assert proc is not None
        log_path = self.cfg.out_dir / "vision-worker.log"
        end = time.monotonic() + VISION_START_S
        while "camera/+/frame on" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise DemoError(f"the vision worker exited with code {proc.returncode}: {' / '.join(tail)}")
            if time.monotonic() > end:
                raise DemoError(f"the vision worker did not start within {VISION_START_S:.0f} s (see {log_path})")
            time.sleep(0.2)
        frames = sum(len(i.frames) for i in feed.instants)
        cameras = {c for i in feed.instants for c in i.frames}
        self.say(
            f"vision worker: running ({feed.device_id}, log in {log_path}); the recording's {frames} frames of "
            f"{len(cameras)} cameras go to it, and its tracks replace the recorded (simulated) ones"
        )

    def _on_cart(self, topic: str, payload: bytes, mid: int) -> None:
        if not payload:
            return
        try:
            msg = decode(topic, payload)
        except ProtocolError:
            return
        if isinstance(msg, CartUpdate):
            with self.lock:
                old = self.carts.get(msg.visit_id)
                if old is None or msg.version >= old.version:
                    self.carts[msg.visit_id] = msg

    def _recording(self) -> list[RecordedMessage]:
        if self._records is None:
            self._records = list(read_messages(self.cfg.recording))
        return self._records

    def _frames(self) -> bool:
        return any(_kind(r.topic) == "camera_frame" for r in self._recording())

    def _instants(self) -> list[Instant]:
        """The recording's camera frames by instant (the frame's own time), oldest first."""
        instants: dict[int, Instant] = {}
        for r in self._recording():
            if _kind(r.topic) == "camera_frame":
                frame = decode(r.topic, r.data)
                assert isinstance(frame, CameraFrame)
                t_ns = frame.timestamp.ns
                instants.setdefault(t_ns, Instant(t_ns)).frames[frame.frame_id] = (r.topic, r.data)
        return sorted(instants.values(), key=lambda i: i.t_ns)

    def _store(self) -> StoreLayout:
        from store_edge.layout import load_store

        return load_store(self.cfg.store)

    def _store_id(self) -> str:
        return self._store().store_id

    def _recorded_accounts(self) -> set[str]:
        out = set()
        for rec in self._recording():
            if "/gate/" in rec.topic and rec.topic.endswith("/decision"):
                account = json.loads(rec.data).get("account_id")
                if account:
                    out.add(account)
        return out

    def play(self) -> None:
        """Replay the recording's wire messages, acting as the entry gate on each scan. With the vision
        worker running, its camera frames go to it as it can take them (`VisionFeed`), the recorded
        tracks stay out, and nothing later than a frame instant is sent before the worker has published
        its tracks of that instant: the edge worker merges its inputs by time, and takes a track message
        behind what it has merged as late (dead-lettered)."""
        cfg = self.cfg
        feed = self.vision
        wire = [r for r in self._recording() if not r.topic.startswith("truth/")]
        if feed is not None:
            wire = [r for r in wire if _kind(r.topic) not in ("camera_frame", "camera_tracks", "shopper_tracks")]
        pub = MqttLink(self.broker, "demo-replay").start()
        self.links.append(pub)
        # the gate answers a scan with the decision that follows it on the same gate
        pending_scan: dict[str, GateScan] = {}
        decisions: dict[str, GateDecision] = {}  # recorded scan token -> recorded decision
        for r in wire:
            if r.topic.endswith("/scan"):
                scan = decode(r.topic, r.data)
                assert isinstance(scan, GateScan)
                pending_scan[scan.gate_id] = scan
            elif r.topic.endswith("/decision"):
                dec = decode(r.topic, r.data)
                assert isinstance(dec, GateDecision)
                if dec.gate_id in pending_scan:
                    decisions[pending_scan.pop(dec.gate_id).token] = dec
        answer_for: dict[str, GateDecision] = {}  # recorded visit id -> our decision
        t0_log = wire[0].log_time_ns
        t0 = time.monotonic()
        infos = []
        desc = f"replaying {cfg.recording.name} at {cfg.speed:g}x"
        if feed is not None:
            desc = f"replaying {cfg.recording.name} at up to {cfg.speed:g}x, as fast as the vision worker goes"
        for sent, r in enumerate(tqdm(wire, desc=desc, unit="msg", disable=not cfg.progress)):
            if feed is not None:
                self._await_vision(pub, int(json.loads(r.data)["header"]["ts_ns"]))
            delay = t0 + (r.log_time_ns - t0_log) / NS / cfg.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            topic, data = r.topic, r.data
            if topic.endswith("/scan"):
                scan = decode(topic, data)
                assert isinstance(scan, GateScan)
                recorded = decisions.get(scan.token)
                if recorded is not None and recorded.account_id in self.accounts:
                    scan, ours = self._gate(scan, recorded)
                    if recorded.visit_id:
                        answer_for[recorded.visit_id] = ours
                    data = encode(scan)
            elif topic.endswith("/decision"):
                dec = decode(topic, data)
                assert isinstance(dec, GateDecision)
                if dec.visit_id in answer_for:
                    data = encode(answer_for[dec.visit_id].model_copy(update={"header": dec.header}))
            infos.append(pub.publish(topic, data))
            if sent % 200 == 199:
                self._keep_up(sent + 1)
            if len(infos) >= 500:
                for info in infos:
                    info.wait_for_publish(30)
                infos.clear()
        if feed is not None:
            self._await_vision(pub, None)  # the frames after the last other message too
        for info in infos:
            info.wait_for_publish(30)
        if feed is not None:
            span_s = (max(r.log_time_ns for r in wire) - t0_log) / NS
            self._vision_summary(span_s, time.monotonic() - t0)

    def _await_vision(self, pub: MqttLink, before_ns: int | None) -> None:
        """Feeds the vision worker until it has published its tracks of every frame instant before
        `before_ns` (None: of all)."""
        feed = self.vision
        assert feed is not None
        assert self.vision_proc is not None
        end_ns = before_ns if before_ns is not None else feed.instants[-1].t_ns + 1 if feed.instants else 0
        waited_for: int | None = None
        since = time.monotonic()
        while True:
            feed.pump(pub)
            pending = feed.pending_before(end_ns)
            if pending is None:
                return
            if pending != waited_for:
                waited_for, since = pending, time.monotonic()
            feed.wait(2.0)
            if self.vision_proc.poll() is not None:
                raise DemoError(
                    f"the vision worker exited with code {self.vision_proc.returncode} "
                    f"(see {self.cfg.out_dir / 'vision-worker.log'})"
                )
            waited = time.monotonic() - since
            if waited > VISION_RESEND_S:
                feed.resend_first(pub)
            if waited > VISION_ANSWER_S:
                raise DemoError(
                    f"the vision worker did not answer the frames of {(pending - feed.instants[0].t_ns) / NS:.1f} s "
                    f"into the recording within {VISION_ANSWER_S:.0f} s"
                )

    def _vision_summary(self, span_s: float, wall_s: float) -> None:
        feed = self.vision
        assert feed is not None
        times = [i.t_ns for i in feed.instants]
        self.result.vision = {
            "worker_id": feed.device_id,
            "frames": sum(len(i.frames) for i in feed.instants),
            "cameras": len({c for i in feed.instants for c in i.frames}),
            "frames_per_camera_s": round((len(times) - 1) / ((times[-1] - times[0]) / NS), 2) if len(times) > 1 else 0,
            "replay_s": round(wall_s, 1),
            "recording_s": round(span_s, 1),
            "camera_tracks": feed.camera_messages,
            "store_tracks": feed.store_messages,
            "shopper_observations": feed.shopper_observations,
            "track_ids": len(feed.track_ids),
        }
        self.say(
            f"replayed {span_s:.0f} s of recording in {wall_s:.0f} s ({span_s / wall_s:.1f}x real time; "
            f"the vision worker sets the pace)"
        )

    def _gate(self, scan: GateScan, recorded: GateDecision) -> tuple[GateScan, GateDecision]:
        """The shopper shows a fresh code; the gate asks the cloud; its answer replaces the recorded one."""
        assert recorded.account_id is not None
        shopper = self.accounts[recorded.account_id]
        code = call("POST", f"{self.cloud_url}/v1/shoppers/me/entry-codes", shopper["key"])
        t = time.perf_counter()
        answer = call(
            "POST",
            f"{self.cloud_url}/v1/gates/{scan.gate_id}/scans",
            self.gate_key,
            {"token": code["token"], "party_size": recorded.party_size},
        )
        self.result.gate_ms.append((time.perf_counter() - t) * 1000)
        ours = GateDecision(
            header=recorded.header,
            gate_id=scan.gate_id,
            decision=answer["decision"],
            visit_id=answer.get("visit_id"),
            account_id=answer.get("account_id"),
            party_size=answer.get("party_size") or recorded.party_size,
            reason=answer.get("reason"),
        )
        if ours.decision == "open" and ours.visit_id and recorded.visit_id:
            self.result.visits[recorded.visit_id] = ours.visit_id
            self.say(f"gate {scan.gate_id}: open for {shopper['account_id']}, visit {ours.visit_id}")
        else:
            self.result.refused.append(recorded.visit_id or "?")
            self.say(f"gate {scan.gate_id}: refused {shopper['account_id']}: {ours.reason}")
        return scan.model_copy(update={"token": code["token"]}), ours

    def wait_for_receipts(self, timeout_s: float = 120, settled_s: float = 3.0) -> None:
        """Every visit ends with a receipt, or is held for staff review. With the vision worker's tracks,
        a visit may also stay open on the edge worker: one whose shopper vision never tracked (one it lost
        is closed by the exit's person counter, or 120 s after). Those are known once the edge worker has
        nothing left to send and holds just those carts open, for `settled_s`."""
        end = time.monotonic() + timeout_s
        expected = set(self.result.visits.values())
        settled_since: float | None = None
        while time.monotonic() < end:
            held = {v["visit_id"] for v in call("GET", f"{self.cloud_url}/v1/staff/visits?state=held", self.staff_key)}
            with self.lock:
                done = set(self.result.receipts) | held
            if expected <= done:
                self.result.held = sorted(held & expected)
                return
            if self.vision is not None:
                edge = self._edge_metrics()
                left = expected - done
                if edge.get("edge_outbox_depth") == 0 and edge.get("edge_open_visits") == len(left):
                    settled_since = settled_since or time.monotonic()
                    if time.monotonic() - settled_since >= settled_s:
                        self.result.held = sorted(held & expected)
                        self.result.open = sorted(left)
                        with self.lock:
                            self.result.open_carts = {
                                v: self.carts[v].model_dump(mode="json") for v in left if v in self.carts
                            }
                        return
                else:
                    settled_since = None
            time.sleep(0.5)
        with self.lock:
            missing = expected - set(self.result.receipts)
        raise DemoError(f"no receipt within {timeout_s:.0f} s for visits {sorted(missing)}")

    def score(self) -> None:
        truth: dict[str, Counter[str]] = {}
        for r in read_messages(self.cfg.recording, [TRUTH_RECEIPTS]):
            t = TruthReceipt.model_validate_json(r.data)
            if t.visit_id in self.result.visits:
                truth[self.result.visits[t.visit_id]] = Counter({ln.sku: ln.quantity for ln in t.lines})
        held = set(self.result.held)
        charged: dict[str, Counter[str]] = {
            v: Counter({ln["sku"]: ln["quantity"] for ln in r["lines"]}) for v, r in self.result.receipts.items()
        }
        items = score_items(charged, {v: t for v, t in truth.items() if v not in held})
        exact = sum(charged.get(v, Counter()) == +t for v, t in truth.items() if v not in held)
        sent = len(truth) - len(held & set(truth))
        self.result.score = {
            "precision": round(items.precision, 4),
            "recall": round(items.recall, 4),
            "f1": round(items.f1, 4),
            "exact_receipts": round(exact / sent, 4) if sent else 1.0,
            "visits": len(truth),
            "held_for_review": len(held),
            "open_at_edge": len(self.result.open),
        }
        if self.result.open:
            # the open carts' confirmed lines as if they closed now (what `store-edge eval` scores offline)
            with_open = dict(charged)
            for v, cart in self.result.open_carts.items():
                with_open[v] = +Counter(
                    {ln["sku"]: ln["quantity"] for ln in cart["lines"] if ln["status"] == "confirmed"}
                )
            both = score_items(with_open, {v: t for v, t in truth.items() if v not in held})
            both_exact = sum(with_open.get(v, Counter()) == +t for v, t in truth.items() if v not in held)
            self.result.score |= {
                "f1_with_open_carts": round(both.f1, 4),
                "exact_with_open_carts": round(both_exact / sent, 4) if sent else 1.0,
            }

    def report(self) -> None:
        s = self.result.score
        gate = sorted(self.result.gate_ms)
        self.say("")
        if self.result.vision:
            self._report_vision()
        self.say(
            f"receipts sent: {len(self.result.receipts)} of {s['visits']} visits; "
            f"{s['held_for_review']} held for staff review"
        )
        if self.result.open:
            self.say(
                f"still open on the edge worker: {len(self.result.open)} visit(s) whose shopper the vision tracks "
                "never showed leaving (not charged; they count as missed below):"
            )
            names = {p.sku: p.name for p in self._store().products}
            for v in self.result.open:
                lines = self.result.open_carts.get(v, {}).get("lines", [])
                items = ", ".join(f"{ln['quantity']} x {names.get(ln['sku'], ln['sku'])}" for ln in lines)
                self.say(f"    visit {v}: {items or 'nothing taken'}")
        self.say(
            f"score against the ground truth (receipts sent): items precision {s['precision']:.3f}, "
            f"recall {s['recall']:.3f}, F1 {s['f1']:.3f}; exact receipts {s['exact_receipts']:.0%}"
        )
        if "f1_with_open_carts" in s:
            self.say(
                f"    counting the open carts as they stand: items F1 {s['f1_with_open_carts']:.3f}; "
                f"exact {s['exact_with_open_carts']:.0%}"
            )
        if gate:
            self.say(f"gate decisions: {len(gate)}, median {gate[len(gate) // 2]:.0f} ms, slowest {gate[-1]:.0f} ms")
        self.say(
            f"staff review: {len(self.result.held)} visits wait at {self.cloud_url}/v1/staff/visits?state=held "
            f"(API; staff key in {self.cfg.out_dir / 'keys.json'})"
        )
        held = call("GET", f"{self.cloud_url}/v1/staff/visits?state=held", self.staff_key)
        tickets = sum(line["status"] == "under_review" for v in held for line in v["lines"])
        who = self.console_login
        login = f"{who['login']} / {who['password']}" if who else f"the reviewer in {self.cfg.out_dir / 'keys.json'}"
        self.say(f"review console: {self.cloud_url}/console/ (log in as {login}); {tickets} open tickets")

    def _report_vision(self) -> None:
        v = self.result.vision
        metrics = self._edge_metrics()
        v["edge_tracks_in"] = int(metrics.get('edge_messages_in_total{kind="shopper_tracks"}', 0))
        v["edge_late_messages"] = int(metrics.get("edge_late_messages_total", 0))
        self.say(
            f"vision worker: {v['frames']} frames of {v['cameras']} cameras ({v['frames_per_camera_s']:g}/s each) "
            f"-> {v['camera_tracks']} camera-track and {v['store_tracks']} store-track messages, "
            f"{v['track_ids']} shopper track ids; the edge worker took {v['edge_tracks_in']} track messages, "
            f"{v['edge_late_messages']} messages late"
        )

    def _keep_up(self, sent: int) -> None:
        """Waits while the edge worker is more than `REPLAY_BACKLOG` messages behind the replay. A broker
        keeps only so many messages for a slow subscriber (Mosquitto's `max_queued_messages`, 1,000 by
        default) and drops the rest: on a busy machine a replay many times faster than real time lost a
        curtain's `leave`, and the worker rightly took that curtain for stuck on."""
        end = time.monotonic() + REPLAY_STALL_S
        while time.monotonic() < end:
            handled = self._edge_metrics().get("edge_messages_handled_total")
            if handled is None or sent - handled <= REPLAY_BACKLOG:
                return
            time.sleep(0.02)
        log.warning("the edge worker is over %d messages behind the replay for %.0f s", REPLAY_BACKLOG, REPLAY_STALL_S)

    def _edge_metrics(self) -> dict[str, float]:
        """The edge worker's Prometheus counters and gauges, by name with labels."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=10) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name and not line.startswith("#"):
                try:
                    out[name] = float(value)
                except ValueError:
                    continue
        return out

    def stop(self) -> None:
        for link in self.links:
            link.stop()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.worker_id and not self.embedded:
            # a demo's worker does not come back: end its session, or the broker queues for it forever
            MqttLink(self.broker, self.worker_id).start(wait_s=5).stop()
        if self.receiver:
            self.receiver.stop()
        if self.embedded:
            self.embedded.stop()


def _kind(topic: str) -> str | None:
    parsed = parse_topic(topic)
    return parsed.kind if parsed is not None else None


def run_demo(cfg: DemoConfig, stop: threading.Event | None = None) -> DemoResult:
    demo = Demo(cfg)
    try:
        demo.start()
        demo.play()
        demo.wait_for_receipts()
        demo.score()
        demo.report()
        (cfg.out_dir / "demo-result.json").write_text(json.dumps(demo.result.as_json(), indent=2))
        if not cfg.once and stop is not None:
            demo.say("\nthe store keeps running: Ctrl-C to stop")
            stop.wait()
    finally:
        demo.stop()
    return demo.result
