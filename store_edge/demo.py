"""`store-edge demo`: the whole store on one machine, with one command.

It starts an MQTT broker (embedded, or `MQTT_URL`), the cloud API (`cloud-api serve`, on SQLite in the
output folder or on `DATABASE_URL`) seeded with the store and one shopper account per recorded
account, and the edge worker (`store-edge run`). Then it plays a recording made by the simulator into
the broker faster than real time, acting as the entry gate: where the recording has a shopper scan a
code, the shopper's account asks the cloud for a fresh entry code, the gate posts it to the cloud and
publishes the cloud's decision (with the cloud's visit id) instead of the recorded one. Receipts come
back through the cloud's webhook to a small receiver here, which prints each as it arrives. At the end
it scores the receipts against the recording's ground truth and says where staff review the visits
held for review.

The parts talk only over MQTT and HTTP, as they would in a store: this module imports neither the
worker nor the cloud service.
"""

from __future__ import annotations

import json
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
from typing import Any

from tqdm import tqdm

from store_edge.evaluation import score_items
from store_edge.live.mqtt import EmbeddedBroker, MqttLink, free_port, parse_broker_url
from store_edge.protocol.codec import decode, encode
from store_edge.protocol.messages import DeviceStatus, GateDecision, GateScan
from store_edge.protocol.topics import store_prefix
from store_edge.protocol.truth import TRUTH_RECEIPTS, TruthReceipt
from store_edge.recording.mcap_io import read_messages

NS = 1_000_000_000


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
    gate_ms: list[float] = field(default_factory=list)
    score: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "visits": self.visits,
            "receipts": self.receipts,
            "held_for_review": self.held,
            "refused": self.refused,
            "gate_ms": self.gate_ms,
            "score": self.score,
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
        health = free_port()
        edge = subprocess.Popen(
            [str(self.bin / "store-edge"), "run", "--store", str(cfg.store), "--broker", self.broker.url,
             "--cloud", self.cloud_url, "--state-dir", str(cfg.out_dir / "edge-state"), "--worker-id", worker_id,
             "--health-port", str(health)],
            env=os.environ | {"CLOUD_API_KEY": edge_key},
            stdout=subprocess.DEVNULL,
            stderr=open(cfg.out_dir / "edge-worker.log", "wb"),  # noqa: SIM115 - the process owns it
        )  # fmt: skip
        self.procs.append(edge)
        if not online.wait(60):
            raise DemoError(f"the edge worker did not come online (see {cfg.out_dir / 'edge-worker.log'})")
        self.say(f"edge worker: online (health and metrics on http://127.0.0.1:{health}/healthz)")

    def _store_id(self) -> str:
        from store_edge.layout import load_store

        return load_store(self.cfg.store).store_id

    def _recorded_accounts(self) -> set[str]:
        out = set()
        for rec in read_messages(self.cfg.recording):
            if "/gate/" in rec.topic and rec.topic.endswith("/decision"):
                account = json.loads(rec.data).get("account_id")
                if account:
                    out.add(account)
        return out

    def play(self) -> None:
        """Replay the recording's wire messages, acting as the entry gate on each scan."""
        cfg = self.cfg
        wire = [r for r in read_messages(cfg.recording) if not r.topic.startswith("truth/")]
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
        for r in tqdm(
            wire, desc=f"replaying {cfg.recording.name} at {cfg.speed:g}x", unit="msg", disable=not cfg.progress
        ):
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
            if len(infos) >= 500:
                for info in infos:
                    info.wait_for_publish(30)
                infos.clear()
        for info in infos:
            info.wait_for_publish(30)

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

    def wait_for_receipts(self, timeout_s: float = 120) -> None:
        """Every visit ends with a receipt, or is held for staff review."""
        end = time.monotonic() + timeout_s
        expected = set(self.result.visits.values())
        while time.monotonic() < end:
            held = {v["visit_id"] for v in call("GET", f"{self.cloud_url}/v1/staff/visits?state=held", self.staff_key)}
            with self.lock:
                done = set(self.result.receipts) | held
            if expected <= done:
                self.result.held = sorted(held & expected)
                return
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
        }

    def report(self) -> None:
        s = self.result.score
        gate = sorted(self.result.gate_ms)
        self.say("")
        self.say(
            f"receipts sent: {len(self.result.receipts)} of {s['visits']} visits; "
            f"{s['held_for_review']} held for staff review"
        )
        self.say(
            f"score against the ground truth (receipts sent): items precision {s['precision']:.3f}, "
            f"recall {s['recall']:.3f}, F1 {s['f1']:.3f}; exact receipts {s['exact_receipts']:.0%}"
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
