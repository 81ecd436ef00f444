"""MQTT ingestion: subscribe with QoS 1, store in batches, acknowledge after the commit.

The connection (:mod:`.mqtt_session`, a lean MQTT 5 subscriber: paho's per-message cost
capped one-observation messages near 4,000/s) only queues what it reads; a writer thread
takes up to ``batch_size`` messages (or what came within ``flush_ms``), checks them
(:mod:`.mqtt_messages`), writes the valid ones in one transaction through
:func:`insert_observations` (COPY, roll-ups, alarm rules) and only then sends the PUBACKs,
all in one write (then publishes the stored observations back, also in one write).
The session is persistent (MQTT 5, clean start off, a week of session expiry), so when
the process dies the broker keeps every unacknowledged message and sends it again, flagged
DUP, when an ingester with the same client id reconnects (or when the connection is made
again: what came on the lost one is dropped unacknowledged): a kill loses
nothing that was published, at worst the in-flight batch is written a second time — which is
avoided: a redelivered (DUP) observation whose (datastream, phenomenonTime, result) is stored
already is skipped and counted as a duplicate. (An observation without phenomenonTime is
stamped on arrival, so its redelivery cannot be recognised.)

A message refused (not JSON, unknown datastream, wrong result type) is logged, counted and
acknowledged — the broker must not send it again — and the stream goes on. When the database
is down the batch is kept, not acknowledged, and retried.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cim.db.models import Datastream
from cim.errors import CimError, ConfigError
from cim.faults import pause_point
from cim.services.sensors.ingest import default_feature
from cim.services.sensors.mqtt_messages import (
    SUBSCRIPTION,
    parse_message,
    published_json,
    topic_datastream,
)
from cim.services.sensors.mqtt_session import MqttSession, Received
from cim.services.sensors.observations import ObservationRow, insert_observations

logger = logging.getLogger("cim.sensors.mqtt")
MQTT_URL_ENV = "CIM_MQTT_URL"
"""How ``cim serve`` hands its broker to the API processes (``CimSettings.mqtt_url``)."""
MQTT_BATCH_ENV = "CIM_MQTT_BATCH"
"""``CimSettings.mqtt_batch``, from ``cim serve --mqtt-batch``."""
MQTT_PUBLISH_ENV = "CIM_MQTT_PUBLISH"
"""``CimSettings.mqtt_publish``: ``0`` when ``cim serve --no-mqtt-publish``."""
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
STATS_LOG_SECONDS = 10.0
RETRY_SECONDS = 2.0


@dataclass(slots=True)
class IngestStats:
    """Counters of one ingester (logged every few seconds and at stop)."""

    received: int = 0
    stored: int = 0
    rejected: int = 0
    redelivered: int = 0
    duplicates: int = 0
    echoes: int = 0
    batches: int = 0
    check_ms: int = 0  # per stage, summed: JSON and values checked into rows
    write_ms: int = 0  # duplicates looked up, COPY, roll-ups, alarm rules, commit
    ack_ms: int = 0  # PUBACKs and the publish-back


@dataclass(slots=True)
class Pending:
    """A message received, not yet acknowledged."""

    topic: str
    payload: bytes
    mid: int
    dup: bool
    rows: list[ObservationRow] = field(default_factory=list)
    array: bool = False
    generation: int = 0  # the connection it came on (acks go only on that one)


def broker_address(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` (or ``tcp://``) -> (host, port); 1883 by default."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ConfigError(f"an MQTT broker URL looks like mqtt://127.0.0.1:1883, not {url!r}")
    return parts.hostname, parts.port or 1883


def connect_client(
    url: str, client_id: str, *, persistent: bool, manual_ack: bool = False
) -> mqtt.Client:
    """A paho MQTT 5 client connected (network loop not started) to ``url``."""
    host, port = broker_address(url)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS if persistent else 0
    properties.ReceiveMaximum = 65535
    client.connect(host, port, keepalive=30, clean_start=not persistent, properties=properties)
    return client


def _key(numeric: Any, other: Any) -> Any:
    """A comparable form of a stored or received result (numbers as floats, JSON as text)."""
    value = other if numeric is None else numeric
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return json.dumps(value, sort_keys=True)


class MqttIngester:
    """Subscribes to SensorThings observation topics and stores what arrives (see module)."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        *,
        client_id: str = "cim-ingest",
        batch_size: int = 2000,
        flush_ms: int = 200,
        publish_back: bool = True,
    ) -> None:
        self.engine = engine
        self.url = url
        self.client_id = client_id
        self.batch_size = batch_size
        self.flush_seconds = flush_ms / 1000
        self.publish_back = publish_back
        self.stats = IngestStats()
        self._pending: deque[Pending] = deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._types: dict[int, str] = {}
        self._features: dict[int, int | None] = {}
        self._session: MqttSession | None = None
        self._generation = 0
        self._writer = threading.Thread(target=self._run, name="cim-mqtt-writer", daemon=True)

    def start(self) -> None:
        """Connect (persistent session), subscribe and start the writer."""
        host, port = broker_address(self.url)
        session = MqttSession(
            host,
            port,
            self.client_id,
            SUBSCRIPTION,
            self._on_messages,
            session_expiry=SESSION_EXPIRY_SECONDS,
        )
        self._session = session
        session.start()
        self._writer.start()
        logger.info("MQTT ingestion from %s (client %s)", self.url, self.client_id)

    def stop(self) -> None:
        """Write and acknowledge what is pending, then disconnect."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._writer.is_alive():
            self._writer.join(timeout=30)
        if self._session is not None:
            self._session.stop()
        self._log_stats()

    def _on_messages(self, messages: list[Received], generation: int) -> None:
        with self._ready:
            if generation != self._generation:
                # a new connection: the broker sends again what the old one left unacknowledged
                self._pending.clear()
                self._generation = generation
            self._pending.extend(
                Pending(m.topic, m.payload, m.mid, m.dup, generation=generation) for m in messages
            )
            if len(self._pending) >= self.batch_size:
                self._ready.notify()

    def _take(self) -> list[Pending]:
        with self._ready:
            if len(self._pending) < self.batch_size and not self._stop.is_set():
                self._ready.wait(self.flush_seconds)
            count = min(len(self._pending), self.batch_size)
            return [self._pending.popleft() for _ in range(count)]

    def _run(self) -> None:
        last_log = time.monotonic()
        while not (self._stop.is_set() and not self._pending):
            batch = self._take()
            while batch and not self._write(batch):
                if self._stop.wait(RETRY_SECONDS):
                    return  # not acknowledged: the broker sends them again
            if time.monotonic() - last_log > STATS_LOG_SECONDS:
                self._log_stats()
                last_log = time.monotonic()

    def _log_stats(self) -> None:
        logger.info(
            "MQTT ingestion: %s", ", ".join(f"{k} {v}" for k, v in asdict(self.stats).items())
        )

    def _write(self, batch: list[Pending]) -> bool:
        """Check, store, acknowledge one batch; False (nothing acknowledged) on a database error."""
        began = time.perf_counter()
        try:
            self._learn([m for m in batch if topic_datastream(m.topic) not in self._types])
            accepted, refused, echoes = self._check(batch)
            checked = time.perf_counter()
            rows = self._without_duplicates(accepted)
            insert_observations(self.engine, rows)
        except (SQLAlchemyError, CimError) as exc:
            # database down, or a datastream deleted since it was learnt: keep the batch
            # unacknowledged, forget what was learnt and try again
            logger.warning("MQTT batch of %d kept for a retry: %s", len(batch), str(exc)[:200])
            self._types.clear()
            self._features.clear()
            return False
        written = time.perf_counter()
        pause_point("mqtt-ack")  # fault tests kill here: the batch stored, not acknowledged
        assert self._session is not None
        self._session.ack([m.mid for m in batch], batch[0].generation)
        if self.publish_back:
            self._publish(accepted)
        stats = self.stats
        stats.check_ms += round(1000 * (checked - began))
        stats.write_ms += round(1000 * (written - checked))
        stats.ack_ms += round(1000 * (time.perf_counter() - written))
        stats.received += len(batch)
        stats.redelivered += sum(message.dup for message in batch)
        stats.rejected += refused
        stats.echoes += echoes
        stats.stored += len(rows)
        stats.batches += 1
        return True

    def _check(self, batch: list[Pending]) -> tuple[list[Pending], int, int]:
        """The messages to store, how many were refused (logged), how many were echoes."""
        accepted = []
        refused = echoes = 0
        for message in batch:
            datastream_id = topic_datastream(message.topic) or 0
            try:
                parsed = parse_message(
                    message.topic, message.payload, self._types, self._features.get(datastream_id)
                )
            except CimError as exc:
                refused += 1
                logger.warning("MQTT message on %s refused: %s", message.topic[:120], exc)
                continue
            if parsed.echo:
                echoes += 1
                continue
            message.rows, message.array = parsed.rows, parsed.array
            accepted.append(message)
        return accepted, refused, echoes

    def _learn(self, unknown: list[Pending]) -> None:
        """Observation types and default features of datastreams not seen yet."""
        ids = {topic_datastream(m.topic) for m in unknown} - {None}
        if not ids:
            return
        with Session(self.engine) as session, session.begin():
            found = session.execute(
                select(Datastream.id, Datastream.observation_type).where(Datastream.id.in_(ids))
            )
            for datastream_id, observation_type in found:
                self._features[datastream_id] = default_feature(session, datastream_id)
                self._types[datastream_id] = observation_type

    def _without_duplicates(self, accepted: list[Pending]) -> list[ObservationRow]:
        """The rows to write: a redelivered row stored already is left out (and counted)."""
        rows = [row for message in accepted for row in message.rows]
        again = [row for message in accepted if message.dup for row in message.rows]
        if not again:
            return rows
        statement = text(
            "SELECT datastream_id, phenomenon_time, result, result_json FROM sensor_observation"
            " WHERE (datastream_id, phenomenon_time) IN"
            " (SELECT * FROM unnest(:ds, :at))"
        ).bindparams(bindparam("ds", type_=ARRAY(BIGINT)))
        with self.engine.connect() as connection:
            stored = {
                (r.datastream_id, r.phenomenon_time, _key(r.result, r.result_json))
                for r in connection.execute(
                    statement,
                    {
                        "ds": [r.datastream_id for r in again],
                        "at": [r.phenomenon_time for r in again],
                    },
                )
            }
        keep = []
        for row in rows:
            if (row.datastream_id, row.phenomenon_time, _key(row.result, None)) in stored:
                self.stats.duplicates += 1
                continue
            keep.append(row)
        return keep

    def _publish(self, accepted: list[Pending]) -> None:
        """Each stored observation on its datastream's topic, in the shape its message had."""
        assert self._session is not None
        out = []
        for message in accepted:
            documents = [published_json(row) for row in message.rows if row.id is not None]
            if documents:
                body = f"[{', '.join(documents)}]" if message.array else documents[0]
                out.append((message.topic, body.encode()))
        self._session.publish(out)
