"""SensorThings over MQTT: topics, and checking one message into observation rows (pure).

Clients create observations as FROST's do, by publishing an Observation entity (JSON) to
``v1.1/Datastreams(ID)/Observations`` with QoS 1. cim subscribes to :data:`SUBSCRIPTION`
(``v1.1/+/Observations``: an MQTT wildcard must fill a whole topic level, so the datastream id
is read from the ``Datastreams(ID)`` level by :func:`topic_datastream`). As an extension, a
message may carry a JSON array of observations of that datastream (one message per batch of
a gateway).

cim publishes every stored observation back on the same topic, as FROST does, with its
``@iot.id`` and ``@iot.selfLink`` (in the shape it came: one entity, or an array of entities
for an array message). Those publications are not ingested again: the ingester's
subscription uses MQTT 5 *No Local* (the broker does not send a client its own publications),
and any message carrying ``@iot.id`` is an already-stored entity, skipped and counted as an
echo (a second cim process, or a broker without No Local). Clients never send ``@iot.id``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic_core import from_json

from cim.db.models.sensor import OBSERVATION_TYPES
from cim.errors import InvalidInput
from cim.services.sensors.ingest import observation_row
from cim.services.sensors.observations import ObservationRow

SUBSCRIPTION = "v1.1/+/Observations"
"""What the ingester subscribes to (QoS 1)."""
TOPIC = re.compile(r"^v1\.1/Datastreams\(([1-9][0-9]{0,17})\)/Observations$")
MAX_PAYLOAD = 1_000_000
MAX_OBSERVATIONS = 10_000
SHORT_TYPES = {uri: short for short, uri in OBSERVATION_TYPES.items()}


def observation_topic(datastream_id: int) -> str:
    """The topic of a datastream's observations (publish to create, subscribe to follow)."""
    return f"v1.1/Datastreams({datastream_id})/Observations"


@lru_cache(maxsize=4096)
def topic_datastream(topic: str) -> int | None:
    """The datastream id of an observation topic, or None for any other topic."""
    found = TOPIC.match(topic)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one message holds: rows to store, or ``echo`` (an entity cim published)."""

    rows: list[ObservationRow]
    echo: bool = False
    array: bool = False  # the gateway form: published back as an array too


def result_fits(observation_type: str, result: Any) -> bool:
    """Whether ``result`` has the type the datastream's observationType promises
    (OGC 18-088 Table 13): Measurement a finite number, Count an integer, Truth a boolean,
    Category a string; OM_Observation (or an unknown type) takes any JSON value."""
    short = SHORT_TYPES.get(observation_type, "OM_Observation")
    if short == "OM_Measurement":
        return (
            isinstance(result, int | float)
            and not isinstance(result, bool)
            and math.isfinite(result)
        )
    if short == "OM_CountObservation":
        return isinstance(result, int) and not isinstance(result, bool)
    if short == "OM_TruthObservation":
        return isinstance(result, bool)
    if short == "OM_CategoryObservation":
        return isinstance(result, str)
    return True


def parse_message(
    topic: str, payload: bytes, types: dict[int, str], feature_id: int | None = None
) -> Parsed:
    """Check one message against the known datastreams (``types``: id -> observationType).

    Raises InvalidInput naming what is wrong (topic, JSON, unknown datastream, result type);
    one bad observation refuses the whole message (a message is acknowledged as a whole).
    """
    datastream_id = topic_datastream(topic)
    if datastream_id is None:
        raise InvalidInput(f"not an observation topic: {topic[:200]}")
    if datastream_id not in types:
        raise InvalidInput(f"no datastream with id {datastream_id}")
    if len(payload) > MAX_PAYLOAD:
        raise InvalidInput(f"a message may hold at most {MAX_PAYLOAD} bytes")
    try:
        body = from_json(payload)  # pydantic's parser: a fifth of json.loads' time
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"not JSON: {str(exc)[:120]}") from None
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_OBSERVATIONS:
        raise InvalidInput(f"a message holds 1 to {MAX_OBSERVATIONS} observations")
    if any(isinstance(item, dict) and "@iot.id" in item for item in items):
        return Parsed([], echo=True)
    rows = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInput("an observation must be a JSON object")
        if not result_fits(types[datastream_id], item.get("result")):
            short = SHORT_TYPES.get(types[datastream_id], types[datastream_id])
            raise InvalidInput(f"result {str(item.get('result'))[:40]!r} does not fit {short}")
        rows.append(observation_row(item, datastream_id, feature_id))
    return Parsed(rows, array=isinstance(body, list))


def published_json(row: ObservationRow) -> str:
    """:func:`published_document` as JSON text, written directly (the publish-back of every
    observation: a third of ``json.dumps`` of the document)."""
    moment = row.phenomenon_time.isoformat()
    if row.phenomenon_time_end is not None:
        moment = f"{moment}/{row.phenomenon_time_end.isoformat()}"
    stamp = "null" if row.result_time is None else f'"{row.result_time.isoformat()}"'
    result = row.result
    finite = type(result) is float and math.isfinite(result)
    value = repr(result) if finite else json.dumps(result)  # repr: what json.dumps writes
    return (
        f'{{"@iot.id": {row.id}, "@iot.selfLink": "/sta/v1.1/Observations({row.id})",'
        f' "phenomenonTime": "{moment}", "resultTime": {stamp}, "result": {value}}}'
    )


def published_document(row: ObservationRow) -> dict[str, Any]:
    """The stored observation as cim publishes it back (FROST's entity form)."""
    document: dict[str, Any] = {
        "@iot.id": row.id,
        "@iot.selfLink": f"/sta/v1.1/Observations({row.id})",
        "phenomenonTime": row.phenomenon_time.isoformat()
        if row.phenomenon_time_end is None
        else f"{row.phenomenon_time.isoformat()}/{row.phenomenon_time_end.isoformat()}",
        "resultTime": None if row.result_time is None else row.result_time.isoformat(),
        "result": row.result,
    }
    return document
