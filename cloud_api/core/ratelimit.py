"""Limits on what one caller can try: guessing keys, brute-forcing entry codes, oversized bodies.

An ASGI middleware, so no route needs to know about it:

- **Key guessing**: every 401 answer takes a token from the client address's bucket; when it is empty,
  that address gets 429 (with `Retry-After`) for every request until tokens come back. A caller with a
  valid key never answers 401 and is never slowed.
- **Entry-code brute force**: a gate scan refused as `forged` or `malformed` takes a token from the
  scanning device's bucket (keyed by its key's hash); an empty bucket means 429 for that device's scans.
  Valid codes, expired ones and replays cost nothing: a busy gate is never throttled for being busy.
- **Body size**: a body over `max_body_bytes` gets 413 before the application reads it.

The buckets are rows of `rate_limit_buckets` in the API's database, so every worker process and every
API machine on that database spends from the same budget. A take is one atomic upsert (the refill is
computed in SQL); the check before each request is one read by primary key, and a key without a row has
a full bucket, so a valid caller never writes. The clock must be wall time (the app's `now_ns`), the
same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_api.core.config import Settings
from cloud_api.db.models import RateLimitBucket

log = logging.getLogger(__name__)
T = TypeVar("T")

BAD_CODE_REASONS = frozenset({"forged", "malformed"})
PRUNE_EVERY = 1000  # takes (per process) between two deletions of the rows that are full again
STALE_S = 86_400.0  # rows untouched this long are deleted too (those of limits with other settings)
MAX_KEY = 128

B = RateLimitBucket


@dataclass(frozen=True)
class Limit:
    """`burst` tokens per key, refilled at `per_minute / 60` a second."""

    kind: str
    burst: int
    per_minute: float

    @property
    def name(self) -> str:
        """The row's `name`: with the settings, so apps configured differently on one database (tests) never
        share a bucket; during a rolling change of the settings old and new workers count apart."""
        return f"{self.kind}/{self.burst}/{self.per_minute:g}"

    @property
    def rate_per_s(self) -> float:
        return self.per_minute / 60.0

    def tokens_at(self, tokens: float, updated_s: float, now: float) -> float:
        return min(float(self.burst), tokens + max(0.0, now - updated_s) * self.rate_per_s)

    def wait_s(self, tokens: float) -> int | None:
        """None while there is a token left; else whole seconds until there is one again."""
        if tokens >= 1.0:
            return None
        if self.rate_per_s <= 0:
            return 3600
        return max(1, math.ceil((1.0 - tokens) / self.rate_per_s))


def _row_key(key: str) -> str:
    return key if len(key) <= MAX_KEY else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class SharedBuckets:
    """Token buckets in the database. Blocking calls: from async code, run them in a thread."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.writer = engine.execution_options(writer=True)  # SQLite: the write lock at BEGIN
        self.clock = clock
        self._takes = 0

    def retry_after_s(self, limit: Limit, key: str) -> int | None:
        """None while the key has a token left; else whole seconds until it has one again. Reads only."""
        query = select(B.tokens, B.updated_s).where(B.name == limit.name, B.key == _row_key(key))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return limit.wait_s(limit.tokens_at(row.tokens, row.updated_s, self.clock()))

    def take(self, limit: Limit, key: str) -> None:
        """One token less, atomically: concurrent takes from any process each count."""
        now = self.clock()
        postgres = self.engine.dialect.name == "postgresql"
        hi, lo = (func.greatest, func.least) if postgres else (func.max, func.min)  # SQLite's scalar max/min
        refilled = lo(float(limit.burst), B.tokens + hi(0.0, now - B.updated_s) * limit.rate_per_s)
        values = {"name": limit.name, "key": _row_key(key), "tokens": max(0.0, limit.burst - 1.0), "updated_s": now}
        update: dict[str, Any] = {"tokens": hi(0.0, refilled - 1.0), "updated_s": now}
        keys = [B.name, B.key]
        if postgres:
            upsert: Any = postgresql.insert(B).values(values).on_conflict_do_update(index_elements=keys, set_=update)
        else:
            upsert = sqlite.insert(B).values(values).on_conflict_do_update(index_elements=keys, set_=update)
        with self.writer.begin() as conn:
            conn.execute(upsert)
        self._takes += 1
        if self._takes % PRUNE_EVERY == 0:
            self.prune(limit, now)

    def prune(self, limit: Limit, now: float) -> None:
        """Delete this limit's rows that are full again (the same as no row) and every row idle for a day."""
        stale: ColumnElement[bool] = B.updated_s < now - STALE_S
        if limit.rate_per_s > 0:
            full = (B.name == limit.name) & (B.updated_s < now - limit.burst / limit.rate_per_s)
            stale = or_(stale, full)
        with self.writer.begin() as conn:
            conn.execute(delete(B).where(stale))


def _json_response(status: int, message: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    body = json.dumps({"message": message}).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": start_headers + headers},
        {"type": "http.response.body", "body": body},
    ]


class RateLimits:
    def __init__(
        self, app: ASGIApp, settings: Settings, engine: Engine, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.trust_forwarded_for = settings.trust_forwarded_for
        self.buckets = SharedBuckets(engine, clock)
        self.auth_failures = Limit("auth", settings.auth_failure_burst, settings.auth_failures_per_minute)
        self.bad_codes = Limit("code", settings.bad_code_burst, settings.bad_codes_per_minute)

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
        path: str = scope.get("path", "")
        device: str | None = None
        if scope.get("method") == "POST" and path.startswith("/v1/gates/") and path.endswith("/scans"):
            device = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()
        refusal = await run_in_threadpool(self._unless_database_down, self._check, client, device)
        if refusal is not None:
            await self._refuse(send, 429, refusal[0], retry_after=refusal[1])
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
            await run_in_threadpool(self._unless_database_down, self.buckets.take, self.auth_failures, client)
        if device is not None and status == 200 and _refused_as_bad_code(b"".join(body_parts)):
            await run_in_threadpool(self._unless_database_down, self.buckets.take, self.bad_codes, device)

    @staticmethod
    def _unless_database_down(call: Callable[..., T], *args: Any) -> T | None:
        """The buckets are in the database: while it is down nothing is limited (every route that does
        anything needs the database and answers 503 itself; /healthz still answers), never a 500."""
        try:
            return call(*args)
        except OperationalError as e:
            log.warning("rate limits not applied: the database is unavailable (%s)", type(e.orig).__name__)
            return None

    def _check(self, client: str, device: str | None) -> tuple[str, int] | None:
        """The 429 message and Retry-After when the address's bucket, or the scanning gate's, is empty."""
        wait = self.buckets.retry_after_s(self.auth_failures, client)
        if wait is not None:
            return f"too many requests with unknown keys from {client}: retry in {wait} s", wait
        if device is not None:
            wait = self.buckets.retry_after_s(self.bad_codes, device)
            if wait is not None:
                return f"too many forged or malformed codes from this gate: retry in {wait} s", wait
        return None


def _refused_as_bad_code(body: bytes) -> bool:
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("reason") in BAD_CODE_REASONS
