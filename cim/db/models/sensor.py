"""OGC SensorThings API 1.1 entities on PostGIS: things watching cim features, observations.

The entity tables follow the standard's data model (OGC 18-088): a Thing (the device in a
manhole, on a pipe) has Locations, Datastreams; a Datastream joins a Thing, a Sensor (the
instrument: table ``sensor_device``) and an ObservedProperty and carries the unit of
measurement as UCUM JSON; Observations belong to a Datastream and a FeatureOfInterest.

A Thing may watch one cim feature (a pipe node, a pipe segment or a building element; at most
one) and copies that feature's ``utility`` class so the access rules of the networks (gas and
power hidden from anonymous callers) apply to its datastreams and observations too.

``sensor_observation`` is range-partitioned by month on ``phenomenon_time`` (the partitions are
made by :mod:`cim.services.sensors.observations`, a default partition keeps whatever has no
month partition yet); ``sensor_observation_hourly`` / ``_daily`` are roll-ups kept up to date
on every insert, and outlive the raw partitions that retention drops.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, JsonAttrs, cascade_to

Timestamp = DateTime(timezone=True)

OBSERVATION_TYPES = {
    "OM_Measurement": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
    "OM_CountObservation": (
        "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
    ),
    "OM_TruthObservation": (
        "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation"
    ),
    "OM_CategoryObservation": (
        "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
    ),
    "OM_Observation": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
}
"""The observation types of the standard (Table 13), short name -> URI."""


def _set_null_to(table: str) -> Any:
    return mapped_column(
        BigInteger, ForeignKey(f"{table}.id", ondelete="SET NULL"), index=True, nullable=True
    )


class Thing(Base):
    """A SensorThings Thing: a device or station, watching at most one cim feature."""

    __tablename__ = "sensor_thing"
    __table_args__ = (
        CheckConstraint(
            "num_nonnulls(pipe_node_id, pipe_segment_id, building_element_id) <= 1",
            name="one_feature",
        ),
    )

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    properties: Mapped[JsonAttrs]
    # The watched feature's utility class (CJJ 61 code, e.g. RQ gas), copied for access rules.
    utility: Mapped[str | None] = mapped_column(String(8), index=True)
    pipe_node_id: Mapped[int | None] = _set_null_to("pipe_node")
    pipe_segment_id: Mapped[int | None] = _set_null_to("pipe_segment")
    building_element_id: Mapped[int | None] = _set_null_to("building_element")


class SensorLocation(Base):
    """A SensorThings Location: GeoJSON in, stored in the storage CRS (3D, z = 0 if absent)."""

    __tablename__ = "sensor_location"

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    encoding_type: Mapped[str] = mapped_column(Text, server_default="application/geo+json")
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRYZ", spatial_index=True))
    properties: Mapped[JsonAttrs]


class ThingLocation(Base):
    """Which Locations a Thing is at now (the standard's Thing-Location many-to-many)."""

    __tablename__ = "sensor_thing_location"
    __table_args__ = (PrimaryKeyConstraint("thing_id", "location_id"),)

    thing_id: Mapped[int] = cascade_to("sensor_thing")
    location_id: Mapped[int] = cascade_to("sensor_location")


class HistoricalLocation(Base):
    """When a Thing moved to its Locations (written whenever a Thing's locations change)."""

    __tablename__ = "sensor_historical_location"

    id: Mapped[BigIntPK]
    thing_id: Mapped[int] = cascade_to("sensor_thing")
    time: Mapped[datetime] = mapped_column(Timestamp)


class HistoricalLocationLocation(Base):
    """The Locations of one HistoricalLocation."""

    __tablename__ = "sensor_historical_location_location"
    __table_args__ = (PrimaryKeyConstraint("historical_location_id", "location_id"),)

    historical_location_id: Mapped[int] = cascade_to("sensor_historical_location")
    location_id: Mapped[int] = cascade_to("sensor_location")


class Sensor(Base):
    """A SensorThings Sensor: the instrument or procedure (datasheet in ``metadata``)."""

    __tablename__ = "sensor_device"

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    encoding_type: Mapped[str] = mapped_column(Text)
    # ``metadata`` is reserved on declarative classes; the column keeps the standard's name.
    sensor_metadata: Mapped[str] = mapped_column("metadata", Text)
    properties: Mapped[JsonAttrs]


class ObservedProperty(Base):
    """What is observed (methane concentration, pressure...), with a definition URI."""

    __tablename__ = "sensor_observed_property"

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    # Not unique: clients deep-insert the same definition with each new Datastream.
    definition: Mapped[str] = mapped_column(Text, index=True)
    description: Mapped[str] = mapped_column(Text)
    properties: Mapped[JsonAttrs]


class Datastream(Base):
    """Observations of one property by one sensor on one thing, in one UCUM unit."""

    __tablename__ = "sensor_datastream"

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    observation_type: Mapped[str] = mapped_column(Text)
    # {"name": "percent of LEL", "symbol": "%LEL", "definition": "http://unitsofmeasure.org/..."}
    unit_of_measurement: Mapped[dict[str, Any]] = mapped_column(JSONB)
    thing_id: Mapped[int] = cascade_to("sensor_thing")
    sensor_id: Mapped[int] = cascade_to("sensor_device")
    observed_property_id: Mapped[int] = cascade_to("sensor_observed_property")
    # Kept by the observation service: the first and last phenomenon time observed.
    phenomenon_time_start: Mapped[datetime | None] = mapped_column(Timestamp)
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(Timestamp)
    properties: Mapped[JsonAttrs]


class FeatureOfInterest(Base):
    """What an observation is about; made from the Thing's Location when none is given."""

    __tablename__ = "sensor_feature_of_interest"

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    encoding_type: Mapped[str] = mapped_column(Text, server_default="application/geo+json")
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRYZ", spatial_index=True))
    # The Location this feature was generated from (None when a client created it).
    location_id: Mapped[int | None] = _set_null_to("sensor_location")
    properties: Mapped[JsonAttrs]


class Observation(Base):
    """One observation; partitioned by month on ``phenomenon_time`` (see the module doc).

    A numeric result (the lifeline case) is in ``result``; any other JSON result (text, a
    boolean, an object) in ``result_json``. The primary key includes the partition key, as
    PostgreSQL requires; ids come from one identity sequence, so ``id`` alone is unique.
    """

    __tablename__ = "sensor_observation"
    __table_args__ = (
        PrimaryKeyConstraint("id", "phenomenon_time"),
        Index("ix_sensor_observation_phenomenon_time", "phenomenon_time", postgresql_using="brin"),
        Index(
            "ix_sensor_observation_datastream_id_phenomenon_time",
            "datastream_id",
            "phenomenon_time",
        ),
        {"postgresql_partition_by": "RANGE (phenomenon_time)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    datastream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sensor_datastream.id", ondelete="CASCADE")
    )
    phenomenon_time: Mapped[datetime] = mapped_column(Timestamp)
    # Set when the phenomenon time is an interval (start/end); None for an instant.
    phenomenon_time_end: Mapped[datetime | None] = mapped_column(Timestamp)
    result_time: Mapped[datetime | None] = mapped_column(Timestamp)
    result: Mapped[float | None] = mapped_column(Double)
    result_json: Mapped[Any | None] = mapped_column(JSONB)
    result_quality: Mapped[Any | None] = mapped_column(JSONB)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    feature_of_interest_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sensor_feature_of_interest.id", ondelete="SET NULL")
    )


