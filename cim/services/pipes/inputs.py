"""Request geometries of the pipe analyses: parsed, checked and moved into the storage CRS.

Every pipe analysis works in the storage CRS (metres); user geometries arrive as GeoJSON-like
dicts or WKT, in that CRS unless the caller names another one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.errors import InvalidInput


def parse_geometry(value: Any, *, what: str) -> BaseGeometry:
    """A shapely geometry from a GeoJSON dict, WKT text or shapely object; InvalidInput if bad."""
    try:
        if isinstance(value, BaseGeometry):
            geom = value
        elif isinstance(value, dict):
            geom = shapely.geometry.shape(value)
        elif isinstance(value, str):
            geom = shapely.from_wkt(value)
        else:
            raise TypeError(type(value).__name__)
    except Exception as exc:  # shapely raises several types for malformed input
        raise InvalidInput(f"{what}: not a GeoJSON geometry or WKT ({exc})") from None
    if geom.is_empty:
        raise InvalidInput(f"{what}: empty geometry")
    if not geom.is_valid:
        raise InvalidInput(f"{what}: invalid geometry ({shapely.is_valid_reason(geom)})")
    return geom


def parse_line(value: Any, *, what: str = "line") -> shapely.LineString:
    geom = parse_geometry(value, what=what)
    if not isinstance(geom, shapely.LineString) or geom.length <= 0:
        raise InvalidInput(f"{what}: expected a LineString of non-zero length")
    return shapely.force_2d(geom)


def parse_polygon(value: Any, *, what: str = "polygon") -> BaseGeometry:
    geom = parse_geometry(value, what=what)
    if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon) or geom.area <= 0:
        raise InvalidInput(f"{what}: expected a Polygon or MultiPolygon with an area")
    return shapely.force_2d(geom)


def ewkt(geom: BaseGeometry, srid: int) -> str:
    """EWKT of ``geom`` for ``ST_GeomFromEWKT`` parameters."""
    return f"SRID={srid};{geom.wkt}"


def geometry_to_storage(value: Any, crs: str | None, srid: int, *, what: str) -> Any:
    """A request geometry given in ``crs`` (default: the storage CRS) as GeoJSON in storage."""
    if value is None or crs is None:
        return value
    from cim.crs import parse_crs, transformer

    if parse_crs(crs).equals(parse_crs(srid)):
        return value
    geom = parse_geometry(value, what=what)
    move = transformer(crs, srid)
    moved = shapely.transform(geom, lambda xy: np.column_stack(move.transform(xy[:, 0], xy[:, 1])))
    return shapely.geometry.mapping(moved)


def point_to_storage(
    point: tuple[float, float] | None, crs: str | None, srid: int
) -> tuple[float, float] | None:
    """A request point (x, y) given in ``crs`` as storage coordinates."""
    if point is None or crs is None:
        return point
    from cim.crs import to_storage

    xs, ys, _ = to_storage(crs, srid, [point[0]], [point[1]])
    return float(xs[0]), float(ys[0])
