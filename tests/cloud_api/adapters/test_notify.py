"""The SMTP sender with STARTTLS and login, against a real aiosmtpd server that requires both."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cloud_api.adapters.notify import DeliveryError, SmtpEmailSender
from tests.cloud_api.conftest import free_port


class _Inbox:
    def __init__(self) -> None:
        self.rcpts: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.rcpts.extend(envelope.rcpt_tos)
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"receipts", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test certificate")
def test_starttls_and_login(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = _Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
        authenticator=_auth, auth_required=True, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        ok = SmtpEmailSender(
            "127.0.0.1", port, "r@x.invalid", starttls=True, user="receipts", password="s3cret", ca_file=str(cert)
        )
        ok.send("alice@example.com", "Receipt", "text", "<p>html</p>")
        assert inbox.rcpts == ["alice@example.com"]
        with pytest.raises(DeliveryError):
            SmtpEmailSender("127.0.0.1", port, "r@x.invalid", starttls=True, user="receipts", password="wrong",
                            ca_file=str(cert)).send("bob@example.com", "Receipt", "text", "<p>html</p>")  # fmt: skip
        with pytest.raises(DeliveryError):  # no STARTTLS: the server refuses
            SmtpEmailSender("127.0.0.1", port, "r@x.invalid").send("bob@example.com", "Receipt", "text", "<p>x</p>")
        with pytest.raises(DeliveryError):  # a certificate we do not trust
            SmtpEmailSender("127.0.0.1", port, "r@x.invalid", starttls=True, user="receipts", password="s3cret"
                            ).send("bob@example.com", "Receipt", "text", "<p>x</p>")  # fmt: skip
        assert inbox.rcpts == ["alice@example.com"]
    finally:
        controller.stop()
