"""Entry codes: a short HMAC-signed token bound to a shopper, valid for a few seconds, used once.

Text form: `<payload>.<signature>`, both base64url. The payload is `account_id \\n nonce \\n expires_ms`;
the signature is the first 16 bytes of HMAC-SHA256(key, payload). Single use is enforced by the caller
(the visit stores the nonce under a unique constraint); this module has no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cloud_api.core.security import b64url, b64url_decode

SIGNATURE_BYTES = 16


class EntryTokenError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class EntryClaims:
    account_id: str
    nonce: str
    expires_ns: int


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def issue(key: bytes, account_id: str, now_ns: int, ttl_s: float, nonce: str | None = None) -> tuple[str, EntryClaims]:
    expires_ns = now_ns + round(ttl_s * 1e9)
    claims = EntryClaims(account_id, nonce or secrets.token_hex(8), expires_ns)
    payload = f"{claims.account_id}\n{claims.nonce}\n{expires_ns // 1_000_000}".encode()
    return f"{b64url(payload)}.{b64url(_mac(key, payload))}", claims


def verify(key: bytes, token: str, now_ns: int) -> EntryClaims:
    """The claims of a genuine, unexpired token; raises EntryTokenError(reason) otherwise."""
    try:
        payload_part, sig_part = token.strip().split(".")
        payload = b64url_decode(payload_part)
        signature = b64url_decode(sig_part)
    except ValueError as e:
        raise EntryTokenError("malformed", "This is not an entry code: open the app and show a fresh code.") from e
    if not hmac.compare_digest(_mac(key, payload), signature):
        raise EntryTokenError("forged", "The code's signature is not valid: show a fresh code from the app.")
    try:
        account_id, nonce, expires_ms = payload.decode().split("\n")
        expires_ns = int(expires_ms) * 1_000_000
    except ValueError as e:  # signed by us but unreadable: only possible across format changes
        raise EntryTokenError("malformed", "This entry code is in an old format: show a fresh code.") from e
    if now_ns > expires_ns:
        raise EntryTokenError("expired", "The code has expired: show a fresh code from the app.")
    return EntryClaims(account_id, nonce, expires_ns)
