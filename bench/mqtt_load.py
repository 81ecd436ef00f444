"""A load generator for the MQTT bench: QoS 1 PUBLISHes written in bulk on one raw MQTT 5 socket.

paho's own publish path (a sockpair write per publish, a scan of every queued message per
PUBACK past ``max_inflight_messages``) managed under 2,000 one-observation messages/s on this
machine, so it measured the publisher, not the ingester. This one builds the packets itself,
writes all that are due in one ``sendall`` and counts the broker's PUBACKs (an observation
counts as published once the broker acknowledged it). At most :data:`MAX_IN_FLIGHT`
messages wait for their PUBACK (packet ids are 16-bit).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from cim.services.sensors.mqtt_session import varint

MAX_IN_FLIGHT = 30_000


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


class Publisher:
    """A clean MQTT 5 session that publishes with QoS 1 and counts what the broker acked."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00"
        body += _string(client_id)
        self.sock.sendall(b"\x10" + varint(len(body)) + body)
        self._buffer = bytearray()
        self.in_flight: dict[int, int] = {}  # packet id -> observations it carries
        self.acknowledged = 0  # observations the broker acknowledged
        self.refused = 0
        self._mid = 0
        while not self._buffer or self._buffer[0] != 0x20 or len(self._buffer) < 4:
            self._buffer += self.sock.recv(65536)
        if self._buffer[3] >= 0x80:
            raise ConnectionError(f"CONNACK reason {self._buffer[3]}")
        self._buffer.clear()
        self.sock.setblocking(False)

    def packet(self, topic: str, payload: bytes, observations: int) -> bytes:
        """A QoS 1 PUBLISH with the next free packet id (recorded as in flight)."""
        self._mid = self._mid % 65535 + 1
        while self._mid in self.in_flight:
            self._mid = self._mid % 65535 + 1
        self.in_flight[self._mid] = observations
        body = _string(topic) + struct.pack("!H", self._mid) + b"\x00" + payload
        return b"\x32" + varint(len(body)) + body

    def send(self, data: bytes) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)

    def read_acks(self) -> None:
        """Count the PUBACKs that have come (without waiting)."""
        try:
            while chunk := self.sock.recv(262144):
                self._buffer += chunk
        except BlockingIOError:
            pass
        buffer, pos = self._buffer, 0
        while len(buffer) - pos >= 2:
            length = buffer[pos + 1]  # PUBACKs are short: one length byte
            if len(buffer) - pos < 2 + length:
                break
            if buffer[pos] & 0xF0 == 0x40:
                mid = struct.unpack_from("!H", buffer, pos + 2)[0]
                count = self.in_flight.pop(mid, 0)
                if length >= 3 and buffer[pos + 4] >= 0x80:
                    self.refused += count
                else:
                    self.acknowledged += count
            pos += 2 + length
        del buffer[:pos]

    def drain(self, timeout: float) -> None:
        """Wait until every PUBLISH is acknowledged (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.read_acks()
            time.sleep(0.005)

    def close(self) -> None:
        self.send(b"\xe0\x00")
        self.sock.close()


def publish_paced(
    publisher: Publisher,
    seconds: float,
    rate: float,
    message: Callable[[int], tuple[str, bytes, int]],
    tick: Callable[[float], None] | None = None,
) -> int:
    """Publish ``message(sent)`` (topic, payload, observations) at ``rate`` observations/s for
    ``seconds`` (``rate`` 0: as fast as the broker acks); returns the observations sent."""
    began, sent = time.monotonic(), 0
    while (elapsed := time.monotonic() - began) < seconds:
        packets = []
        while (rate <= 0 or sent < rate * elapsed) and len(publisher.in_flight) < MAX_IN_FLIGHT:
            topic, payload, count = message(sent)
            packets.append(publisher.packet(topic, payload, count))
            sent += count
            if len(packets) >= 2000:
                break
        if packets:
            publisher.send(b"".join(packets))
        if tick is not None:
            tick(elapsed)
        publisher.read_acks()
        if len(packets) < 2000:
            time.sleep(0.002)
    return sent
