"""Hands finished carts to the cloud from the outbox: retried with backoff until acknowledged.

`PUT {cloud}/v1/edge/carts/{visit_id}` with the cart as JSON, `Idempotency-Key: {visit_id}` and the
edge's device key (`Authorization: Bearer dev_...`, scoped to its store by the cloud); the cloud
applies each visit's cart once and answers a repeat with the first result. 2xx: delivered.
A 4xx other than 408/409/425/429 means the cloud refuses this cart as it is: it stays in the outbox
with the error (staff can see it in the metrics and logs) and is retried slowly. Anything else
(connection refused, timeouts, 5xx): retried with exponential backoff, capped.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request

from store_edge.live.state import Outbox

log = logging.getLogger(__name__)
RETRYABLE_4XX = {408, 409, 425, 429}


class CloudSender:
    def __init__(
        self,
        outbox: Outbox,
        cloud_url: str,
        api_key: str | None = None,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.outbox = outbox
        self.cloud_url = cloud_url.rstrip("/")
        self.api_key = api_key
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.delivered = 0
        self.failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloud-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send_due()
            self._wake.wait(timeout=0.25)
            self._wake.clear()

    def send_due(self) -> int:
        sent = 0
        for item in self.outbox.due(time.time_ns()):
            if self._stop.is_set():
                break
            error, permanent = self._put(item.visit_id, item.payload)
            now = time.time_ns()
            if error is None:
                self.outbox.delivered(item.visit_id, now)
                self.delivered += 1
                sent += 1
                continue
            self.failures += 1
            backoff = self.max_backoff_s if permanent else self.first_backoff_s * 2**item.attempts
            backoff = min(self.max_backoff_s, backoff)
            self.outbox.failed(item.visit_id, error, now + round(backoff * 1e9))
            log.warning("cart %s not delivered (attempt %d): %s", item.visit_id, item.attempts + 1, error)
        return sent

    def _put(self, visit_id: str, payload: bytes) -> tuple[str | None, bool]:
        req = urllib.request.Request(
            f"{self.cloud_url}/v1/edge/carts/{visit_id}",
            data=payload,
            method="PUT",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": visit_id,
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
            return None, False
        except urllib.error.HTTPError as e:
            body = e.read()[:300].decode("utf-8", "replace")
            return f"HTTP {e.code}: {body}", 400 <= e.code < 500 and e.code not in RETRYABLE_4XX
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            return f"cloud unreachable: {e}", False
