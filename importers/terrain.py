"""DEM import: any GDAL-readable raster -> 256x256 in-db tiles of ``terrain_raster``.

The DEM is read with rasterio window by window (memory stays bounded). When its CRS differs
from the storage CRS it is warped through a ``WarpedVRT`` with bilinear resampling and an exact
per-pixel transformation (GDAL's default 1/8-pixel approximation moves heights by centimetres
on slopes). Heights are stored as 32-bit floats (64-bit when the source is) with the DEM's own
nodata value where it fits, else the lowest finite float. Tiles that are entirely nodata are
not stored. Heights are taken as metres whatever the horizontal unit (``ky4_elevation.tif``
has a US-foot CRS and metre heights).

Where the DEM lies relative to the storage CRS's area of use decides what happens:

* it must be reprojected and cannot be located on the Earth, or lies far (> 2 degrees) outside
  the storage CRS's area of use: :class:`UnsupportedCRS` - warping it there would distort it;
* it needs no reprojection (same CRS) but its coordinates are outside that CRS's area of use
  (``aalto_raster_dem.tif`` declares EPSG:3879 but has local 0-234 m coordinates): it is
  stored as given with a warning; it then answers elevation queries in those coordinates but
  cannot be placed on the globe for terrain tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import CRS
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.crs import crs_label
from cim.db.connect import storage_srid
from cim.db.copy import copy_rows
from cim.db.models import Dataset
from cim.errors import ImportFailed, InvalidInput
from cim.raster_wkb import RasterGrid, encode_raster, pixel_type_name
from cim.services.datasets import DatasetSource, file_sha256
from importers import dem_location as location
from importers.base import ImportResult, WriteOutcome, run_import

TILE_SIZE = 256

Progress = Callable[[int, int], None]
"""Called with (tiles done, tiles total) while tiles are written."""


@dataclass
class _Plan:
    """What an import will do, decided before the transaction starts."""

    source_crs: CRS
    srid: int
    reproject: bool
    width: int
    height: int
    transform: Any  # affine.Affine of the stored grid
    dtype: np.dtype[Any]
    nodata: float
    source_nodata: float | None
    resolution: float
    bands: int
    lonlat_bounds: tuple[float, float, float, float] | None
    crs_override: bool = False
    warnings: list[str] = field(default_factory=list)


def import_terrain(
    engine: Engine,
    path: Path,
    *,
    crs: str | None = None,
    name: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the DEM at ``path`` as one ``terrain`` dataset (all or nothing).

    ``crs`` assigns the source CRS (for files without a usable one, or with a wrong one).
    Raises :class:`ImportFailed` for unreadable files or DEMs without a single valid height,
    :class:`UnsupportedCRS` when the DEM has no usable CRS or cannot be stored in the storage
    CRS; nothing is written then.
    """
    import rasterio
    from rasterio.errors import RasterioError

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    srid = storage_srid(engine)
    try:
        with rasterio.open(path) as src:
            plan = _plan(src, path=path, crs_override=crs, srid=srid)
    except RasterioError as exc:
        raise ImportFailed(f"{path.name}: not a raster GDAL can read ({exc})") from None
    source = DatasetSource(
        kind="terrain",
        name=name or path.stem,
        source_name=path.name,
        source_sha256=file_sha256(path),
        source_crs=crs_label(plan.source_crs),
        options={"crs": crs} if crs else {},
    )

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        return _write(session, dataset, path=path, plan=plan, progress=progress)

    return run_import(engine, source=source, write=write, replace=replace)


def _plan(src: Any, *, path: Path, crs_override: str | None, srid: int) -> _Plan:
    from rasterio.warp import calculate_default_transform

    if src.count < 1:
        raise ImportFailed(f"{path.name}: the raster has no band")
    source_crs = location.source_crs(src, path=path, crs_override=crs_override)
    storage = CRS.from_epsg(srid)
    warnings: list[str] = []
    if src.count > 1:
        warnings.append(f"{path.name} has {src.count} bands; heights are read from band 1")
    t = src.transform
    # Rotated or south-up grids are warped too, so every stored DEM is a north-up grid.
    north_up = t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0
    reproject = not (source_crs.equals(storage, ignore_axis_order=True) and north_up)
    lonlat = location.lonlat_bounds(source_crs, src.bounds)
    location.check_area(path, source_crs, storage, lonlat, reproject, warnings)
    if reproject:
        transform, width, height = calculate_default_transform(
            source_crs.to_wkt(),
            f"EPSG:{srid}",
            src.width,
            src.height,
            *src.bounds,
            resolution=location.finest_spacing(src, source_crs, srid),
        )
    else:
        transform, width, height = src.transform, src.width, src.height
    dtype = np.dtype("float64") if np.dtype(src.dtypes[0]) == np.float64 else np.dtype("float32")
    source_nodata = src.nodatavals[0]
    return _Plan(
        source_crs=source_crs,
        srid=srid,
        reproject=reproject,
        width=int(width),
        height=int(height),
        transform=transform,
        dtype=dtype,
        nodata=_storage_nodata(source_nodata, dtype),
        source_nodata=source_nodata,
        resolution=math.sqrt(abs(transform.a * transform.e - transform.b * transform.d)),
        bands=src.count,
        lonlat_bounds=lonlat,
        crs_override=crs_override is not None,
        warnings=warnings,
    )


def _storage_nodata(source_nodata: float | None, dtype: np.dtype[Any]) -> float:
    """The DEM's own nodata when the storage type holds it exactly, else the lowest float."""
    representable = (
        source_nodata is not None
        and math.isfinite(source_nodata)
        and float(np.array(source_nodata, dtype=dtype)) == source_nodata
    )
    if representable:
        assert source_nodata is not None
        return float(source_nodata)
    return float(np.finfo(dtype).min)


