"""Heights of the imported DEMs at any longitude/latitude, for meshing terrain tiles.

Each DEM (one ``terrain`` dataset) is read back from ``terrain_raster`` once and mosaicked
into one array in the storage CRS. Heights are bilinear between pixel centres; where one of
the four neighbours is nodata the containing pixel's value is used, and where that is nodata
too the DEM has no height there. The overlap rule is the one of ``cim.services.terrain``: the
finest DEM with a height wins (ties: newest dataset); where no DEM has a height it is 0.

Heights are passed through unchanged: the stored orthometric heights are written as if they
were ellipsoidal, exactly as the 3D Tiles layers do (``cim.crs.storage_to_ecef``), so terrain,
buildings and pipes line up with each other (see README, Terrain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, text

from cim.crs import transformer
from cim.db.migrate import recorded_srid
from cim.raster_wkb import decode_raster

FloatArray = npt.NDArray[np.float64]


@dataclass
class Dem:
    """One DEM as a single north-up grid in the storage CRS (NaN = no height)."""

    dataset_id: int
    resolution: float
    origin_x: float
    origin_y: float
    pixel_x: float
    pixel_y: float  # negative: rows go south
    heights: npt.NDArray[np.float64]
    lonlat_bounds: tuple[float, float, float, float] | None

    def sample(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """Heights at storage coordinates; NaN outside the DEM or on its nodata."""
        rows_total, cols_total = self.heights.shape
        col = (x - self.origin_x) / self.pixel_x
        row = (y - self.origin_y) / self.pixel_y
        out = np.full(col.shape, np.nan)
        inside = (col >= 0) & (col < cols_total) & (row >= 0) & (row < rows_total)
        if not inside.any():
            return out
        ci, ri = col[inside], row[inside]
        nearest = self.heights[ri.astype(np.int64), ci.astype(np.int64)]
        # Pixel-centre frame, clamped at the border (constant extrapolation by half a pixel).
        c0 = np.clip(np.floor(ci - 0.5), 0, max(cols_total - 2, 0)).astype(np.int64)
        r0 = np.clip(np.floor(ri - 0.5), 0, max(rows_total - 2, 0)).astype(np.int64)
        c1 = np.minimum(c0 + 1, cols_total - 1)
        r1 = np.minimum(r0 + 1, rows_total - 1)
        dx = np.clip(ci - 0.5 - c0, 0.0, 1.0)
        dy = np.clip(ri - 0.5 - r0, 0.0, 1.0)
        h = self.heights
        value = (
            h[r0, c0] * (1 - dx) * (1 - dy)
            + h[r0, c1] * dx * (1 - dy)
            + h[r1, c0] * (1 - dx) * dy
            + h[r1, c1] * dx * dy
        )
        out[inside] = np.where(np.isnan(value), nearest, value)
        return out


def load_dems(engine: Engine) -> tuple[int, list[Dem]]:
    """The storage SRID and every terrain dataset as a :class:`Dem`, finest first."""
    with engine.connect() as connection:
        srid = recorded_srid(connection) or 0
        rows = connection.execute(
            text(
                "SELECT t.dataset_id, t.resolution, ST_AsBinary(t.rast) AS wkb "
                "FROM terrain_raster t JOIN dataset d ON d.id = t.dataset_id "
                "WHERE d.status = 'ready' ORDER BY t.resolution, t.dataset_id DESC, t.id"
            )
        ).all()
    grouped: dict[int, list[tuple[float, bytes]]] = {}
    for row in rows:
        grouped.setdefault(int(row.dataset_id), []).append((float(row.resolution), row.wkb))
    dems = [_mosaic(dataset_id, parts, srid) for dataset_id, parts in grouped.items()]
    dems.sort(key=lambda d: (d.resolution, -d.dataset_id))
    return srid, dems


def _mosaic(dataset_id: int, parts: list[tuple[float, bytes]], srid: int) -> Dem:
    grids = [decode_raster(wkb) for _, wkb in parts]
    first = grids[0].geotransform
    pixel_x, pixel_y = first[1], first[5]
    left = min(g.geotransform[0] for g in grids)
    top = max(g.geotransform[3] for g in grids)
    placed = []
    width = height = 0
    for grid in grids:
        col = round((grid.geotransform[0] - left) / pixel_x)
        row = round((grid.geotransform[3] - top) / pixel_y)
        rows, cols = grid.values.shape
        placed.append((row, col, grid))
        width, height = max(width, col + cols), max(height, row + rows)
    heights = np.full((height, width), np.nan)
    for row, col, grid in placed:
        values = grid.values.astype(np.float64)
        if grid.nodata is not None:
            values = np.where(values == grid.nodata, np.nan, values)
        block = heights[row : row + values.shape[0], col : col + values.shape[1]]
        heights[row : row + values.shape[0], col : col + values.shape[1]] = np.where(
            np.isnan(values), block, values
        )
    dem = Dem(
        dataset_id=dataset_id,
        resolution=parts[0][0],
        origin_x=left,
        origin_y=top,
        pixel_x=pixel_x,
        pixel_y=pixel_y,
        heights=heights,
        lonlat_bounds=None,
    )
    dem.lonlat_bounds = _lonlat_bounds(dem, srid)
    return dem


def _lonlat_bounds(dem: Dem, srid: int) -> tuple[float, float, float, float] | None:
    rows, cols = dem.heights.shape
    steps = np.linspace(0.0, 1.0, 33)
    right = dem.origin_x + cols * dem.pixel_x
    bottom = dem.origin_y + rows * dem.pixel_y
    across = dem.origin_x + (right - dem.origin_x) * steps
    down = dem.origin_y + (bottom - dem.origin_y) * steps
    xs = np.concatenate([across, across, np.full(33, dem.origin_x), np.full(33, right)])
    ys = np.concatenate([np.full(33, dem.origin_y), np.full(33, bottom), down, down])
    try:
        lon, lat = transformer(srid, 4326).transform(xs, ys, errcheck=True)
    except Exception:  # local coordinates outside the CRS's domain: not on the globe
        return None
    lon, lat = np.asarray(lon), np.asarray(lat)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        return None
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
        return None
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


class HeightSampler:
    """Heights at lon/lat by the overlap rule; 0 where no DEM has a value."""

    def __init__(self, srid: int, dems: list[Dem]) -> None:
        self.srid = srid
        self.dems = [d for d in dems if d.lonlat_bounds is not None]

    def heights(self, lon: FloatArray, lat: FloatArray) -> FloatArray:
        """Heights (m) at the given longitudes/latitudes (degrees), any array shape."""
        out = np.full(lon.shape, np.nan)
        if not self.dems:
            return np.zeros(lon.shape)
        west, south = float(lon.min()), float(lat.min())
        east, north = float(lon.max()), float(lat.max())
        x: FloatArray | None = None
        y: FloatArray | None = None
        for dem in self.dems:
            assert dem.lonlat_bounds is not None
            b_west, b_south, b_east, b_north = dem.lonlat_bounds
            if b_west > east or b_east < west or b_south > north or b_north < south:
                continue
            if x is None or y is None:
                tx, ty = transformer(4326, self.srid).transform(lon, lat)
                x, y = np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
            missing = np.isnan(out)
            if not missing.any():
                break
            out[missing] = dem.sample(x[missing], y[missing])
        return np.where(np.isnan(out), 0.0, out)
