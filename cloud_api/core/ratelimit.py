"""Limits on what one caller can try: guessing keys, brute-forcing entry codes, oversized bodies.

An ASGI middleware, so no route needs to know about it:

- **Key guessing**: every 401 answer takes a token from the client address's bucket; when it is empty,
  that address gets 429 (with `Retry-After`) for every request until tokens come back. A caller with a
  valid key never answers 401 and is never slowed.
- **Entry-code brute force**: a gate scan refused as `forged` or `malformed` takes a token from the
  scanning device's bucket (keyed by its key's hash); an empty bucket means 429 for that device's scans.
  Valid codes, expired ones and replays cost nothing: a busy gate is never throttled for being busy.
- **Body size**: a body over `max_body_bytes` gets 413 before the application reads it.

Buckets are per process (each uvicorn worker keeps its own), in memory, and bounded in number.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_api.core.config import Settings

BAD_CODE_REASONS = frozenset({"forged", "malformed"})
MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated_s: float


class TokenBuckets:
    """`burst` tokens per key, refilled at `per_minute / 60` a second. Thread-safe; the least recently
    used keys are forgotten beyond MAX_BUCKETS (a forgotten key starts full again)."""

    def __init__(self, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate_per_s = per_minute / 60.0
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _refilled(self, key: str, now: float) -> Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = Bucket(float(self.burst), now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            b.tokens = min(float(self.burst), b.tokens + (now - b.updated_s) * self.rate_per_s)
            b.updated_s = now
            self._buckets.move_to_end(key)
        return b

    def retry_after_s(self, key: str) -> int | None:
        """None while the key has a token left; else whole seconds until it has one again."""
        with self._lock:
            b = self._refilled(key, self.clock())
            if b.tokens >= 1.0:
                return None
            if self.rate_per_s <= 0:
                return 3600
            return max(1, math.ceil((1.0 - b.tokens) / self.rate_per_s))

    def take(self, key: str) -> None:
        with self._lock:
            b = self._refilled(key, self.clock())
            b.tokens = max(0.0, b.tokens - 1.0)


def _json_response(status: int, message: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    body = json.dumps({"message": message}).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": start_headers + headers},
        {"type": "http.response.body", "body": body},
    ]


class RateLimits:
    def __init__(self, app: ASGIApp, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.trust_forwarded_for = settings.trust_forwarded_for
        self.auth_failures = TokenBuckets(settings.auth_failure_burst, settings.auth_failures_per_minute, clock)
        self.bad_codes = TokenBuckets(settings.bad_code_burst, settings.bad_codes_per_minute, clock)

    def _client(self, scope: Scope) -> str:
        headers = dict(scope.get("headers") or [])
        if self.trust_forwarded_for and b"x-forwarded-for" in headers:
            return str(headers[b"x-forwarded-for"].decode("latin-1")).split(",")[0].strip()
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    async def _refuse(self, send: Send, status: int, message: str, retry_after: int | None = None) -> None:
        extra = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
        for msg in _json_response(status, message, extra):
            await send(msg)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._refuse(send, 413, f"the body is {int(length)} bytes; the limit is {self.max_body_bytes}")
            return
        client = self._client(scope)
        wait = self.auth_failures.retry_after_s("ip:" + client)
        if wait is not None:
            await self._refuse(
                send, 429, f"too many requests with unknown keys from {client}: retry in {wait} s", retry_after=wait
            )
            return
        path: str = scope.get("path", "")
        device: str | None = None
        if scope.get("method") == "POST" and path.startswith("/v1/gates/") and path.endswith("/scans"):
            auth = headers.get(b"authorization", b"")
            device = "dev:" + hashlib.sha256(auth).hexdigest()
            wait = self.bad_codes.retry_after_s(device)
            if wait is not None:
                await self._refuse(
                    send, 429, f"too many forged or malformed codes from this gate: retry in {wait} s", wait
                )
                return

        if length is None:  # a body without a length (chunked): read it here, up to the limit, then hand it on
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                msg = await receive()
                if msg["type"] != "http.request":
                    break
                chunks.append(msg.get("body", b""))
                size += len(chunks[-1])
                more = bool(msg.get("more_body", False))
                if size > self.max_body_bytes:
                    await self._refuse(send, 413, f"the body is over the limit of {self.max_body_bytes} bytes")
                    return
            whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            handed = False
            original_receive = receive

            async def replay() -> Message:
                nonlocal handed
                if handed:
                    return await original_receive()  # after the body: the disconnect
                handed = True
                return whole

            receive = replay

        status = 0
        body_parts: list[bytes] = []

        async def watching_send(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            elif msg["type"] == "http.response.body" and device is not None and status == 200:
                body_parts.append(msg.get("body", b""))
            await send(msg)

        await self.app(scope, receive, watching_send)
        if status == 401:
            self.auth_failures.take("ip:" + client)
        if device is not None and status == 200 and _refused_as_bad_code(b"".join(body_parts)):
            self.bad_codes.take(device)


def _refused_as_bad_code(body: bytes) -> bool:
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("reason") in BAD_CODE_REASONS
