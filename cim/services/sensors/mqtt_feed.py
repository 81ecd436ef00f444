"""Publish a feed of observations over MQTT at a steady rate (``cim simulate sensors``, benches).

Observations go round-robin over the datastreams, ``rate`` per second, stamped with the time
they are made; with ``per_message`` > 1 each message carries a JSON array of that many
observations of one datastream (the gateway form :mod:`.mqtt_messages` accepts). QoS 1, so
the broker has every observation when :func:`publish_feed` returns.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from cim.services.sensors.feed import FeedStream, Leak, value
from cim.services.sensors.mqtt_messages import observation_topic

TICK_SECONDS = 0.05


@dataclass(slots=True)
class FeedSummary:
    """What a run published."""

    observations: int = 0
    messages: int = 0
    seconds: float = 0.0
    leak_peak_at: float | None = None  # monotonic time the leak reached its peak


def _message(
    stream: FeedStream, count: int, leak: Leak | None, elapsed: float, rng: random.Random
) -> bytes:
    now = datetime.now(UTC)
    items = []
    for _ in range(count):
        result = value(stream.profile, now, rng)
        if leak is not None and leak.datastream_id == stream.datastream_id:
            result = round(leak.value(elapsed, result), 2)
        items.append({"phenomenonTime": now.isoformat(), "result": result})
    return json.dumps(items[0] if count == 1 else items).encode()


def publish_feed(
    client: mqtt.Client,
    streams: list[FeedStream],
    *,
    rate: float,
    duration: float,
    per_message: int = 1,
    leak: Leak | None = None,
    seed: int = 20,
    progress: Callable[[int], None] | None = None,
) -> FeedSummary:
    """Publish for ``duration`` seconds (0: until interrupted); the client's loop must run."""
    rng = random.Random(seed)
    summary = FeedSummary()
    started = time.monotonic()
    pending: list[mqtt.MQTTMessageInfo] = []
    turn = 0
    while duration <= 0 or time.monotonic() - started < duration:
        elapsed = time.monotonic() - started
        due = int(rate * elapsed) - summary.observations
        while due >= per_message:
            stream = streams[turn % len(streams)]
            turn += 1
            payload = _message(stream, per_message, leak, elapsed, rng)
            pending.append(client.publish(observation_topic(stream.datastream_id), payload, qos=1))
            summary.observations += per_message
            summary.messages += 1
            due -= per_message
        pending = [info for info in pending if not info.is_published()]
        if progress is not None:
            progress(summary.observations)
        time.sleep(TICK_SECONDS)
    for info in pending:
        info.wait_for_publish(30)
    summary.seconds = time.monotonic() - started
    return summary
