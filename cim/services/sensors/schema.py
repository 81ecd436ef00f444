"""The SensorThings entity sets: their JSON properties, columns, navigation and visibility.

One table drives reading, filtering and writing: each :class:`EntitySet` names its model, the
JSON properties a client may filter, order and write (with the column behind each), and its
navigation properties. A navigation is expressed as a condition on the *target* rows given a
subquery of parent ids, so ``Things(1)/Datastreams(2)/Observations`` is just nested ``IN``s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, true

from cim.db.models import (
    Datastream,
    FeatureOfInterest,
    HistoricalLocation,
    HistoricalLocationLocation,
    Observation,
    ObservedProperty,
    Sensor,
    SensorLocation,
    Thing,
    ThingLocation,
)
from cim.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Property:
    """A JSON property of an entity and the column behind it; ``kind`` is one of text,
    number, time, json, geometry, result (number or JSON)."""

    column: Any
    kind: str
    writable: bool = True


@dataclass(frozen=True)
class Navigation:
    """How the ``target`` set's rows relate to parent rows.

    ``on_target``: a column of the target holding the parent id (Thing -> Datastreams);
    ``on_parent``: a column of the parent holding the target id (Datastream -> Thing);
    ``link``: (link column to the parent, link column to the target) of a link table.
    """

    target: str
    many: bool
    on_target: Any = None
    on_parent: Any = None
    link: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class EntitySet:
    """One entity set of the service root (``Things``) and its entity type (``Thing``)."""

    name: str
    singular: str
    model: Any
    properties: dict[str, Property]
    navigation: dict[str, Navigation]
    required: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _p(column: Any, kind: str = "text", writable: bool = True) -> Property:
    return Property(column, kind, writable)


SETS: dict[str, EntitySet] = {
    "Things": EntitySet(
        "Things",
        "Thing",
        Thing,
        {
            "name": _p(Thing.name),
            "description": _p(Thing.description),
            "properties": _p(Thing.properties, "json"),
        },
        {
            "Locations": Navigation(
                "Locations", True, link=(ThingLocation.thing_id, ThingLocation.location_id)
            ),
            "HistoricalLocations": Navigation(
                "HistoricalLocations", True, on_target=HistoricalLocation.thing_id
            ),
            "Datastreams": Navigation("Datastreams", True, on_target=Datastream.thing_id),
        },
        ("name", "description"),
    ),
    "Locations": EntitySet(
        "Locations",
        "Location",
        SensorLocation,
        {
            "name": _p(SensorLocation.name),
            "description": _p(SensorLocation.description),
            "encodingType": _p(SensorLocation.encoding_type),
            "location": _p(SensorLocation.geom, "geometry"),
            "properties": _p(SensorLocation.properties, "json"),
        },
        {
            "Things": Navigation(
                "Things", True, link=(ThingLocation.location_id, ThingLocation.thing_id)
            ),
            "HistoricalLocations": Navigation(
                "HistoricalLocations",
                True,
                link=(
                    HistoricalLocationLocation.location_id,
                    HistoricalLocationLocation.historical_location_id,
                ),
            ),
        },
        ("name", "description", "encodingType", "location"),
    ),
    "HistoricalLocations": EntitySet(
        "HistoricalLocations",
        "HistoricalLocation",
        HistoricalLocation,
        {"time": _p(HistoricalLocation.time, "time")},
        {
            "Thing": Navigation("Things", False, on_parent=HistoricalLocation.thing_id),
            "Locations": Navigation(
                "Locations",
                True,
                link=(
                    HistoricalLocationLocation.historical_location_id,
                    HistoricalLocationLocation.location_id,
                ),
            ),
        },
        ("time",),
    ),
    "Sensors": EntitySet(
        "Sensors",
        "Sensor",
        Sensor,
        {
            "name": _p(Sensor.name),
            "description": _p(Sensor.description),
            "encodingType": _p(Sensor.encoding_type),
            "metadata": _p(Sensor.sensor_metadata),
            "properties": _p(Sensor.properties, "json"),
        },
        {"Datastreams": Navigation("Datastreams", True, on_target=Datastream.sensor_id)},
        ("name", "description", "encodingType", "metadata"),
    ),
    "ObservedProperties": EntitySet(
        "ObservedProperties",
        "ObservedProperty",
        ObservedProperty,
        {
            "name": _p(ObservedProperty.name),
            "definition": _p(ObservedProperty.definition),
            "description": _p(ObservedProperty.description),
            "properties": _p(ObservedProperty.properties, "json"),
        },
        {"Datastreams": Navigation("Datastreams", True, on_target=Datastream.observed_property_id)},
        ("name", "definition", "description"),
    ),
    "Datastreams": EntitySet(
        "Datastreams",
        "Datastream",
        Datastream,
        {
            "name": _p(Datastream.name),
            "description": _p(Datastream.description),
            "observationType": _p(Datastream.observation_type),
            "unitOfMeasurement": _p(Datastream.unit_of_measurement, "json"),
            "phenomenonTime": _p(Datastream.phenomenon_time_start, "time", writable=False),
            "properties": _p(Datastream.properties, "json"),
        },
        {
            "Thing": Navigation("Things", False, on_parent=Datastream.thing_id),
            "Sensor": Navigation("Sensors", False, on_parent=Datastream.sensor_id),
            "ObservedProperty": Navigation(
                "ObservedProperties", False, on_parent=Datastream.observed_property_id
            ),
            "Observations": Navigation("Observations", True, on_target=Observation.datastream_id),
        },
        ("name", "description", "observationType", "unitOfMeasurement"),
    ),
    "Observations": EntitySet(
        "Observations",
        "Observation",
        Observation,
        {
            "phenomenonTime": _p(Observation.phenomenon_time, "time"),
            "resultTime": _p(Observation.result_time, "time"),
            "result": _p(Observation.result, "result"),
            "resultQuality": _p(Observation.result_quality, "json"),
            "parameters": _p(Observation.parameters, "json"),
        },
        {
            "Datastream": Navigation("Datastreams", False, on_parent=Observation.datastream_id),
            "FeatureOfInterest": Navigation(
                "FeaturesOfInterest", False, on_parent=Observation.feature_of_interest_id
            ),
        },
        ("result",),
    ),
    "FeaturesOfInterest": EntitySet(
        "FeaturesOfInterest",
        "FeatureOfInterest",
        FeatureOfInterest,
        {
            "name": _p(FeatureOfInterest.name),
            "description": _p(FeatureOfInterest.description),
            "encodingType": _p(FeatureOfInterest.encoding_type),
            "feature": _p(FeatureOfInterest.geom, "geometry"),
            "properties": _p(FeatureOfInterest.properties, "json"),
        },
        {
            "Observations": Navigation(
                "Observations", True, on_target=Observation.feature_of_interest_id
            )
        },
        ("name", "description", "encodingType", "feature"),
    ),
}
SINGULAR = {entity_set.singular: entity_set for entity_set in SETS.values()}


def entity_set(name: str) -> EntitySet:
    """The entity set called ``name``; NotFound names the sets there are."""
    found = SETS.get(name)
    if found is None:
        raise NotFound(f"no entity set {name!r}; there are {', '.join(SETS)}")
    return found


def navigation(parent: EntitySet, name: str) -> Navigation:
    """The navigation property ``name`` of ``parent``; InvalidInput names the ones there are."""
    found = parent.navigation.get(name)
    if found is None:
        raise InvalidInput(
            f"{parent.singular} has no navigation property {name!r}; "
            f"it has {', '.join(parent.navigation)}"
        )
    return found


def related(parent: EntitySet, nav: Navigation, parent_ids: Select[Any]) -> ColumnElement[bool]:
    """Condition on the target rows of ``nav`` related to the parents in ``parent_ids``."""
    target = SETS[nav.target].model
    if nav.on_target is not None:
        return nav.on_target.in_(parent_ids)  # type: ignore[no-any-return]
    if nav.on_parent is not None:
        owners = select(nav.on_parent).where(parent.model.id.in_(parent_ids))
        return target.id.in_(owners)  # type: ignore[no-any-return]
    assert nav.link is not None
    to_parent, to_target = nav.link
    return target.id.in_(select(to_target).where(to_parent.in_(parent_ids)))  # type: ignore[no-any-return]


def _hidden_things(hidden: frozenset[str]) -> Select[Any]:
    return select(Thing.id).where(Thing.utility.in_(sorted(hidden)))


def visible(name: str, hidden: frozenset[str]) -> ColumnElement[bool]:
    """Rows of set ``name`` the caller may see: nothing of a Thing whose utility class is
    hidden from it (its datastreams, observations, locations, generated features)."""
    if not hidden:
        return true()
    things = _hidden_things(hidden)
    locations = select(ThingLocation.location_id).where(ThingLocation.thing_id.in_(things))
    streams = select(Datastream.id).where(Datastream.thing_id.in_(things))
    conditions: dict[str, ColumnElement[bool]] = {
        "Things": or_(Thing.utility.is_(None), Thing.utility.not_in(sorted(hidden))),
        "Datastreams": Datastream.thing_id.not_in(things),
        "Observations": Observation.datastream_id.not_in(streams),
        "HistoricalLocations": HistoricalLocation.thing_id.not_in(things),
        "Locations": SensorLocation.id.not_in(locations),
        "FeaturesOfInterest": or_(
            FeatureOfInterest.location_id.is_(None),
            FeatureOfInterest.location_id.not_in(locations),
        ),
    }
    return conditions.get(name, true())
