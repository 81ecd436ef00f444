"""Planned shutdowns of a water network (计划停水): ``pipe_shutdown_plan`` (issue 19).

A plan closes valves (and pipes) of one dataset from ``starts_at`` to ``ends_at``; the ring it
cuts off (segment and node ids, and a MultiLineString of those segments) is computed when the
plan is stored (:mod:`cim.services.simulation.shutdown_plans`) so conflicts between plans are
set and interval tests, not new simulations. A plan is never deleted, only ``cancelled``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, DateTime, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, MappedColumn, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DatasetFK, DefaultNow, JsonAttrs

SHUTDOWN_PLAN_STATUSES = ("planned", "cancelled")


def _ids() -> MappedColumn[list[int]]:
    return mapped_column(ARRAY(BigInteger), server_default=text("'{}'::bigint[]"))


class PipeShutdownPlan(Base):
    """One planned shutdown: when, what it closes, the ring it cuts off, its status."""

    __tablename__ = "pipe_shutdown_plan"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period"),
        CheckConstraint("status IN ('planned', 'cancelled')", name="status"),
    )

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    title: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valve_ids: Mapped[list[int]] = _ids()
    """Valve nodes (``pipe_node`` ids) the plan closes."""
    segment_ids: Mapped[list[int]] = _ids()
    """Pipes (``pipe_segment`` ids) the plan closes."""
    ring_segment_ids: Mapped[list[int]] = _ids()
    """Segments cut off from every tank and reservoir, and the closed pipes."""
    ring_node_ids: Mapped[list[int]] = _ids()
    """Nodes of the ring's segments (the closed valves at its edge included)."""
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTILINESTRINGZ", spatial_index=True), nullable=True
    )
    """The ring's segments as one MultiLineString (null when the closures cut nothing off)."""
    impact: Mapped[JsonAttrs]
    """The shutdown simulation's summary when the plan was stored (cut-off nodes, demand)."""
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[DefaultNow]
    status: Mapped[str] = mapped_column(String(16), server_default="planned")
