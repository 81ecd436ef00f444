"""``tileset``: which dataset versions each built layer holds, so rebuilds are incremental."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base


class Tileset(Base):
    """The last successful build of one layer (buildings, pipes, terrain)."""

    __tablename__ = "tileset"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer: Mapped[str] = mapped_column(Text, unique=True)
    spec: Mapped[str] = mapped_column(Text, default="1.1", server_default="1.1")
    dataset_versions: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
