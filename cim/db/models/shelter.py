"""Disaster-shelter zoning (GB 51143): shelters, population, hazards and stored plans."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DatasetFK, DefaultNow, JsonAttrs, cascade_to

SHELTER_LEVELS = ("emergency", "short", "medium", "long", "central")


class Shelter(Base):
    """A shelter site; capacity = effective area / per-capita area of its level unless given."""

    __tablename__ = "shelter"
    __table_args__ = (CheckConstraint(f"level IN {SHELTER_LEVELS!r}", name="level"),)

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    name: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16))
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", spatial_index=True))
    entrances: Mapped[Any] = mapped_column(
        Geometry("MULTIPOINT", spatial_index=False), nullable=True
    )
    effective_area: Mapped[float | None] = mapped_column(Float)
    capacity: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[JsonAttrs]
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""


class PopulationUnit(Base):
    """A census block or point with its resident population."""

    __tablename__ = "population_unit"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    code: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", spatial_index=True))
    population: Mapped[float] = mapped_column(Float)
    attrs: Mapped[JsonAttrs]
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""


class HazardZone(Base):
    """An area a shelter must not be in (flood, fault, landslide, fire...)."""

    __tablename__ = "hazard_zone"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    kind: Mapped[str] = mapped_column(Text, index=True)
    severity: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", spatial_index=True))
    attrs: Mapped[JsonAttrs]


class ShelterPlan(Base):
    """One run of the capacitated assignment with its parameters and statistics."""

    __tablename__ = "shelter_plan"

    id: Mapped[BigIntPK]
    name: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[JsonAttrs]
    stats: Mapped[JsonAttrs]
    created_at: Mapped[DefaultNow]


class ShelterAssignment(Base):
    """Persons of a unit sent to a shelter; ``shelter_id`` NULL = uncovered, with ``reason``."""

    __tablename__ = "shelter_assignment"

    id: Mapped[BigIntPK]
    plan_id: Mapped[int] = cascade_to("shelter_plan")
    shelter_id: Mapped[int | None] = cascade_to("shelter")
    unit_id: Mapped[int] = cascade_to("population_unit")
    persons: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)


class ShelterZone(Base):
    """A shelter's service zone in a plan: union of its units, with load ratio."""

    __tablename__ = "shelter_zone"

    id: Mapped[BigIntPK]
    plan_id: Mapped[int] = cascade_to("shelter_plan")
    shelter_id: Mapped[int] = cascade_to("shelter")
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", spatial_index=True))
    population: Mapped[float] = mapped_column(Float)
    capacity: Mapped[float | None] = mapped_column(Float)
    load_ratio: Mapped[float | None] = mapped_column(Float)