def _write(
    session: Session,
    dataset: Dataset,
    *,
    path: Path,
    plan: _Plan,
    progress: Progress | None,
) -> WriteOutcome:
    stats = _Stats()
    rows = (
        [dataset.id, plan.resolution, encode_raster(grid).hex()]
        for grid in _tiles(path, plan, stats, progress)
    )
    count = copy_rows(
        session, table="terrain_raster", columns=["dataset_id", "resolution", "rast"], rows=rows
    )
    if stats.valid == 0:
        raise ImportFailed(f"{path.name}: every pixel is nodata; there is no height to import")
    t = plan.transform
    corners_x = [t.c, t.c + t.a * plan.width, t.c + t.b * plan.height]
    corners_y = [t.f, t.f + t.e * plan.height, t.f + t.d * plan.width]
    corners_x.append(corners_x[1] + t.b * plan.height)
    corners_y.append(corners_y[1] + t.d * plan.width)
    qc: dict[str, Any] = {
        "extent": [min(corners_x), min(corners_y), max(corners_x), max(corners_y)],
        "resolution": plan.resolution,
        "width": plan.width,
        "height": plan.height,
        "min_height": stats.minimum,
        "max_height": stats.maximum,
        "valid_pixels": stats.valid,
        "nodata_pixels": plan.width * plan.height - stats.valid,
        "nodata": plan.nodata,
        "pixel_type": pixel_type_name(plan.dtype),
        "bands": plan.bands,
        "lonlat_bounds": list(plan.lonlat_bounds) if plan.lonlat_bounds else None,
        "storage_srid": plan.srid,
    }
    transform = {
        "reprojected": plan.reproject,
        "from": crs_label(plan.source_crs),
        "to": f"EPSG:{plan.srid}",
        "resampling": "bilinear" if plan.reproject else None,
    }
    return WriteOutcome(
        counts={"terrain_raster": count},
        qc=qc,
        warnings=plan.warnings,
        source_crs=crs_label(plan.source_crs),
        transform=transform,
    )


@dataclass
class _Stats:
    valid: int = 0
    minimum: float | None = None
    maximum: float | None = None

    def add(self, values: npt.NDArray[Any]) -> None:
        self.valid += int(values.size)
        low, high = float(values.min()), float(values.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)


def _tiles(
    path: Path, plan: _Plan, stats: _Stats, progress: Progress | None
) -> Iterator[RasterGrid]:
    """The stored grid cut into 256x256 windows, read (and warped) one window at a time."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    windows = [
        Window(col, row, min(TILE_SIZE, plan.width - col), min(TILE_SIZE, plan.height - row))
        for row in range(0, plan.height, TILE_SIZE)
        for col in range(0, plan.width, TILE_SIZE)
    ]
    try:
        with rasterio.open(path) as src:
            for done, window in enumerate(windows, start=1):
                if plan.reproject:
                    grid = _warp_window(src, window, plan, stats)
                else:
                    grid = _read_window(src, window, plan, stats)
                if grid is not None:
                    yield grid
                if progress is not None:
                    progress(done, len(windows))
    except RasterioError as exc:
        raise ImportFailed(f"{path.name}: reading the raster failed ({exc})") from None


def _warp_window(src: Any, window: Any, plan: _Plan, stats: _Stats) -> RasterGrid | None:
    """Warp one output tile through a WarpedVRT of exactly that tile, read whole.

    Why one VRT per tile: a windowed read of one big WarpedVRT takes a GDAL path that ignores
    the exact-transform tolerance (heights off by up to 0.7 m on ky4); a whole read of a
    tile-sized VRT is exact and keeps memory bounded by the tile's source footprint.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import transform as window_transform

    source_nodata = plan.source_nodata
    if source_nodata is None and np.dtype(src.dtypes[0]).kind == "f":
        source_nodata = float("nan")  # NaN pixels must not enter the bilinear sums
    with WarpedVRT(
        src,
        src_crs=plan.source_crs.to_wkt() if plan.crs_override else None,
        src_nodata=source_nodata,
        crs=f"EPSG:{plan.srid}",
        transform=window_transform(window, plan.transform),
        width=int(window.width),
        height=int(window.height),
        nodata=plan.nodata,
        dtype=plan.dtype.name,
        resampling=Resampling.bilinear,
        # GDAL's default 1/8 pixel approximation moves heights by centimetres on slopes;
        # 1e-6 pixel keeps them within 0.1 mm even on cliffs (0 is refused by rasterio).
        tolerance=1e-6,
        # Plain 2x2 bilinear even where a storage pixel is slightly larger than a source pixel
        # (GDAL would otherwise widen the kernel there).
        XSCALE=1,
        YSCALE=1,
    ) as vrt:
        return _read_window(vrt, None, plan, stats)


def _read_window(reader: Any, window: Any, plan: _Plan, stats: _Stats) -> RasterGrid | None:
    band = reader.read(1, window=window, masked=True, out_dtype=plan.dtype)
    values = np.ma.getdata(band).astype(plan.dtype, copy=False)
    invalid = np.ma.getmaskarray(band) | ~np.isfinite(values)
    if plan.reproject:
        invalid |= values == plan.nodata
    if invalid.all():
        return None
    stats.add(values[~invalid])
    values = np.where(invalid, np.asarray(plan.nodata, dtype=plan.dtype), values)
    t = reader.window_transform(window) if window is not None else reader.transform
    return RasterGrid(
        values=values,
        geotransform=(t.c, t.a, t.b, t.f, t.d, t.e),
        srid=plan.srid,
        nodata=plan.nodata,
    )
