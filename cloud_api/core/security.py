"""Keys, hashes and signatures. API keys are random and long, so a plain SHA-256 is the right hash:
lookups stay one indexed equality and a stolen table reveals no key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_api_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def derive_key(secret: str, purpose: str) -> bytes:
    """One key per purpose from the service secret, so a leak of one use does not forge another."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(key: bytes, message: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(key, message).encode(), signature.encode("utf-8", "surrogateescape"))


def new_id(prefix: str) -> str:
    """Ids that fit the edge protocol's `Id` pattern (`^[A-Za-z0-9][A-Za-z0-9_.-]*$`, at most 64)."""
    return f"{prefix}-{secrets.token_hex(10)}"
