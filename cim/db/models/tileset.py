"""``tileset``: which dataset versions each built layer holds, so rebuilds are incremental."""

from __future__ import annotations

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DefaultNow, JsonAttrs


class Tileset(Base):
    """The last successful build of one layer (buildings, pipes, terrain)."""

    __tablename__ = "tileset"

    id: Mapped[BigIntPK]
    layer: Mapped[str] = mapped_column(Text, unique=True)
    spec: Mapped[str] = mapped_column(Text, default="1.1", server_default="1.1")
    dataset_versions: Mapped[JsonAttrs]
    stats: Mapped[JsonAttrs]
    built_at: Mapped[DefaultNow]
