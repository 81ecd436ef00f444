"""``terrain_raster``: DEM tiles (256x256, postgis_raster in-db) for ground heights anywhere."""

from __future__ import annotations

from geoalchemy2 import Raster
from sqlalchemy import Float
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DatasetFK


class TerrainRaster(Base):
    """One raster tile of one DEM; ``resolution`` (m) decides which DEM wins where they overlap."""

    __tablename__ = "terrain_raster"

    id: Mapped[BigIntPK]
    dataset_id: Mapped[DatasetFK]
    resolution: Mapped[float] = mapped_column(Float)
    rast: Mapped[object] = mapped_column(Raster(spatial_index=False))
