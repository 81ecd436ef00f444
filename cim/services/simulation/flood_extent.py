"""Flood extents: the volume a node floods, ponded in the DEM's depression around it.

A static "bathtub" fill, not a flood model. From the DEM cell under the flooded node (the
finest DEM with a value there, by the overlap rule of :mod:`cim.services.terrain`) water spreads
as a priority flood: the next cell wetted is always the lowest on the wet area's rim (8
neighbours), the level rising only when the rim is higher than the water, until the water held,
sum of (level - ground) x cell area over the wet cells, equals the volume. On a slope the water
therefore runs downhill and spreads thin; in a dip it fills the dip and spills over its lowest
rim. What this is not: no flow dynamics (no 2D shallow-water routing, no time: the extent is
where the whole volume would rest, not where water is at any moment), no buildings or kerbs
beyond what the DEM shows, no infiltration, no return of water into other inlets, and
neighbouring nodes' extents are computed apart (they may overlap). Water is not followed further
than :data:`MAX_REACH_M` from the node nor beyond the DEM: when it gets there
(``reaches_window_edge``) it would run further, so the extent is a lower bound and the depth an
upper bound.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.services.terrain import heights_in_storage

MAX_REACH_M = 250.0
"""How far from the node water is followed (m): the DEM is read this far around the nodes."""
MAX_GRID_CELLS = 16_000_000
"""The DEM is read once around all flooded nodes of a DEM when that takes at most this many
cells, else once per node."""
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

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

    def cell(self, x: float, y: float) -> tuple[int, int] | None:
        row, col = int((y - self.y0) // self.dy), int((x - self.x0) // self.dx)
        inside = 0 <= row < self.z.shape[0] and 0 <= col < self.z.shape[1]
        return (row, col) if inside and not np.isnan(self.z[row, col]) else None


def flood_extents(
    session: Session, srid: int, places: dict[int, tuple[float, float]], volumes: dict[int, float]
) -> dict[int, Extent]:
    """The extent of each node's volume (m³) ponded around its place (storage CRS); nodes no
    DEM covers, and zero volumes, get none."""
    ids = [i for i in places if volumes.get(i, 0.0) > 0]
    heights = heights_in_storage(session, [places[i][0] for i in ids], [places[i][1] for i in ids])
    by_dem: dict[int, list[int]] = {}
    for node, (ground, dem) in zip(ids, heights, strict=True):
        if ground is not None and dem is not None:
            by_dem.setdefault(dem, []).append(node)
    out: dict[int, Extent] = {}
    for dem, nodes in by_dem.items():
        xs, ys = [places[n][0] for n in nodes], [places[n][1] for n in nodes]
        box = (min(xs), min(ys), max(xs), max(ys))
        shared = _read(session, srid, dem, box) if _small(session, dem, box) else None
        for node in nodes:
            bounds.check_deadline("flood: spreading the flooded volumes over the DEM")
            x, y = places[node]
            grid = shared or _read(session, srid, dem, (x, y, x, y))
            found = _extent(grid, dem, x, y, volumes[node]) if grid is not None else None
            if found is not None:
                out[node] = found
    return out


def _small(session: Session, dem: int, box: tuple[float, float, float, float]) -> bool:
    resolution = session.execute(
        text("SELECT min(resolution) FROM terrain_raster WHERE dataset_id = :d"), {"d": dem}
    ).scalar_one()
    width = (box[2] - box[0] + 2 * MAX_REACH_M) / resolution
    height = (box[3] - box[1] + 2 * MAX_REACH_M) / resolution
    return bool(width * height <= MAX_GRID_CELLS)


def _read(
    session: Session, srid: int, dem: int, box: tuple[float, float, float, float]
) -> _Grid | None:
    reach = MAX_REACH_M
    found = session.execute(
        _WINDOW_SQL,
        {"x0": box[0] - reach, "y0": box[1] - reach, "x1": box[2] + reach, "y1": box[3] + reach,
         "srid": srid, "d": dem},
    ).first()  # fmt: skip
    if found is None or found.values is None:
        return None
    z = np.array(found.values, dtype=np.float64)  # None (nodata) -> nan
    if z.ndim != 2:
        return None
    return _Grid(z, found.upperleftx, found.upperlefty, found.scalex, found.scaley)


def _extent(grid: _Grid, dem: int, x: float, y: float, volume: float) -> Extent | None:
    seed = grid.cell(x, y)
    if seed is None:
        return None
    level, wet, edge = _priority_flood(grid, seed, volume)
    rows, cols = np.array([c[0] for c in wet]), np.array([c[1] for c in wet])
    depth = level - grid.z[rows, cols]
    return Extent(
        dem_dataset_id=dem,
        geometry=_polygon(grid, rows, cols),
        area_m2=float(len(wet) * grid.cell_area),
        water_level_m=float(level),
        max_depth_m=float(depth.max()),
        mean_depth_m=float(depth.mean()),
        reaches_window_edge=edge,
    )


def _priority_flood(
    grid: _Grid, seed: tuple[int, int], volume: float
) -> tuple[float, list[tuple[int, int]], bool]:
    """Wet the lowest rim cell next until ``volume`` is held: (level, wet cells, edge reached).

    A cell's key is its spill level, max(its ground, the key of the cell it was reached from);
    the water at level h covers exactly the cells whose key is at most h, so the level is found
    when the next key would hold more than the volume."""
    z, area = grid.z, grid.cell_area
    limit = int(MAX_REACH_M / min(abs(grid.dx), abs(grid.dy)))
    shape = z.shape
    seen = np.zeros(shape, dtype=bool)
    seen[seed] = True
    heap: list[tuple[float, int, int]] = [(float(z[seed]), *seed)]
    wet: list[tuple[int, int]] = []
    count, total, edge = 0, 0.0, False
    while heap:
        key, row, col = heap[0]
        if count and (key * count - total) * area >= volume:
            return (volume / area + total) / count, wet, edge
        heapq.heappop(heap)
        wet.append((row, col))
        count += 1
        total += z[row, col]
        for dr, dc in NEIGHBOURS:
            r, c = row + dr, col + dc
            far = abs(r - seed[0]) > limit or abs(c - seed[1]) > limit
            if far or not (0 <= r < shape[0] and 0 <= c < shape[1]) or np.isnan(z[r, c]):
                edge = True
                continue
            if not seen[r, c]:
                seen[r, c] = True
                heapq.heappush(heap, (max(float(z[r, c]), key), r, c))
    return (volume / area + total) / count, wet, True  # every reachable cell is wet


def _polygon(grid: _Grid, rows: np.ndarray[Any, Any], cols: np.ndarray[Any, Any]) -> Any:
    """The wet cells as one (multi)polygon in the storage CRS."""
    from rasterio import features
    from rasterio.transform import Affine

    top, left = int(rows.min()), int(cols.min())
    mask = np.zeros((int(rows.max()) - top + 1, int(cols.max()) - left + 1), dtype=np.uint8)
    mask[rows - top, cols - left] = 1
    transform = Affine(
        grid.dx, 0.0, grid.x0 + left * grid.dx, 0.0, grid.dy, grid.y0 + top * grid.dy
    )
    shapes = [
        shapely.geometry.shape(geometry)
        for geometry, value in features.shapes(mask, mask=mask.astype(bool), transform=transform)
        if value
    ]
    return shapely.union_all(shapes)
