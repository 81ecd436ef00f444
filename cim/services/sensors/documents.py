"""Rows -> SensorThings JSON entities, with the control annotations clients follow.

Every entity carries ``@iot.id``, ``@iot.selfLink`` and one ``<Nav>@iot.navigationLink`` per
navigation property (OGC 18-088 §9.2); times are ISO 8601 in UTC with ``Z``; intervals are
``start/end``; geometries are GeoJSON in WGS 84. A Thing shows the cim feature it watches and
its utility class inside ``properties`` (``cim:watches``, ``cim:utility``), the same keys a
client writes to set them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cim.services.sensors.geo import storage_to_geojson
from cim.services.sensors.schema import EntitySet

WATCH_KEY = "cim:watches"
UTILITY_KEY = "cim:utility"
WATCHED_COLUMNS = {
    "pipe_node": "pipe_node_id",
    "pipe_segment": "pipe_segment_id",
    "building_element": "building_element_id",
}


@dataclass(frozen=True)
class Context:
    """What every request shares: the service root URL (``.../sta/v1.1``), the storage SRID
    and the utility classes hidden from the caller."""

    base_url: str
    srid: int
    hidden: frozenset[str] = frozenset()


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def interval(start: datetime | None, end: datetime | None) -> str | None:
    """An instant, or ``start/end`` when an end differs from the start."""
    if start is None:
        return None
    if end is None or end == start:
        return iso(start)
    return f"{iso(start)}/{iso(end)}"


def self_link(ctx: Context, entity_set: EntitySet, entity_id: int) -> str:
    """The URL of one entity."""
    return f"{ctx.base_url}/{entity_set.name}({entity_id})"


def _thing_properties(row: Any) -> dict[str, Any]:
    properties = dict(row.properties or {})
    for kind, column in WATCHED_COLUMNS.items():
        if getattr(row, column) is not None:
            properties[WATCH_KEY] = {"kind": kind, "id": getattr(row, column)}
    if row.utility is not None:
        properties[UTILITY_KEY] = row.utility
    return properties


def _fields(entity_set: EntitySet, row: Any, ctx: Context) -> dict[str, Any]:
    name = entity_set.name
    if name == "Things":
        return {
            "name": row.name,
            "description": row.description,
            "properties": _thing_properties(row),
        }
    if name in ("Locations", "FeaturesOfInterest"):
        key = "location" if name == "Locations" else "feature"
        return {
            "name": row.name,
            "description": row.description,
            "encodingType": row.encoding_type,
            key: storage_to_geojson(row.geom, ctx.srid),
            "properties": row.properties,
        }
    if name == "HistoricalLocations":
        return {"time": iso(row.time)}
    if name == "Sensors":
        return {
            "name": row.name,
            "description": row.description,
            "encodingType": row.encoding_type,
            "metadata": row.sensor_metadata,
            "properties": row.properties,
        }
    if name == "ObservedProperties":
        return {
            "name": row.name,
            "definition": row.definition,
            "description": row.description,
            "properties": row.properties,
        }
    if name == "Datastreams":
        return {
            "name": row.name,
            "description": row.description,
            "observationType": row.observation_type,
            "unitOfMeasurement": row.unit_of_measurement,
            "phenomenonTime": interval(row.phenomenon_time_start, row.phenomenon_time_end),
            "properties": row.properties,
        }
    return _observation_fields(row)


def _observation_fields(row: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "phenomenonTime": interval(row.phenomenon_time, row.phenomenon_time_end),
        "resultTime": iso(row.result_time),
        "result": row.result if row.result is not None else row.result_json,
    }
    if row.result_quality is not None:
        fields["resultQuality"] = row.result_quality
    if row.parameters is not None:
        fields["parameters"] = row.parameters
    return fields


def document(
    entity_set: EntitySet, row: Any, ctx: Context, select: list[str] | None = None
) -> dict[str, Any]:
    """The JSON of one entity; ``select`` keeps only those properties (and the id/self link)."""
    link = self_link(ctx, entity_set, row.id)
    out: dict[str, Any] = {"@iot.id": row.id, "@iot.selfLink": link}
    fields = _fields(entity_set, row, ctx)
    if select is not None:
        fields = {key: value for key, value in fields.items() if key in select}
    out.update(fields)
    for nav in entity_set.navigation:
        if select is None or nav in select:
            out[f"{nav}@iot.navigationLink"] = f"{link}/{nav}"
    return out
