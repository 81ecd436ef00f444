"""Creating, updating and deleting SensorThings entities, with deep insert (OGC 18-088 §10).

A POST body may nest related entities: a Thing with its Locations and Datastreams, each
Datastream with its Sensor and ObservedProperty (new ones, or ``{"@iot.id": n}`` links to
existing ones). Everything happens in the caller's transaction, so a bad member anywhere
rolls the whole insert back. When a Thing gets Locations a HistoricalLocation records when.
Observations go through the batch path (:mod:`.ingest`) so roll-ups stay right; an update or a
delete of an observation recomputes only the buckets it touched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from cim.db.models import (
    OBSERVATION_TYPES,
    HistoricalLocation,
    HistoricalLocationLocation,
    Observation,
    ThingLocation,
)
from cim.errors import InvalidInput, NotFound
from cim.services.sensors.documents import Context
from cim.services.sensors.geo import geojson_to_storage
from cim.services.sensors.ingest import default_feature, observation_row
from cim.services.sensors.observations import refresh_buckets, write_observations
from cim.services.sensors.schema import SETS, EntitySet, Navigation, visible
from cim.services.sensors.values import (
    interval_value,
    object_value,
    text_value,
    thing_links,
    time_value,
    unit_value,
)

MAX_NESTING = 24
"""Deep inserts nest a few levels (Thing > Datastream > Sensor); JSON properties a few more."""


def check_nesting(body: Any) -> None:
    """Refuse bodies nested deeper than :data:`MAX_NESTING` (before any recursion)."""
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            raise InvalidInput(f"the body is nested deeper than {MAX_NESTING} levels")
        children = (
            value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)


def _entity_body(entity_set: EntitySet, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"a {entity_set.singular} must be a JSON object")
    for key in body:
        if key.startswith("@iot.") or key.endswith("@iot.navigationLink"):
            continue
        if key not in entity_set.properties and key not in entity_set.navigation:
            known = ", ".join([*entity_set.properties, *entity_set.navigation])
            raise InvalidInput(f"{entity_set.singular} has no member {key!r}; it has {known}")
    return body


def _value(entity_set: EntitySet, key: str, value: Any, ctx: Context, session: Session) -> Any:
    kind = entity_set.properties[key].kind
    if kind == "text":
        if key == "observationType":
            value = OBSERVATION_TYPES.get(value, value)
        return text_value(value, key)
    if kind == "geometry":
        return geojson_to_storage(value, ctx.srid, key)
    if kind == "time":
        return time_value(value, key)
    if key == "unitOfMeasurement":
        return unit_value(value)
    return object_value(value, key)


def _columns(
    session: Session, entity_set: EntitySet, body: dict[str, Any], ctx: Context, partial: bool
) -> dict[str, Any]:
    """Stored column values of the body's properties (required ones checked unless partial)."""
    if not partial:
        missing = [key for key in entity_set.required if body.get(key) is None]
        if missing:
            raise InvalidInput(f"a {entity_set.singular} needs {', '.join(missing)}")
    columns: dict[str, Any] = {}
    for key, prop in entity_set.properties.items():
        if key not in body or not prop.writable:
            continue
        value = body[key]
        if value is None and key == "properties":
            value = {}
        columns[prop.column.key] = _value(entity_set, key, value, ctx, session)
    if entity_set.name == "Things" and (not partial or "properties" in body):
        properties = dict(columns.get("properties", {}))
        columns.update(thing_links(session, properties))
        columns["properties"] = properties
    return columns


def reverse_navigation(nav: Navigation) -> str | None:
    """The to-one navigation of the child pointing back along ``nav`` (Datastream -> Thing)."""
    for name, back in SETS[nav.target].navigation.items():
        if back.on_parent is not None and back.on_parent is nav.on_target:
            return name
    return None


def reference(session: Session, entity_set: EntitySet, value: Any, ctx: Context) -> int:
    """The id of ``{"@iot.id": n}`` (which must exist and be visible) or of a new entity."""
    if isinstance(value, dict) and "@iot.id" in value and len(value) == 1:
        entity_id = value["@iot.id"]
        model = entity_set.model
        found = isinstance(entity_id, int) and session.scalar(
            select(model.id).where(model.id == entity_id, visible(entity_set.name, ctx.hidden))
        )
        if not found:
            raise NotFound(f"no {entity_set.singular} with id {entity_id}")
        return int(entity_id)
    return _create(session, entity_set, value, ctx)


