"""Disaster-shelter zoning (GB 51143): shelters, population, hazards and stored plans."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base

SHELTER_LEVELS = ("emergency", "short", "medium", "long", "central")


class Shelter(Base):
    """A shelter site; capacity = effective area / per-capita area of its level unless given."""

    __tablename__ = "shelter"
    __table_args__ = (CheckConstraint(f"level IN {SHELTER_LEVELS!r}", name="level"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16))
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", spatial_index=True))
    entrances: Mapped[Any] = mapped_column(
        Geometry("MULTIPOINT", spatial_index=False), nullable=True
    )
    effective_area: Mapped[float | None] = mapped_column(Float)
    capacity: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class PopulationUnit(Base):
    """A census block or point with its resident population."""

    __tablename__ = "population_unit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", spatial_index=True))
    population: Mapped[float] = mapped_column(Float)
    attrs: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class HazardZone(Base):
    """An area a shelter must not be in (flood, fault, landslide, fire...)."""

    __tablename__ = "hazard_zone"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(Text, index=True)
    severity: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", spatial_index=True))
    attrs: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class ShelterPlan(Base):
    """One run of the capacitated assignment with its parameters and statistics."""

    __tablename__ = "shelter_plan"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ShelterAssignment(Base):
    """Persons of a unit sent to a shelter; ``shelter_id`` NULL = uncovered, with ``reason``."""

    __tablename__ = "shelter_assignment"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("shelter_plan.id", ondelete="CASCADE"), index=True
    )
    shelter_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("shelter.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("population_unit.id", ondelete="CASCADE"), index=True
    )
    persons: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)


class ShelterZone(Base):
    """A shelter's service zone in a plan: union of its units, with load ratio."""

    __tablename__ = "shelter_zone"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("shelter_plan.id", ondelete="CASCADE"), index=True
    )
    shelter_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("shelter.id", ondelete="CASCADE"), index=True
    )
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", spatial_index=True))
    population: Mapped[float] = mapped_column(Float)
    capacity: Mapped[float | None] = mapped_column(Float)
    load_ratio: Mapped[float | None] = mapped_column(Float)
