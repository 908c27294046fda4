from __future__ import annotations

import pytest

from cloud_api.core.security import b64url, b64url_decode
from cloud_api.domain import entry_tokens
from cloud_api.domain.entry_tokens import EntryTokenError

KEY = b"k" * 32
NOW = 1_700_000_000 * 10**9


def test_round_trip_binds_the_account_and_expires_after_the_ttl() -> None:
    token, claims = entry_tokens.issue(KEY, "acct-1", NOW, 30)
    got = entry_tokens.verify(KEY, token, NOW + 29 * 10**9)
    assert got.account_id == "acct-1"
    assert got.nonce == claims.nonce
    assert len(token) < 80  # small enough for a low-density QR code
    with pytest.raises(EntryTokenError) as e:
        entry_tokens.verify(KEY, token, NOW + 31 * 10**9)
    assert e.value.reason == "expired"


def test_every_code_has_its_own_nonce() -> None:
    a, _ = entry_tokens.issue(KEY, "acct-1", NOW, 30)
    b, _ = entry_tokens.issue(KEY, "acct-1", NOW, 30)
    assert a != b


def test_a_code_signed_with_another_key_is_forged() -> None:
    token, _ = entry_tokens.issue(b"x" * 32, "acct-1", NOW, 30)
    with pytest.raises(EntryTokenError) as e:
        entry_tokens.verify(KEY, token, NOW)
    assert e.value.reason == "forged"


def test_changing_the_account_in_a_genuine_code_breaks_the_signature() -> None:
    token, _ = entry_tokens.issue(KEY, "acct-1", NOW, 30)
    payload, sig = token.split(".")
    tampered = b64url_decode(payload).replace(b"acct-1", b"acct-2")
    with pytest.raises(EntryTokenError) as e:
        entry_tokens.verify(KEY, f"{b64url(tampered)}.{sig}", NOW)
    assert e.value.reason == "forged"


def test_extending_the_expiry_breaks_the_signature() -> None:
    token, _ = entry_tokens.issue(KEY, "acct-1", NOW, 30)
    payload, sig = token.split(".")
    account, nonce, exp = b64url_decode(payload).decode().split("\n")
    later = f"{account}\n{nonce}\n{int(exp) + 3_600_000}".encode()
    with pytest.raises(EntryTokenError) as e:
        entry_tokens.verify(KEY, f"{b64url(later)}.{sig}", NOW)
    assert e.value.reason == "forged"


@pytest.mark.parametrize("text", ["", "nodot", "a.b.c", "!!!.???"])
def test_garbage_is_malformed_or_forged(text: str) -> None:
    with pytest.raises(EntryTokenError) as e:
        entry_tokens.verify(KEY, text, NOW)
    assert e.value.reason in {"malformed", "forged"}
