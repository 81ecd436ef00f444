"""``terrain_raster``: DEM tiles (256x256, postgis_raster in-db) for ground heights anywhere."""

from __future__ import annotations

from geoalchemy2 import Raster
from sqlalchemy import BigInteger, Float, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base


class TerrainRaster(Base):
    """One raster tile of one DEM; ``resolution`` (m) decides which DEM wins where they overlap."""

    __tablename__ = "terrain_raster"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dataset.id", ondelete="CASCADE"), index=True
    )
    resolution: Mapped[float] = mapped_column(Float)
    rast: Mapped[object] = mapped_column(Raster(spatial_index=False))
