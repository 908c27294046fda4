"""Settings from the environment. Secrets come from the environment or a file, never from the repository;
for development, a random secret is generated once and kept under the data directory."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def normalize_database_url(url: str) -> str:
    """`postgresql://...` (what CI sets) means the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret(name: str, data_dir: Path) -> str:
    """`CLOUD_API_<NAME>` or the file named by `CLOUD_API_<NAME>_FILE`; else a generated dev secret."""
    env_name = f"CLOUD_API_{name.upper()}"
    value = _env(env_name)
    if value:
        return value
    file_name = _env(env_name + "_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    path = data_dir / f"{name}.secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def _optional_secret(name: str) -> str | None:
    env_name = f"CLOUD_API_{name.upper()}"
    file_name = _env(env_name + "_FILE")
    return _env(env_name) or (Path(file_name).read_text().strip() if file_name else None)


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    webhook_secret: str
    db_schema: str | None = None
    data_dir: Path = field(default_factory=lambda: Path(".cloud-api"))
    public_url: str = "http://127.0.0.1:8000"
    entry_code_ttl_s: float = 30.0
    review_deadline_s: float = 4 * 3600.0
    receipt_link_ttl_s: float = 90 * 24 * 3600.0
    payment_gateway: str = "test"  # "test" or "stripe"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    payment_timeout_s: float = 5.0  # below the edge's 10 s request timeout
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "receipts@cashierless.invalid"
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_ca_file: str | None = None
    webhook_url: str | None = None
    webhook_attempts: int = 5
    webhook_first_backoff_s: float = 0.2
    webhook_timeout_s: float = 5.0
    auto_refund_limit: Decimal = Decimal("5.00")
    auto_refunds_per_30_days: int = 3
    sweep_interval_s: float = 5.0
    # limits per caller (cloud_api/core/ratelimit.py): 401 answers per client address, forged or malformed
    # entry codes per gate device, and the largest request body (a cart with its review evidence fits)
    auth_failure_burst: int = 20
    auth_failures_per_minute: float = 10.0
    bad_code_burst: int = 10
    bad_codes_per_minute: float = 20.0
    max_body_bytes: int = 4 * 1024 * 1024
    trust_forwarded_for: bool = False
    """Behind the TLS reverse proxy: the client address is the first of X-Forwarded-For."""

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings() -> Settings:
    data_dir = Path(_env("CLOUD_API_DATA_DIR", ".cloud-api") or ".cloud-api")
    url = _env("DATABASE_URL")
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(data_dir / 'cloud.db').resolve()}"
    smtp_port = _env("CLOUD_API_SMTP_PORT")
    return Settings(
        database_url=normalize_database_url(url),
        secret_key=_secret("secret_key", data_dir),
        webhook_secret=_secret("webhook_secret", data_dir),
        db_schema=_env("CLOUD_API_DB_SCHEMA"),
        data_dir=data_dir,
        public_url=_env("CLOUD_API_PUBLIC_URL", "http://127.0.0.1:8000") or "",
        entry_code_ttl_s=float(_env("CLOUD_API_ENTRY_CODE_TTL_S", "30") or 30),
        review_deadline_s=float(_env("CLOUD_API_REVIEW_DEADLINE_S", str(4 * 3600)) or 0),
        payment_gateway=_env("CLOUD_API_PAYMENT_GATEWAY", "test") or "test",
        stripe_api_key=_env("STRIPE_API_KEY"),
        stripe_api_base=_env("STRIPE_API_BASE"),
        smtp_host=_env("CLOUD_API_SMTP_HOST"),
        smtp_port=int(smtp_port) if smtp_port else 25,
        smtp_from=_env("CLOUD_API_SMTP_FROM", "receipts@cashierless.invalid") or "",
        smtp_starttls=(_env("CLOUD_API_SMTP_STARTTLS", "0") or "0").lower() in ("1", "true", "yes"),
        smtp_user=_env("CLOUD_API_SMTP_USER"),
        smtp_password=_optional_secret("smtp_password"),
        smtp_ca_file=_env("CLOUD_API_SMTP_CA_FILE"),
        webhook_url=_env("CLOUD_API_WEBHOOK_URL"),
        auto_refund_limit=Decimal(_env("CLOUD_API_AUTO_REFUND_LIMIT", "5.00") or "5.00"),
        auth_failure_burst=int(_env("CLOUD_API_AUTH_FAILURE_BURST", "20") or 20),
        auth_failures_per_minute=float(_env("CLOUD_API_AUTH_FAILURES_PER_MINUTE", "10") or 10),
        bad_code_burst=int(_env("CLOUD_API_BAD_CODE_BURST", "10") or 10),
        bad_codes_per_minute=float(_env("CLOUD_API_BAD_CODES_PER_MINUTE", "20") or 20),
        max_body_bytes=int(_env("CLOUD_API_MAX_BODY_BYTES", str(4 * 1024 * 1024)) or 4 * 1024 * 1024),
        trust_forwarded_for=(_env("CLOUD_API_TRUST_FORWARDED_FOR", "0") or "0").lower() in ("1", "true", "yes"),
    )
