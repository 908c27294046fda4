"""A lean MQTT 3.1.1 QoS 1 publisher for the benchmarks' load generators.

The load generator runs on the same two cores as the worker it measures. paho spends about 140 us of
CPU per publish (packet building, locks, its network thread): at 5,000 messages a second that is 0.7
of the machine's two cores, taken from the worker under test. A store's sensors are devices of their
own, so the benchmark should spend as little as it can on pretending to be them. This client encodes
every PUBLISH packet before the start, writes the packets that are due together in one system call,
and counts the broker's PUBACKs on a thread of its own. It speaks just enough MQTT for that: CONNECT
(with a username and password where given, over TLS where asked), PUBLISH at QoS 1, PUBACK, DISCONNECT.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time

from store_edge.live.mqtt import BrokerAddress

MAX_UNACKED = 60_000
"""Packet ids are 16 bits: a publisher this far ahead of the broker's acknowledgements waits (an id
is not used again while its first message may still be unacknowledged)."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """A PUBLISH at QoS 1, not retained."""
    body = _utf8(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _varint(len(body)) + body


class RawPublisher:
    """Publishes ready-made packets (`publish_packet`, ids 1..65535 in turn) and counts PUBACKs."""

    def __init__(self, broker: BrokerAddress, client_id: str, timeout_s: float = 10.0) -> None:
        sock: socket.socket = socket.create_connection((broker.host, broker.port), timeout=timeout_s)
        if broker.tls:
            sock = ssl.create_default_context(cafile=broker.ca_file).wrap_socket(sock, server_hostname=broker.host)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = 0x02  # clean session
        payload = _utf8(client_id)
        if broker.username:
            flags |= 0x80
            payload += _utf8(broker.username)
            if broker.password:
                flags |= 0x40
                payload += _utf8(broker.password)
        # keep-alive 0: the publisher may wait minutes for the other load generators before it starts
        variable = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 0)
        sock.sendall(b"\x10" + _varint(len(variable) + len(payload)) + variable + payload)
        connack = self._read_exactly(sock, 4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker {broker.url} refused the connection (CONNACK {connack.hex()})")
        sock.settimeout(None)
        self.sock = sock
        self.sent = 0
        self.acked = 0
        self._acked_changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_acks, name="raw-publisher-acks", daemon=True)
        self._reader.start()

    @staticmethod
    def _read_exactly(sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            acks = 0
            while len(buffer) >= 2:
                # fixed header: type byte, then a remaining length of one byte for everything a broker
                # sends a QoS 1 publisher (PUBACK 2, PINGRESP 0)
                length = buffer[1]
                if len(buffer) < 2 + length:
                    break
                acks += buffer[0] >> 4 == 4
                buffer = buffer[2 + length :]
            if acks:
                with self._acked_changed:
                    self.acked += acks
                    self._acked_changed.notify_all()

    def send(self, packets: list[bytes]) -> None:
        """Write packets that are due now in one go (in order: one device's messages stay in order)."""
        if self.sent + len(packets) - self.acked > MAX_UNACKED:
            with self._acked_changed:
                self._acked_changed.wait_for(lambda: self.sent + len(packets) - self.acked <= MAX_UNACKED, 60)
        self.sock.sendall(b"".join(packets))
        self.sent += len(packets)

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        with self._acked_changed:
            return self._acked_changed.wait_for(lambda: self.acked >= self.sent, timeout_s)

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT: no Last Will
            time.sleep(0.05)
        finally:
            self.sock.close()
            self._reader.join(5)
