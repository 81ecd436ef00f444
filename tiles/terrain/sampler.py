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
    heights: npt.NDArray[np.float32]
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
    heights = np.full((height, width), np.nan, dtype=np.float32)  # 4 bytes a pixel
    for row, col, grid in placed:
        values = grid.values.astype(np.float32)
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
        near = np.zeros(lon.shape, dtype=bool)
        for dem in self.dems:
            assert dem.lonlat_bounds is not None
            b_west, b_south, b_east, b_north = dem.lonlat_bounds
            pad = 0.01 * max(b_east - b_west, b_north - b_south, 1e-6)
            near |= (
                (lon >= b_west - pad)
                & (lon <= b_east + pad)
                & (lat >= b_south - pad)
                & (lat <= b_north + pad)
            )
        if not near.any():
            return np.zeros(lon.shape)
        if near.mean() < 0.5:
            # A large tile with DEMs in a corner: project only the nodes that may meet one.
            tx, ty = transformer(4326, self.srid).transform(lon[near], lat[near])
            x = np.full(lon.shape, np.nan)
            y = np.full(lon.shape, np.nan)
            x[near], y[near] = tx, ty
        else:
            x, y = self.to_storage(lon, lat)
        for dem in self.dems:
            missing = np.isnan(out) & np.isfinite(x)
            if not missing.any():
                break
            out[missing] = dem.sample(x[missing], y[missing])
        return np.where(np.isnan(out), 0.0, out)

    def to_storage(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Storage coordinates of a lon/lat grid.

        A tile grid is projected exactly on every 7th node only and interpolated bilinearly
        in between (PROJ is most of a tile's cost otherwise); the interpolation is checked
        against the exact projection at the lattice's cell centres and used only when it is
        within 1 cm, else every node is projected.
        """
        project = transformer(4326, self.srid).transform
        rows, cols = lon.shape if lon.ndim == 2 else (0, 0)
        step = LATTICE_STEP
        if rows < 2 * step or (rows - 1) % step or (cols - 1) % step:
            tx, ty = project(lon, lat)
            return np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
        lattice_x, lattice_y = (
            np.asarray(a, dtype=np.float64)
            for a in project(lon[::step, ::step], lat[::step, ::step])
        )
        x = _upsample(lattice_x, step)
        y = _upsample(lattice_y, step)
        half = step // 2
        centre_lon, centre_lat = lon[half::step, half::step], lat[half::step, half::step]
        exact_x, exact_y = (
            np.asarray(a, dtype=np.float64) for a in project(centre_lon, centre_lat)
        )
        drift = np.hypot(exact_x - x[half::step, half::step], exact_y - y[half::step, half::step])
        if not np.all(np.isfinite(drift)) or drift.max() > 0.01:
            tx, ty = project(lon, lat)
            return np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
        return x, y


LATTICE_STEP = 7


def _upsample(lattice: FloatArray, step: int) -> FloatArray:
    """Bilinear interpolation of a coarse lattice back to every node (step nodes per cell)."""
    t = np.arange(step + 1, dtype=np.float64) / step
    rows, cols = lattice.shape
    out_rows = (rows - 1) * step + 1
    out_cols = (cols - 1) * step + 1
    # Interpolate along columns, then along rows.
    across = np.empty((rows, out_cols))
    for k in range(step):
        across[:, k:-1:step] = lattice[:, :-1] * (1 - t[k]) + lattice[:, 1:] * t[k]
    across[:, -1] = lattice[:, -1]
    out = np.empty((out_rows, out_cols))
    for k in range(step):
        out[k:-1:step, :] = across[:-1, :] * (1 - t[k]) + across[1:, :] * t[k]
    out[-1, :] = across[-1, :]
    return out