class _Rollup:
    """Columns of a roll-up bucket: combinable (count, min, max, sum), so a new batch merges
    into an existing bucket without reading the raw rows again; mean = sum / count."""

    datastream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sensor_datastream.id", ondelete="CASCADE")
    )
    bucket: Mapped[datetime] = mapped_column(Timestamp)
    count: Mapped[int] = mapped_column(BigInteger)
    minimum: Mapped[float] = mapped_column(Double)
    maximum: Mapped[float] = mapped_column(Double)
    total: Mapped[float] = mapped_column(Double)


class ObservationHourly(_Rollup, Base):
    """Hourly roll-up of the numeric results of each datastream (UTC hours)."""

    __tablename__ = "sensor_observation_hourly"
    __table_args__ = (PrimaryKeyConstraint("datastream_id", "bucket"),)


class ObservationDaily(_Rollup, Base):
    """Daily roll-up of the numeric results of each datastream (UTC days)."""

    __tablename__ = "sensor_observation_daily"
    __table_args__ = (PrimaryKeyConstraint("datastream_id", "bucket"),)


__all__ = [
    "OBSERVATION_TYPES",
    "Datastream",
    "FeatureOfInterest",
    "HistoricalLocation",
    "HistoricalLocationLocation",
    "Observation",
    "ObservationDaily",
    "ObservationHourly",
    "ObservedProperty",
    "Sensor",
    "SensorLocation",
    "Thing",
    "ThingLocation",
]
