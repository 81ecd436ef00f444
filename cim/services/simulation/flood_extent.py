"""Flood extents: the volume a node floods, ponded in the DEM's depression around it.

A static "bathtub" fill, not a flood model. Around the flooded node a window of the DEM (the
finest DEM with a value at the node, by the overlap rule of :mod:`cim.services.terrain`) is
read; a water level rises from the ground at the node, the flooded area being the cells
connected to the node's cell (8-neighbours) whose ground is below the level; the level is
bisected until the water held, sum of (level - ground) x cell area, equals the volume. What this
is not: no flow over the surface (no 2D shallow-water routing, no time: the extent is where
the whole volume would rest, not where water is at any moment), no buildings or kerbs beyond
what the DEM shows, no infiltration, no return of water into other inlets, and neighbouring
nodes' extents are computed apart (they may overlap). When the water reaches the edge of the
window (``reaches_window_edge``) it would run further: the extent is then a lower bound and
the depth an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.services.terrain import heights_in_storage

WINDOW_HALF_M = 250.0
"""Half the side of the DEM window read around a node (m)."""
MAX_WINDOW_CELLS = 1_000_000
LEVEL_TOLERANCE_M = 1e-4

_WINDOW_SQL = text(
    """
    WITH w AS (SELECT ST_MakeEnvelope(:x0, :y0, :x1, :y1, :srid) AS env),
    u AS (
        SELECT ST_Union(ST_Clip(t.rast, 1, w.env, true)) AS rast
        FROM terrain_raster t, w
        WHERE t.dataset_id = :d AND ST_Intersects(ST_ConvexHull(t.rast), w.env)
    )
    SELECT (ST_MetaData(rast)).*, ST_DumpValues(rast, 1, true) AS values FROM u
    WHERE rast IS NOT NULL
    """
)


@dataclass
class Extent:
    """Where one node's flood volume rests: the polygon (storage CRS) and its figures."""

    dem_dataset_id: int
    geometry: Any  # shapely (Multi)Polygon
    area_m2: float
    water_level_m: float
    max_depth_m: float
    mean_depth_m: float
    reaches_window_edge: bool


@dataclass
class _Grid:
    z: np.ndarray[Any, Any]  # NaN where no data
    x0: float
    y0: float
    dx: float
    dy: float  # negative: rows go south

    @property
    def cell_area(self) -> float:
        return abs(self.dx * self.dy)


def flood_extent(
    session: Session, srid: int, x: float, y: float, volume_m3: float
) -> Extent | None:
    """The extent of ``volume_m3`` ponded around (x, y) (storage CRS); None when no DEM has a
    value there or the volume is zero."""
    if volume_m3 <= 0:
        return None
    [(ground, dem)] = heights_in_storage(session, [x], [y])
    if ground is None or dem is None:
        return None
    grid = _read_window(session, srid, dem, x, y)
    if grid is None:
        return None
    row = math.floor((y - grid.y0) / grid.dy)
    col = math.floor((x - grid.x0) / grid.dx)
    if not (0 <= row < grid.z.shape[0] and 0 <= col < grid.z.shape[1]) or np.isnan(
        grid.z[row, col]
    ):
        return None
    level, mask = _fill(grid, (row, col), volume_m3)
    depth = np.where(mask, level - grid.z, 0.0)
    edge = bool(mask[0, :].any() or mask[-1, :].any() or mask[:, 0].any() or mask[:, -1].any())
    return Extent(
        dem_dataset_id=dem,
        geometry=_polygon(grid, mask),
        area_m2=float(mask.sum() * grid.cell_area),
        water_level_m=float(level),
        max_depth_m=float(depth.max()),
        mean_depth_m=float(depth[mask].mean()),
        reaches_window_edge=edge,
    )


def _read_window(session: Session, srid: int, dem: int, x: float, y: float) -> _Grid | None:
    half = WINDOW_HALF_M
    found = session.execute(
        _WINDOW_SQL,
        {"x0": x - half, "y0": y - half, "x1": x + half, "y1": y + half, "srid": srid, "d": dem},
    ).first()
    if found is None or found.values is None:
        return None
    z = np.array(found.values, dtype=np.float64)  # None (nodata) -> nan
    if z.ndim != 2 or z.size > MAX_WINDOW_CELLS:
        return None
    return _Grid(z, found.upperleftx, found.upperlefty, found.scalex, found.scaley)


def _held(grid: _Grid, seed: tuple[int, int], level: float) -> tuple[float, np.ndarray[Any, Any]]:
    """Volume held below ``level`` by the cells connected to ``seed``, and those cells."""
    from scipy import ndimage

    below = np.nan_to_num(grid.z, nan=np.inf) <= level
    labels, _ = ndimage.label(below, structure=np.ones((3, 3), dtype=bool))
    mask = labels == labels[seed]
    return float(((level - grid.z)[mask]).sum() * grid.cell_area), mask


def _fill(grid: _Grid, seed: tuple[int, int], volume: float) -> tuple[float, np.ndarray[Any, Any]]:
    """The water level (bisected) at which the connected depression holds ``volume``."""
    low = float(grid.z[seed])
    high = low + volume / grid.cell_area  # all of it in the node's cell holds at least that
    mask = np.zeros(grid.z.shape, dtype=bool)
    while high - low > LEVEL_TOLERANCE_M:
        middle = (low + high) / 2
        held, _ = _held(grid, seed, middle)
        if held < volume:
            low = middle
        else:
            high = middle
    _, mask = _held(grid, seed, high)
    return high, mask


def _polygon(grid: _Grid, mask: np.ndarray[Any, Any]) -> Any:
    """The flooded cells as one (multi)polygon in the storage CRS."""
    from rasterio import features
    from rasterio.transform import Affine

    transform = Affine(grid.dx, 0.0, grid.x0, 0.0, grid.dy, grid.y0)
    shapes = [
        shapely.geometry.shape(geometry)
        for geometry, value in features.shapes(
            mask.astype(np.uint8), mask=mask, transform=transform
        )
        if value
    ]
    return shapely.union_all(shapes)
