"""``dataset_version`` (the versions of each dataset) and ``feature_history`` (rows as they were).

A re-import of a dataset's source is a new version of that dataset (see
:mod:`cim.services.versions`). Current rows stay in their own tables with ``valid_from``; a row
that a version changed or removed is kept here, whole, with the interval it was valid in, so the
dataset can be read as it was at any time and two versions can be compared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DatasetFK, DefaultNow, JsonAttrs


class DatasetVersion(Base):
    """One version of a dataset: 1 at the first import, +1 at each re-import that changed it."""

    __tablename__ = "dataset_version"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[DefaultNow]
    source_name: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[JsonAttrs]
    changes: Mapped[JsonAttrs]
    """Features added / removed / changed by this version, per table."""


class FeatureHistory(Base):
    """A feature row as it was in ``[valid_from, valid_to)``: the whole row, and its geometry."""

    __tablename__ = "feature_history"
    __table_args__ = (
        Index("ix_feature_history_table_valid", "table_name", "valid_to", "valid_from"),
        Index("ix_feature_history_feature", "table_name", "feature_id"),
        Index("ix_feature_history_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    table_name: Mapped[str] = mapped_column(Text)
    feature_id: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRYZ", spatial_index=False), nullable=True)
