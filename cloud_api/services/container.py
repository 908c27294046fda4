"""The composition root: settings, database, payment gateway and delivery adapters, built once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.adapters.notify import SmtpEmailSender, WebhookSender
from cloud_api.adapters.payments import PaymentGateway, StripePaymentGateway, TestModePaymentGateway
from cloud_api.core.config import Settings
from cloud_api.core.security import derive_key
from cloud_api.db.models import AuditEntry
from cloud_api.db.session import is_postgres, make_engine, make_sessionmaker


class TtlCache:
    """A small in-process cache for rows that rarely change (device keys, gates): at most `ttl_s` stale,
    so a revoked device key stops working within that time."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            hit = self._items.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (time.monotonic(), value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass
class Container:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    writers: sessionmaker[Session]
    gateway: PaymentGateway
    email: SmtpEmailSender | None
    webhook: WebhookSender | None
    now_ns: Callable[[], int] = field(default=time.time_ns)
    cache: TtlCache = field(default_factory=lambda: TtlCache(30.0))

    @property
    def entry_key(self) -> bytes:
        return derive_key(self.settings.secret_key, "entry-codes")

    @property
    def link_key(self) -> bytes:
        return derive_key(self.settings.secret_key, "receipt-links")

    @property
    def postgres(self) -> bool:
        return is_postgres(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.writers() as s, s.begin():
            yield s

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.client.close()
        self.engine.dispose()


def build_gateway(settings: Settings) -> PaymentGateway:
    if settings.payment_gateway == "stripe":
        if not settings.stripe_api_key:
            raise SystemExit("CLOUD_API_PAYMENT_GATEWAY=stripe needs STRIPE_API_KEY")
        return StripePaymentGateway(settings.stripe_api_key, settings.stripe_api_base, settings.payment_timeout_s)
    if settings.payment_gateway == "test":
        return TestModePaymentGateway()
    raise SystemExit(f"unknown payment gateway {settings.payment_gateway!r}: use 'test' or 'stripe'")


def build_container(
    settings: Settings, gateway: PaymentGateway | None = None, engine: Engine | None = None
) -> Container:
    engine = engine or make_engine(settings)
    email = (
        SmtpEmailSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user,
            password=settings.smtp_password,
            ca_file=settings.smtp_ca_file,
        )
        if settings.smtp_host
        else None
    )
    webhook = (
        WebhookSender(settings.webhook_url, settings.webhook_secret, settings.webhook_timeout_s)
        if settings.webhook_url
        else None
    )
    return Container(
        settings,
        engine,
        make_sessionmaker(engine),
        make_sessionmaker(engine, writer=True),
        gateway or build_gateway(settings),
        email,
        webhook,
    )


def audit(s: Session, now_ns: int, actor: str, action: str, object_type: str, object_id: str, **detail: Any) -> None:
    s.add(
        AuditEntry(
            ts_ns=now_ns, actor=actor, action=action, object_type=object_type, object_id=object_id, detail=detail
        )
    )
