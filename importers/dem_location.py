"""Where a DEM lies: its usable CRS, its lon/lat footprint, and whether the storage CRS takes it.

Split from ``importers.terrain`` so the import flow reads on its own; the rules are documented
there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS

from cim.crs import crs_label, parse_crs, transformer
from cim.errors import UnsupportedCRS

AREA_MARGIN_DEG = 2.0
"""How far outside the storage CRS's area of use a DEM may lie before it is refused."""


def source_crs(src: Any, *, path: Path, crs_override: str | None) -> CRS:
    if crs_override is not None:
        return parse_crs(crs_override)
    if src.crs is None:
        raise UnsupportedCRS(f"{path.name} has no CRS; give it with --crs EPSG:xxxx")
    # GDAL identifies EPSG codes of GeoTIFF keys better than pyproj (EUREF-FIN -> 3879).
    code = src.crs.to_epsg()
    crs = CRS.from_epsg(code) if code else CRS.from_wkt(src.crs.to_wkt())
    if not (crs.is_projected or crs.is_geographic):
        raise UnsupportedCRS(
            f"{path.name} has no usable CRS ({crs.type_name} {crs.name!r}); "
            "give the real one with --crs EPSG:xxxx"
        )
    return crs


def lonlat_bounds(crs: CRS, bounds: Sequence[float]) -> tuple[float, float, float, float] | None:
    """Longitude/latitude box of the DEM's footprint (edges densified), None if not on Earth."""
    left, bottom, right, top = bounds
    steps = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([left + (right - left) * steps, np.full(21, right)])
    xs = np.concatenate([xs, right - (right - left) * steps, np.full(21, left)])
    ys = np.concatenate([np.full(21, bottom), bottom + (top - bottom) * steps])
    ys = np.concatenate([ys, np.full(21, top), top - (top - bottom) * steps])
    try:
        lon, lat = transformer(crs, 4326).transform(xs, ys, errcheck=True)
    except Exception:  # pyproj raises ProjError for points outside the projection domain
        return None
    lon, lat = np.asarray(lon), np.asarray(lat)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        return None
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 360):
        return None
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def check_area(
    path: Path,
    source: CRS,
    storage: CRS,
    lonlat: tuple[float, float, float, float] | None,
    reproject: bool,
    warnings: list[str],
) -> None:
    area = storage.area_of_use
    label = crs_label(storage)
    if lonlat is None:
        message = (
            f"{path.name}: its coordinates cannot be located on the Earth in "
            f"{crs_label(source)} (local coordinates or a wrong CRS?)"
        )
        if reproject:
            raise UnsupportedCRS(f"{message}; give the real CRS with --crs EPSG:xxxx")
        warnings.append(
            f"{message}; stored as given in {label} - it answers elevation queries in these "
            "coordinates but cannot be placed on the globe for terrain tiles"
        )
        return
    if area is None:
        return
    west, south, east, north = lonlat
    where = f"lon {west:.3f}..{east:.3f}, lat {south:.3f}..{north:.3f}"
    margin = AREA_MARGIN_DEG
    far = (
        east < area.west - margin
        or west > area.east + margin
        or north < area.south - margin
        or south > area.north + margin
    )
    if far and reproject:
        raise UnsupportedCRS(
            f"{path.name} lies at {where}, far outside the area of use of the storage CRS "
            f"{label} ({area.name}); warping it there would distort it - import it into a "
            "database whose storage CRS (CIM_SRID) covers it"
        )
    inside = west >= area.west and east <= area.east and south >= area.south
    if not (inside and north <= area.north):
        warnings.append(f"{path.name} ({where}) extends outside the area of use of {label}")


def finest_spacing(src: Any, source_crs: CRS, srid: int) -> float | None:
    """The smaller source pixel dimension in storage metres, measured at the DEM's centre.

    Used as the storage resolution so no direction is downsampled (SRTM's 3" pixels are
    74 m east-west but 93 m north-south in Utah; both become 74 m).
    """
    col, row = src.width / 2.0, src.height / 2.0
    xs, ys = src.transform * (np.array([col, col + 1, col]), np.array([row, row, row + 1]))
    try:
        px, py = transformer(source_crs, srid).transform(xs, ys, errcheck=True)
    except Exception:  # outside the projection domain: let GDAL choose
        return None
    px, py = np.asarray(px), np.asarray(py)
    spacing = min(
        math.hypot(px[1] - px[0], py[1] - py[0]), math.hypot(px[2] - px[0], py[2] - py[0])
    )
    return spacing if math.isfinite(spacing) and spacing > 0 else None
