"""The ``dataset`` table (one row per import) and ``cim_setting`` (deployment facts: SRID)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DefaultNow, JsonAttrs

DATASET_KINDS = (
    "terrain",
    "ifc",
    "pipes",
    "shelters",
    "population",
    "hazards",
    "roads",
    "buildings",
    "pointcloud",
)
DATASET_STATUSES = ("loading", "ready", "failed")


class Dataset(Base):
    """One imported source file; every other row references it with ON DELETE CASCADE."""

    __tablename__ = "dataset"
    __table_args__ = (
        CheckConstraint(f"kind IN {DATASET_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {DATASET_STATUSES!r}", name="status"),
        Index("ix_dataset_kind_source_sha256", "kind", "source_sha256"),
    )

    id: Mapped[BigIntPK]
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    source_crs: Mapped[str | None] = mapped_column(Text)
    transform: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="loading", server_default="loading")
    options: Mapped[JsonAttrs]
    counts: Mapped[JsonAttrs]
    qc: Mapped[JsonAttrs]
    imported_at: Mapped[DefaultNow]
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CimSetting(Base):
    """Facts fixed for the life of a database, e.g. ``storage_srid``."""

    __tablename__ = "cim_setting"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
