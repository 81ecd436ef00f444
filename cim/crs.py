"""Coordinate reference systems: parse user CRS strings, transform to storage, ENU <-> ECEF.

Why one module: every importer transforms into the storage CRS once, and every tiler writes
vertices in a local east-north-up frame per tile with an ENU->ECEF (EPSG:4978) transform, so
terrain, buildings and pipes line up in CesiumJS. All of that goes through these helpers.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from cim.errors import UnsupportedCRS

ECEF = 4978
WGS84_3D = 4979


def parse_crs(value: str | int | CRS) -> CRS:
    """A pyproj CRS from ``EPSG:xxxx``, a bare code, WKT or PROJ text; UnsupportedCRS if not.

    Examples
    --------
    >>> parse_crs("EPSG:4547").to_epsg()
    4547
    >>> parse_crs(32650).to_epsg()
    32650
    """
    if isinstance(value, CRS):
        return value
    try:
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return CRS.from_epsg(int(value))
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise UnsupportedCRS(f"unknown CRS {value!r}: {exc}") from None


def crs_label(crs: CRS) -> str:
    """``EPSG:xxxx`` when the CRS has a code, else its name (stored on the dataset row)."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.name


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(
        CRS.from_user_input(source), CRS.from_user_input(target), always_xy=True
    )


def transformer(source: CRS | str | int, target: CRS | str | int) -> Transformer:
    """A cached, always-xy transformer between two CRSs (x=easting/lon, y=northing/lat)."""
    return _transformer(parse_crs(source).to_wkt(), parse_crs(target).to_wkt())


def to_storage(
    source: CRS | str | int,
    storage_srid: int,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """Transform coordinates into the storage CRS; Z (orthometric metres) passes through."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    tx, ty = transformer(source, storage_srid).transform(xs, ys)
    out_z = None if z is None else np.asarray(z, dtype=np.float64)
    tx = np.asarray(tx, dtype=np.float64)
    ty = np.asarray(ty, dtype=np.float64)
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        raise UnsupportedCRS(
            f"coordinates cannot be transformed from {crs_label(parse_crs(source))} to "
            f"EPSG:{storage_srid} (outside the CRS's area of use?)"
        )
    return tx, ty, out_z


def storage_to_ecef(
    storage_srid: int, x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Storage coordinates (heights as ellipsoidal, see README) -> ECEF, shape (n, 3)."""
    lon, lat = transformer(storage_srid, 4326).transform(
        np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    )
    ex, ey, ez = transformer(WGS84_3D, ECEF).transform(lon, lat, np.asarray(z, dtype=np.float64))
    return np.column_stack([ex, ey, ez])


def enu_to_ecef_matrix(lon_deg: float, lat_deg: float, height: float) -> npt.NDArray[np.float64]:
    """4x4 column-major-ready matrix taking local ENU metres at (lon, lat, h) to ECEF.

    Examples
    --------
    >>> m = enu_to_ecef_matrix(0.0, 0.0, 0.0)
    >>> [round(float(v), 3) for v in m[:3, 3]]
    [6378137.0, 0.0, 0.0]
    """
    lon = np.radians(lon_deg)
    lat = np.radians(lat_deg)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    ox, oy, oz = transformer(WGS84_3D, ECEF).transform(lon_deg, lat_deg, height)
    matrix = np.identity(4)
    matrix[:3, 0] = east
    matrix[:3, 1] = north
    matrix[:3, 2] = up
    matrix[:3, 3] = [ox, oy, oz]
    return matrix


def ecef_to_enu(
    matrix: npt.NDArray[np.float64], ecef: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Inverse of :func:`enu_to_ecef_matrix` applied to (n, 3) ECEF points."""
    rotation = matrix[:3, :3]
    return (np.asarray(ecef, dtype=np.float64) - matrix[:3, 3]) @ rotation