def _record_history(session: Session, thing_id: int, location_ids: list[int]) -> None:
    if not location_ids:
        return
    historical = session.scalar(
        insert(HistoricalLocation)
        .values(thing_id=thing_id, time=datetime.now(UTC))
        .returning(HistoricalLocation.id)
    )
    session.execute(
        insert(HistoricalLocationLocation),
        [{"historical_location_id": historical, "location_id": loc} for loc in location_ids],
    )


def create(
    session: Session,
    entity_set: EntitySet,
    body: Any,
    ctx: Context,
    implied: dict[str, int] | None = None,
) -> int:
    """Insert one entity with its nested ones; returns its id. ``implied`` gives to-one links
    the request path fixes (``Datastreams(1)/Observations`` implies the Datastream)."""
    check_nesting(body)
    return _create(session, entity_set, body, ctx, implied)


def _create(
    session: Session,
    entity_set: EntitySet,
    body: Any,
    ctx: Context,
    implied: dict[str, int] | None = None,
) -> int:
    body = _entity_body(entity_set, body)
    implied = implied or {}
    links: dict[str, int] = {}
    for name, nav in entity_set.navigation.items():
        if not nav.many and name in body:
            links[name] = reference(session, SETS[nav.target], body[name], ctx)
        elif not nav.many and name in implied:
            links[name] = implied[name]
    if entity_set.name == "Observations":
        return _create_observation(session, body, links)
    for name, nav in entity_set.navigation.items():
        needed = name in ("Thing", "Sensor", "ObservedProperty")
        if not nav.many and needed and name not in links:
            raise InvalidInput(f"a {entity_set.singular} needs its {name}")
    columns = _columns(session, entity_set, body, ctx, partial=False)
    for name, target_id in links.items():
        columns[entity_set.navigation[name].on_parent.key] = target_id
    model = entity_set.model
    new_id = int(session.scalar(insert(model).values(**columns).returning(model.id)) or 0)
    _create_children(session, entity_set, new_id, body, ctx)
    if entity_set.name == "Things" and "Locations" not in body:
        _locate_at_feature(session, new_id, columns)
    return new_id


FEATURE_POINTS = {
    "pipe_node_id": ("pipe_node", "geom"),
    "pipe_segment_id": ("pipe_segment", "ST_LineInterpolatePoint(geom, 0.5)"),
    "building_element_id": ("building_element", "ST_Centroid(coalesce(footprint, mesh))"),
}
"""Where a Thing that watches a feature stands when it is given no Location: the node, the
middle of the segment, the centroid of the element (storage CRS, z kept where there is one)."""


def _locate_at_feature(session: Session, thing_id: int, columns: dict[str, Any]) -> None:
    for column, (table, point) in FEATURE_POINTS.items():
        feature_id = columns.get(column)
        if feature_id is None:
            continue
        location_id = session.scalar(
            text(
                "INSERT INTO sensor_location (name, description, geom)"
                f" SELECT :name, :description, ST_Force3D({point}) FROM {table} WHERE id = :id"
                " RETURNING id"
            ),
            {
                "name": f"{table} {feature_id}",
                "description": f"where the watched {table.replace('_', ' ')} is",
                "id": feature_id,
            },
        )
        if location_id is not None:
            session.execute(
                insert(ThingLocation).values(thing_id=thing_id, location_id=location_id)
            )
            _record_history(session, thing_id, [location_id])


