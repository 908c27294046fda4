"""Broker URLs with a user and TLS, against a private Mosquitto that requires both (skipped where no
Mosquitto is installed: the embedded broker has neither)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store_edge.live.mqtt import BrokerConfigError, MqttLink, free_port, parse_broker_url
from tests.live.helpers import MOSQUITTO, PrivateMosquitto

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None or shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None,
    reason="needs mosquitto, mosquitto_passwd and openssl",
)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    """(plain port with passwords, TLS port with passwords, CA file)."""
    d = tmp_path_factory.mktemp("broker")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    (d / "passwd").write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(d / "passwd"), "edge-demo", "s3cret"], check=True)
    plain, tls = free_port(), free_port()
    broker = PrivateMosquitto(
        d,
        [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {d / 'passwd'}",
            f"listener {plain} 127.0.0.1",
            f"listener {tls} 127.0.0.1",
            f"certfile {d / 'cert.pem'}",
            f"keyfile {d / 'key.pem'}",
        ],
    )
    yield plain, tls, d / "cert.pem"
    broker.stop()


def connects(url: str, env: dict[str, str]) -> bool:
    link = MqttLink(parse_broker_url(url, env), f"sec-{time.time_ns()}").start(wait_s=3)
    ok = link.connected.is_set()
    link.stop()
    return ok


def test_user_and_password_from_the_environment(secure_broker: tuple[int, int, Path], tmp_path: Path) -> None:
    plain, _, _ = secure_broker
    assert connects(f"mqtt://edge-demo@localhost:{plain}", {"MQTT_PASSWORD": "s3cret"})
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    assert connects(f"mqtt://edge-demo@localhost:{plain}", {"MQTT_PASSWORD_FILE": str(secret)})
    assert not connects(f"mqtt://edge-demo@localhost:{plain}", {"MQTT_PASSWORD": "wrong"})
    assert not connects(f"mqtt://localhost:{plain}", {})  # anonymous refused


def test_tls_checks_the_broker_certificate(secure_broker: tuple[int, int, Path]) -> None:
    _, tls, ca = secure_broker
    env = {"MQTT_PASSWORD": "s3cret", "MQTT_CA_FILE": str(ca)}
    assert connects(f"mqtts://edge-demo@localhost:{tls}", env)
    assert not connects(f"mqtts://edge-demo@localhost:{tls}", {"MQTT_PASSWORD": "s3cret"})  # CA not trusted


def test_bad_urls_and_secrets_are_named() -> None:
    with pytest.raises(BrokerConfigError, match="expected mqtt://"):
        parse_broker_url("http://broker")
    with pytest.raises(BrokerConfigError, match="MQTT_PASSWORD_FILE /nonexistent"):
        parse_broker_url("mqtt://u@broker", {"MQTT_PASSWORD_FILE": "/nonexistent"})
    address = parse_broker_url("mqtts://edge@broker", {"MQTT_PASSWORD": "s3cret"})
    assert (address.port, address.tls, address.password) == (8883, True, "s3cret")
    assert address.url == "mqtts://edge@broker:8883"  # what logs show: never the password
    assert "s3cret" not in repr(address)
