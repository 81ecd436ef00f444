"""The road network used for along-road distances in shelter planning: ``road_segment``.

Rows are the edges of the network as imported: a source line is cut at every junction
(``importers.roads`` nodes the layer), so two segments meet only at their end points and a graph
can be built from the ends alone (``cim.services.shelters.network``).
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import Float, Text
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DatasetFK, JsonAttrs


class RoadSegment(Base):
    """One edge of a road network: a 2D line between two junctions (or a dead end)."""

    __tablename__ = "road_segment"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    name: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRING", spatial_index=True))
    length: Mapped[float] = mapped_column(Float)
    attrs: Mapped[JsonAttrs]