def _create_children(
    session: Session, entity_set: EntitySet, new_id: int, body: dict[str, Any], ctx: Context
) -> None:
    for name, nav in entity_set.navigation.items():
        if not nav.many or name not in body:
            continue
        items = body[name]
        if not isinstance(items, list):
            raise InvalidInput(f"{name} must be a JSON array")
        target = SETS[nav.target]
        if nav.on_target is not None:
            back = reverse_navigation(nav)
            for item in items:
                _create(session, target, item, ctx, {back: new_id} if back else None)
            continue
        assert nav.link is not None
        linked = [reference(session, target, item, ctx) for item in items]
        to_parent, to_target = nav.link
        session.execute(
            insert(to_parent.class_),
            [{to_parent.key: new_id, to_target.key: other} for other in linked],
        )
        if to_parent is ThingLocation.thing_id:
            _record_history(session, new_id, linked)
        elif to_parent is ThingLocation.location_id:
            for thing_id in linked:
                _record_history(session, thing_id, [new_id])


def _create_observation(session: Session, body: dict[str, Any], links: dict[str, int]) -> int:
    if "Datastream" not in links:
        raise InvalidInput("an Observation needs its Datastream")
    datastream_id = links["Datastream"]
    feature = links.get("FeatureOfInterest") or default_feature(session, datastream_id)
    row = observation_row(body, datastream_id, feature)
    return write_observations(session, [row])[0]


def _existing(session: Session, entity_set: EntitySet, entity_id: int, ctx: Context) -> Any:
    row = session.scalars(
        select(entity_set.model).where(
            entity_set.model.id == entity_id, visible(entity_set.name, ctx.hidden)
        )
    ).first()
    if row is None:
        raise NotFound(f"no {entity_set.singular} with id {entity_id}")
    return row


def patch(session: Session, entity_set: EntitySet, entity_id: int, body: Any, ctx: Context) -> None:
    """Update the given properties and to-one links (and a Thing's Locations)."""
    check_nesting(body)
    body = _entity_body(entity_set, body)
    row = _existing(session, entity_set, entity_id, ctx)
    if entity_set.name == "Observations":
        _patch_observation(session, row, body)
        return
    columns = _columns(session, entity_set, body, ctx, partial=True)
    for name, nav in entity_set.navigation.items():
        if name in body and not nav.many:
            columns[nav.on_parent.key] = reference(session, SETS[nav.target], body[name], ctx)
    model = entity_set.model
    if columns:
        session.execute(update(model).where(model.id == entity_id).values(**columns))
    if entity_set.name == "Things" and "Locations" in body:
        if not isinstance(body["Locations"], list):
            raise InvalidInput("Locations must be a JSON array")
        locations = [reference(session, SETS["Locations"], item, ctx) for item in body["Locations"]]
        session.execute(delete(ThingLocation).where(ThingLocation.thing_id == entity_id))
        if locations:
            session.execute(
                insert(ThingLocation),
                [{"thing_id": entity_id, "location_id": loc} for loc in locations],
            )
        _record_history(session, entity_id, locations)
    session.expire_all()


def _patch_observation(session: Session, row: Observation, body: dict[str, Any]) -> None:
    before = row.phenomenon_time
    values: dict[str, Any] = {}
    if "phenomenonTime" in body:
        values["phenomenon_time"], values["phenomenon_time_end"] = interval_value(
            body["phenomenonTime"], "phenomenonTime"
        )
    if "resultTime" in body:
        moment = body["resultTime"]
        values["result_time"] = None if moment is None else time_value(moment, "resultTime")
    if "result" in body:
        new = observation_row({"result": body["result"]}, row.datastream_id, None)
        values["result"] = new.result if isinstance(new.result, int | float) else None
        values["result_json"] = None if values["result"] is not None else body["result"]
    for key, column in (("resultQuality", "result_quality"), ("parameters", "parameters")):
        if key in body:
            values[column] = body[key]
    if values:
        session.execute(
            update(Observation)
            .where(Observation.id == row.id, Observation.phenomenon_time == before)
            .values(**values)
        )
    moments = [before, values.get("phenomenon_time", before)]
    refresh_buckets(session, row.datastream_id, moments)
    session.expire_all()


def remove(session: Session, entity_set: EntitySet, entity_id: int, ctx: Context) -> None:
    """Delete one entity (what depends on it goes with it, as the standard says)."""
    row = _existing(session, entity_set, entity_id, ctx)
    model = entity_set.model
    session.execute(delete(model).where(model.id == entity_id))
    if entity_set.name == "Observations":
        refresh_buckets(session, row.datastream_id, [row.phenomenon_time])
    session.expire_all()
