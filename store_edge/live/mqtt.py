"""MQTT at the edge: a paho-mqtt 2.x link, and an embedded broker for machines without one.

The link reconnects by itself with backoff and re-subscribes on every connect. Its callbacks run on
paho's network thread and only hand messages to a queue: the work happens elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


class BrokerConfigError(ValueError):
    """A broker URL or setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    """CA certificate(s) that signed the broker's certificate; None: the system's trusted CAs."""

    @property
    def url(self) -> str:
        """For logs and messages: never the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str, environ: Mapping[str, str] | None = None) -> BrokerAddress:
    """`mqtt://[USER@]HOST[:PORT]`, or `mqtts://` for TLS (port 8883 by default); a clear error for
    anything else. Secrets come from the environment, not the command line (where `ps` shows them):
    `MQTT_PASSWORD` or `MQTT_PASSWORD_FILE`, and `MQTT_CA_FILE` for a private CA."""
    env = environ or {}
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parsed.hostname:
        raise BrokerConfigError(f"broker URL {url!r}: expected mqtt://[USER@]HOST[:PORT] or mqtts://...")
    tls = parsed.scheme in ("mqtts", "ssl")
    password = parsed.password or env.get("MQTT_PASSWORD")
    if not password and env.get("MQTT_PASSWORD_FILE"):
        try:
            password = Path(env["MQTT_PASSWORD_FILE"]).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise BrokerConfigError(f"MQTT_PASSWORD_FILE {env['MQTT_PASSWORD_FILE']}: {e.strerror or e}") from e
    return BrokerAddress(
        parsed.hostname,
        parsed.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
        tls=tls,
        username=urllib.parse.unquote(parsed.username) if parsed.username else None,
        password=password or None,
        ca_file=env.get("MQTT_CA_FILE") or None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """An in-process MQTT broker (amqtt) on a thread of its own: the default on a fresh machine."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.address = BrokerAddress(host, port or free_port())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> EmbeddedBroker:
        self._thread.start()
        self._ready.wait(timeout=15)
        if self._error is not None:
            raise RuntimeError(f"embedded MQTT broker failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.address.host}:{self.address.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def main() -> None:
            self._stopped = asyncio.Event()
            broker = Broker(config)
            try:
                await broker.start()
            except BaseException as e:
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            await self._stopped.wait()
            await broker.shutdown()

        loop.run_until_complete(main())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)


class MqttLink:
    """One client connection. `on_message(topic, payload, mid)` runs on paho's thread: keep it short."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        on_message: Callable[[str, bytes, int], None] | None = None,
        subscriptions: tuple[str, ...] = (),
        will: tuple[str, bytes] | None = None,
        persistent_session: bool = False,
        manual_ack: bool = False,
        skip_retained: bool = False,
    ) -> None:
        self.address = address
        self.skip_retained = skip_retained
        """Drop the retained messages a broker hands over on subscribing (state from before, not traffic)."""
        self.retained_skipped = 0
        self.misrouted = 0
        self.subscriptions = subscriptions
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        """Set once the broker has confirmed the subscriptions of the latest connect."""
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent_session,
            manual_ack=manual_ack,
        )
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        if address.tls:
            self.client.tls_set(ca_certs=address.ca_file)  # verifies the broker's certificate and name
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(100_000)
        self.client.max_inflight_messages_set(200)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self._on_message = on_message
        self._stopping = False
        self.connected_since = 0.0
        """When the latest connection came up (monotonic s)."""
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        if on_message is not None:
            self.client.on_message = self._message

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connect to %s refused: %s", self.address.url, reason)
            return
        self.subscribed.clear()
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        self.connected_since = time.monotonic()
        self.connected.set()
        log.info("MQTT connected to %s", self.address.url)

    def _disconnected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._stopping:
            return
        log.warning("MQTT disconnected from %s (%s); reconnecting", self.address.url, reason)

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        assert self._on_message is not None
        if self.skip_retained and message.retain:
            self.retained_skipped += 1
            return
        if (
            message.retain
            and self.subscriptions
            and not any(mqtt.topic_matches_sub(sub, message.topic) for sub in self.subscriptions)
        ):
            # amqtt 0.12 hands a new subscriber retained messages of other topics: not ours, not used
            # (checked on retained messages only: paho's matcher costs more than the rest of this path)
            self.misrouted += 1
            return
        self._on_message(message.topic, bytes(message.payload), message.mid)

    def start(self, wait_s: float = 10.0) -> MqttLink:
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()
        if wait_s and not self.connected.wait(wait_s):
            log.warning("MQTT broker %s not reachable yet; still trying", self.address.url)
        return self

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def ack(self, mid: int) -> None:
        self.client.ack(mid, 1)

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
