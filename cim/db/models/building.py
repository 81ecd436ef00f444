"""Buildings: ``building`` (IFC and city models), ``building_storey``, ``building_element``
and ``building_surface`` (the triangulated faces of city-model buildings, per LoD and semantic
class)."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base, Box3D
from cim.db.types import BigIntPK, DatasetFK, DefaultNow, JsonAttrs, cascade_to


class Building(Base):
    """An IfcBuilding or a city-model building: 2D footprint and base/top heights (storage CRS).

    City-model rows (CityJSON) also fill ``source_id`` (the object id), ``lods`` and the facts
    the source states (``height``, ``storeys``, ``function``, ``year``); IFC rows leave them NULL.
    """

    __tablename__ = "building"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    guid: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    footprint: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", spatial_index=True), nullable=True
    )
    base_z: Mapped[float | None] = mapped_column(Float)
    top_z: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[JsonAttrs]
    source_id: Mapped[str | None] = mapped_column(Text)
    lods: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    height: Mapped[float | None] = mapped_column(Float)
    storeys: Mapped[int | None] = mapped_column(Integer)
    function: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    # A city-model block replaced by the IFC building with this id (cim.services.buildings).
    superseded_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("building.id", ondelete="SET NULL"), index=True
    )
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""


class BuildingSurface(Base):
    """Triangulated faces of one city-model building, one row per (LoD, semantic class).

    ``semantic`` is the CityJSON/CityGML surface type (RoofSurface, WallSurface, GroundSurface…)
    or NULL for faces without semantics; ``geom`` holds the triangles as a MULTIPOLYGONZ.
    """

    __tablename__ = "building_surface"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    building_id: Mapped[int] = cascade_to("building")
    lod: Mapped[str] = mapped_column(Text)
    semantic: Mapped[str | None] = mapped_column(Text)
    triangle_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Not spatially indexed (migration 0016): surfaces are read by id and located through
    # their building's footprint; the index cost three R-tree insertions a LOD1 block.
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGONZ", spatial_index=False))
    # The 3D box of ``geom`` (storage CRS), written by the importer so that tiling a city does
    # not parse every surface to find its box (migration 0017). NULL: computed from ``geom``.
    min_x: Mapped[float | None] = mapped_column(Float)
    min_y: Mapped[float | None] = mapped_column(Float)
    min_z: Mapped[float | None] = mapped_column(Float)
    max_x: Mapped[float | None] = mapped_column(Float)
    max_y: Mapped[float | None] = mapped_column(Float)
    max_z: Mapped[float | None] = mapped_column(Float)
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""


class BuildingStorey(Base):
    """An IfcBuildingStorey with its elevation (m, storage height datum)."""

    __tablename__ = "building_storey"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    building_id: Mapped[int | None] = cascade_to("building")
    guid: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    elevation: Mapped[float | None] = mapped_column(Float)
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""


class BuildingElement(Base):
    """Every IfcProduct with a body: class, properties, colour and triangulated mesh."""

    __tablename__ = "building_element"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    building_id: Mapped[int | None] = cascade_to("building")
    storey_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("building_storey.id", ondelete="SET NULL"), index=True
    )
    guid: Mapped[str] = mapped_column(Text, index=True)
    ifc_class: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    is_space: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    psets: Mapped[JsonAttrs]
    material: Mapped[str | None] = mapped_column(Text)
    color: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    triangle_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    mesh: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGONZ", spatial_index=True))
    footprint: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", spatial_index=True), nullable=True
    )
    bbox3d: Mapped[str | None] = mapped_column(Box3D())
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""
