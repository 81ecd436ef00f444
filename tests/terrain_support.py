"""Shared by the terrain tests: databases whose storage CRS suits each sample DEM.

The suite's default database stores EPSG:4547 (China); the sample DEMs lie in Kentucky, Utah,
Finland and Korea, so each gets a database in a CRS that covers it. Created once per run.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, text

from tests.conftest import SHARED_SAMPLES, migrated_database

TERRAIN = SHARED_SAMPLES / "terrain"


@cache
def srid_database_url(server_url: str, srid: int) -> str:
    """URL of a migrated database ``cim_terrain_<srid>`` storing geometries in ``srid``."""
    return migrated_database(server_url, f"cim_terrain_{srid}", srid=srid)


def delete_datasets(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))


def bilinear(
    values: npt.NDArray[np.float64], col: npt.NDArray[np.float64], row: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Textbook bilinear interpolation at fractional pixel-centre coordinates (col, row)."""
    c0 = np.floor(col).astype(int)
    r0 = np.floor(row).astype(int)
    dx = col - c0
    dy = row - r0
    return np.asarray(
        values[r0, c0] * (1 - dx) * (1 - dy)
        + values[r0, c0 + 1] * dx * (1 - dy)
        + values[r0 + 1, c0] * (1 - dx) * dy
        + values[r0 + 1, c0 + 1] * dx * dy,
        dtype=np.float64,
    )
