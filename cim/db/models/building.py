"""Buildings from IFC: ``building``, ``building_storey`` and ``building_element``."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base, Box3D


class Building(Base):
    """An IfcBuilding: 2D footprint and base/top heights in the storage CRS."""

    __tablename__ = "building"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    guid: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    footprint: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", spatial_index=True), nullable=True
    )
    base_z: Mapped[float | None] = mapped_column(Float)
    top_z: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class BuildingStorey(Base):
    """An IfcBuildingStorey with its elevation (m, storage height datum)."""

    __tablename__ = "building_storey"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    building_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("building.id", ondelete="CASCADE"), index=True
    )
    guid: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    elevation: Mapped[float | None] = mapped_column(Float)


class BuildingElement(Base):
    """Every IfcProduct with a body: class, properties, colour and triangulated mesh."""

    __tablename__ = "building_element"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    building_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("building.id", ondelete="CASCADE"), index=True
    )
    storey_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("building_storey.id", ondelete="SET NULL"), index=True
    )
    guid: Mapped[str] = mapped_column(Text, index=True)
    ifc_class: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    is_space: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    psets: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    material: Mapped[str | None] = mapped_column(Text)
    color: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    triangle_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    mesh: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGONZ", spatial_index=True))
    footprint: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", spatial_index=True), nullable=True
    )
    bbox3d: Mapped[str | None] = mapped_column(Box3D())
