"""Observations as clients send them: one JSON entity, or the ``CreateObservations`` dataArray.

Both end in :func:`cim.services.sensors.observations.write_observations` (COPY + roll-ups).
An observation without a FeatureOfInterest gets the one generated from its Thing's Location
(made once per Location, as FROST does). In a dataArray each row stands alone: a bad row
answers ``"error"`` in its place and the others are stored (OGC 18-088 §14.2.2).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cim.db.models import Datastream, FeatureOfInterest, SensorLocation, ThingLocation
from cim.errors import CimError, InvalidInput
from cim.services.sensors.documents import Context, self_link
from cim.services.sensors.observations import ObservationRow, write_observations
from cim.services.sensors.schema import SETS, visible
from cim.services.sensors.values import interval_value, object_value, time_value

logger = logging.getLogger("cim.sensors")
COMPONENTS = {
    "phenomenonTime",
    "resultTime",
    "result",
    "resultQuality",
    "parameters",
    "validTime",
    "FeatureOfInterest/id",
}
MAX_ROWS = 100_000


def default_feature(session: Session, datastream_id: int) -> int | None:
    """The FeatureOfInterest generated from the datastream's Thing's (first) Location."""
    location_id = session.scalar(
        select(ThingLocation.location_id)
        .join(Datastream, Datastream.thing_id == ThingLocation.thing_id)
        .where(Datastream.id == datastream_id)
        .order_by(ThingLocation.location_id)
        .limit(1)
    )
    if location_id is None:
        return None
    found = session.scalar(
        select(FeatureOfInterest.id).where(FeatureOfInterest.location_id == location_id).limit(1)
    )
    if found is not None:
        return int(found)
    location = session.get(SensorLocation, location_id)
    assert location is not None
    feature = FeatureOfInterest(
        name=location.name,
        description=location.description,
        encoding_type=location.encoding_type,
        geom=location.geom,
        location_id=location_id,
        properties={},
    )
    session.add(feature)
    session.flush()
    return int(feature.id)


def observation_row(
    values: dict[str, Any], datastream_id: int, feature_id: int | None
) -> ObservationRow:
    """A checked row from an Observation's JSON members (phenomenonTime defaults to now)."""
    if "result" not in values:
        raise InvalidInput("an Observation needs a result")
    start, end = (
        interval_value(values["phenomenonTime"], "phenomenonTime")
        if values.get("phenomenonTime") is not None
        else (datetime.now(UTC), None)
    )
    result_time = values.get("resultTime")
    parameters = values.get("parameters")
    return ObservationRow(
        datastream_id=datastream_id,
        phenomenon_time=start,
        phenomenon_time_end=end,
        result=values["result"],
        result_time=None if result_time is None else time_value(result_time, "resultTime"),
        result_quality=values.get("resultQuality"),
        parameters=None if parameters is None else object_value(parameters, "parameters"),
        feature_of_interest_id=feature_id,
    )


def visible_datastream(session: Session, datastream_id: Any, ctx: Context) -> int | None:
    """The id if that datastream exists and the caller may see it."""
    if not isinstance(datastream_id, int) or isinstance(datastream_id, bool):
        return None
    found = session.scalar(
        select(Datastream.id).where(
            Datastream.id == datastream_id, visible("Datastreams", ctx.hidden)
        )
    )
    return None if found is None else int(found)


def _existing_features(session: Session, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    rows = session.execute(
        text("SELECT id FROM sensor_feature_of_interest WHERE id = ANY(:ids)"),
        {"ids": sorted(ids)},
    )
    return {int(row[0]) for row in rows}


def _block_rows(session: Session, block: Any, ctx: Context) -> list[ObservationRow | str]:
    """The rows of one dataArray block, or ``"error"`` in place of each bad one."""
    if not isinstance(block, dict) or not isinstance(block.get("dataArray"), list):
        raise InvalidInput("each CreateObservations item needs Datastream, components, dataArray")
    components = block.get("components")
    if (
        not isinstance(components, list)
        or not components
        or any(c not in COMPONENTS for c in components)
        or "result" not in components
    ):
        raise InvalidInput(
            f"components must list result and any of {', '.join(sorted(COMPONENTS))}"
        )
    stream = block.get("Datastream")
    datastream_id = visible_datastream(
        session, stream.get("@iot.id") if isinstance(stream, dict) else None, ctx
    )
    data = block["dataArray"]
    if datastream_id is None:
        return ["error"] * len(data)
    feature_column = "FeatureOfInterest/id" in components
    features = _existing_features(
        session,
        {
            r[components.index("FeatureOfInterest/id")]
            for r in data
            if feature_column
            and isinstance(r, list)
            and len(r) == len(components)
            and isinstance(r[components.index("FeatureOfInterest/id")], int)
        },
    )
    fallback = None if feature_column else default_feature(session, datastream_id)
    rows: list[ObservationRow | str] = []
    for values in data:
        try:
            if not isinstance(values, list) or len(values) != len(components):
                raise InvalidInput("a dataArray row must have one value per component")
            members = dict(zip(components, values, strict=True))
            feature = members.pop("FeatureOfInterest/id", fallback)
            if feature_column and feature not in features:
                raise InvalidInput("no such FeatureOfInterest")
            members.pop("validTime", None)
            rows.append(observation_row(members, datastream_id, feature))
        except CimError:
            rows.append("error")
    return rows


def create_observations(session: Session, body: Any, ctx: Context) -> list[str]:
    """``POST CreateObservations``: the created Observations' URLs, ``"error"`` for bad rows."""
    if not isinstance(body, list):
        raise InvalidInput("CreateObservations expects a JSON array of dataArray blocks")
    answers: list[ObservationRow | str] = []
    for block in body:
        answers.extend(_block_rows(session, block, ctx))
        if len(answers) > MAX_ROWS:
            raise InvalidInput(f"at most {MAX_ROWS} observations per request")
    rows = [row for row in answers if isinstance(row, ObservationRow)]
    write_observations(session, rows)
    errors = sum(1 for row in answers if isinstance(row, str))
    if errors:
        logger.info("CreateObservations: %d of %d rows refused", errors, len(answers))
    observations = SETS["Observations"]
    return [
        row if isinstance(row, str) else self_link(ctx, observations, row.id or 0)
        for row in answers
    ]
