"""A local HTTP server that speaks the Stripe endpoints the adapter uses: PaymentIntents create
(confirm, manual capture), capture, cancel, and Refunds create, with Stripe's idempotency (a repeated
Idempotency-Key replays the first response). Test payment methods: `pm_card_visa` succeeds,
`pm_card_chargeDeclined` is declined (HTTP 402 card_error), `pm_card_slow` answers only after
`slow_s` seconds (the client times out, but the intent is created)."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class FakeStripe:
    def __init__(self, slow_s: float = 1.5) -> None:
        self.slow_s = slow_s
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.replays: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, form
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer sk_test_"):
                    self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
                    return
                status, body, delay = outer.handle(self.path, form, self.headers.get("Idempotency-Key"))
                if delay:
                    time.sleep(delay)
                self._send(status, body)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Request-Id", "req_" + secrets.token_hex(6))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, path: str, form: dict[str, str], key: str | None) -> tuple[int, dict[str, Any], float]:
        with self.lock:
            self.requests.append(("POST", path, form))
            if key is not None and key in self.replays:
                status, body = self.replays[key]
                return status, body, 0.0
            status, body = self._route(path, form)
            if key is not None:
                self.replays[key] = (status, body)
        delay = self.slow_s if path == "/v1/payment_intents" and form.get("payment_method") == "pm_card_slow" else 0.0
        return status, body, delay

    def _route(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if parts == ["v1", "payment_intents"]:
            return self._create(form)
        if len(parts) == 4 and parts[:2] == ["v1", "payment_intents"] and parts[3] in ("capture", "cancel"):
            intent = self.intents.get(parts[2])
            if intent is None:
                return 404, _error("invalid_request_error", "resource_missing", f"No such payment_intent: '{parts[2]}'")
            if intent["status"] != "requires_capture":
                return 400, _error(
                    "invalid_request_error", "payment_intent_unexpected_state", f"status {intent['status']}"
                )
            if parts[3] == "capture":
                amount = int(form.get("amount_to_capture", intent["amount"]))
                if amount > intent["amount"]:
                    return 400, _error("invalid_request_error", "amount_too_large", "amount_to_capture too large")
                intent.update(status="succeeded", amount_received=amount)
            else:
                intent.update(status="canceled")
            return 200, dict(intent)
        if parts == ["v1", "refunds"]:
            intent = self.intents.get(form.get("payment_intent", ""))
            if intent is None or intent["status"] != "succeeded":
                return 400, _error("invalid_request_error", "charge_not_refundable", "nothing to refund")
            amount = int(form.get("amount", intent["amount_received"]))
            refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"])
            if refunded + amount > intent["amount_received"]:
                return 400, _error("invalid_request_error", "amount_too_large", "refund exceeds the charge")
            refund = {"id": "re_" + secrets.token_hex(8), "object": "refund", "amount": amount,
                      "payment_intent": intent["id"], "status": "succeeded"}  # fmt: skip
            self.refunds[refund["id"]] = refund
            return 200, refund
        return 404, _error("invalid_request_error", "resource_missing", f"Unrecognized request URL (POST: {path})")

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("capture_method") != "manual" or form.get("confirm") != "true":
            return 400, _error(
                "invalid_request_error", "parameter_invalid", "the adapter must confirm with manual capture"
            )
        intent: dict[str, Any] = {
            "id": "pi_" + secrets.token_hex(8),
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "amount_received": 0,
            "currency": form["currency"],
            "capture_method": "manual",
            "payment_method": form.get("payment_method"),
            "status": "requires_capture",
        }
        self.intents[intent["id"]] = intent
        if form.get("payment_method") == "pm_card_chargeDeclined":
            intent["status"] = "requires_payment_method"
            body = _error("card_error", "card_declined", "Your card was declined.")
            body["error"]["payment_intent"] = dict(intent)
            return 402, body
        return 200, dict(intent)

    def captured(self) -> int:
        return sum(i["amount_received"] for i in self.intents.values())


def _error(kind: str, code: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message}}
