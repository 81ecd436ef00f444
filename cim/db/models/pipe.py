"""The underground network in CJJ 61 vocabulary: ``pipe_node`` and ``pipe_segment``."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DefaultNow, JsonAttrs, cascade_to

VALVE_STATES = ("open", "closed", "broken", "inaccessible")
SECTION_SHAPES = ("circular", "rectangular", "other")


def _dataset_fk() -> Any:
    """The dataset reference, indexed together with ``valid_from`` (``__table_args__``) rather
    than alone: the incremental tile refresh reads the rows a new version wrote
    (``tiles.changes``), and a dataset's rows are found through the same index."""
    return mapped_column(BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"))


class PipeNode(Base):
    """A feature point or appurtenance (valve, manhole, hydrant, tee...), PointZ at ground."""

    __tablename__ = "pipe_node"
    __table_args__ = (
        CheckConstraint(
            f"valve_state IS NULL OR valve_state IN {VALVE_STATES!r}", name="valve_state"
        ),
        Index("ix_pipe_node_dataset_id_valid_from", "dataset_id", "valid_from"),
        Index("ix_pipe_node_code_dataset_id", "code", "dataset_id"),
    )

    id: Mapped[BigIntPK]
    dataset_id: Mapped[int] = _dataset_fk()
    code: Mapped[str] = mapped_column(Text)  # indexed with dataset_id
    utility: Mapped[str] = mapped_column(String(8), index=True)
    subclass: Mapped[str | None] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(Text, default="junction", server_default="junction")
    feature: Mapped[str | None] = mapped_column(Text)
    appurtenance: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("POINTZ", spatial_index=True))
    ground_z: Mapped[float | None] = mapped_column(Float)
    bottom_z: Mapped[float | None] = mapped_column(Float)
    valve_state: Mapped[str | None] = mapped_column(String(16))
    attrs: Mapped[JsonAttrs]
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""


class PipeSegment(Base):
    """A pipe, conduit, cable duct or tunnel between two nodes; centreline z = invert + h/2."""

    __tablename__ = "pipe_segment"
    __table_args__ = (
        CheckConstraint(f"section_shape IN {SECTION_SHAPES!r}", name="section_shape"),
        Index("ix_pipe_segment_dataset_id_valid_from", "dataset_id", "valid_from"),
        Index("ix_pipe_segment_code_dataset_id", "code", "dataset_id"),
    )

    id: Mapped[BigIntPK]
    dataset_id: Mapped[int] = _dataset_fk()
    code: Mapped[str] = mapped_column(Text)  # indexed with dataset_id
    utility: Mapped[str] = mapped_column(String(8), index=True)
    subclass: Mapped[str | None] = mapped_column(String(8))
    link_type: Mapped[str] = mapped_column(Text, default="pipe", server_default="pipe")
    start_node_id: Mapped[int] = cascade_to("pipe_node")
    end_node_id: Mapped[int] = cascade_to("pipe_node")
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRINGZ", spatial_index=True))
    start_invert_z: Mapped[float | None] = mapped_column(Float)
    end_invert_z: Mapped[float | None] = mapped_column(Float)
    start_top_z: Mapped[float | None] = mapped_column(Float)
    end_top_z: Mapped[float | None] = mapped_column(Float)
    section_shape: Mapped[str] = mapped_column(
        String(16), default="circular", server_default="circular"
    )
    diameter_mm: Mapped[float | None] = mapped_column(Float)
    # The nominal size of ``diameter_mm`` (cim.nominal_sizes): DN300 for a 304.8 mm pipe.
    nominal_dn: Mapped[int | None] = mapped_column(Integer)
    width_mm: Mapped[float | None] = mapped_column(Float)
    height_mm: Mapped[float | None] = mapped_column(Float)
    material: Mapped[str | None] = mapped_column(Text)
    pressure: Mapped[str | None] = mapped_column(Text)
    voltage: Mapped[str | None] = mapped_column(Text)
    cable_count: Mapped[int | None] = mapped_column(Integer)
    hole_total: Mapped[int | None] = mapped_column(Integer)
    hole_used: Mapped[int | None] = mapped_column(Integer)
    burial: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    length_m: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[JsonAttrs]
    valid_from: Mapped[DefaultNow]
    """When this row's content became current (see ``cim.services.versions``)."""
