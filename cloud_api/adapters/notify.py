"""Receipt delivery adapters: email over SMTP and an HMAC-signed webhook to the app's backend."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

import httpx

SIGNATURE_HEADER = "X-Cashierless-Signature"


class DeliveryError(Exception):
    pass


class SmtpEmailSender:
    """Plain SMTP, or STARTTLS (verified against the system CAs or `ca_file`), with optional login."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout_s: float = 10.0,
        starttls: bool = False,
        user: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.host, self.port, self.sender, self.timeout_s = host, port, sender, timeout_s
        self.starttls, self.user, self.password, self.ca_file = starttls, user, password, ca_file

    def send(self, to: str, subject: str, text: str, html: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {e}") from e


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`: the receiver recomputes it and
    rejects old timestamps, so a captured request cannot be replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook_signature(secret: str, header: str, body: bytes, now_s: float, tolerance_s: float = 300) -> bool:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), header)


class WebhookSender:
    def __init__(self, url: str, secret: str, timeout_s: float = 5.0) -> None:
        self.url, self.secret = url, secret
        self.client = httpx.Client(timeout=timeout_s)

    def send(self, event: str, delivery_id: str, data: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "delivery_id": delivery_id, "data": data}, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(self.secret, int(time.time()), body),
            "Idempotency-Key": delivery_id,
        }
        try:
            resp = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError(f"webhook {self.url}: {e}") from e
        if resp.status_code >= 300:
            raise DeliveryError(f"webhook {self.url}: HTTP {resp.status_code}")
