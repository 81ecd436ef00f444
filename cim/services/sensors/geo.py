"""Geometries of the SensorThings API: GeoJSON / WKT in WGS 84 <-> the storage CRS.

Clients send and read longitude/latitude (GeoJSON, RFC 7946; ``geography'POINT(lon lat)'``
in filters); cim stores every geometry in the storage CRS so sensors sit on the same metric
grid as the pipes they watch. Transformations run in Python with pyproj (as everywhere in cim)
and the result is bound as WKB, never spliced into SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
import shapely.geometry
from geoalchemy2.elements import WKBElement
from sqlalchemy import ColumnElement, LargeBinary, bindparam, func

from cim.crs import transformer
from cim.errors import InvalidInput

WGS84 = 4326
GEOJSON_TYPES = {
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
}


def _checked(geometry: shapely.Geometry, what: str) -> shapely.Geometry:
    if geometry.is_empty:
        raise InvalidInput(f"{what} is empty")
    xy = shapely.get_coordinates(geometry)
    if (
        not np.all(np.isfinite(xy))
        or np.any(np.abs(xy[:, 0]) > 180)
        or np.any(np.abs(xy[:, 1]) > 90)
    ):
        raise InvalidInput(f"{what} must be longitude/latitude in degrees (WGS 84)")
    return geometry


def _to_storage(geometry: shapely.Geometry, srid: int) -> shapely.Geometry:
    forward = transformer(WGS84, srid)

    def move(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        x, y = forward.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y, *coords[:, 2:].T])  # z (metres) passes through

    moved = shapely.transform(geometry, move, include_z=bool(shapely.has_z(geometry)))
    if not np.all(np.isfinite(shapely.get_coordinates(moved))):
        raise InvalidInput(f"the geometry is outside the area of EPSG:{srid}")
    return moved


def _bound(geometry: shapely.Geometry, srid: int, dimension: int) -> ColumnElement[Any]:
    data = shapely.to_wkb(geometry, output_dimension=dimension)
    return func.ST_SetSRID(func.ST_GeomFromWKB(bindparam(None, data, type_=LargeBinary)), srid)


def geojson_to_storage(value: Any, srid: int, what: str = "location") -> ColumnElement[Any]:
    """A GeoJSON geometry (or a Feature) as a 3D geometry expression in the storage CRS."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in GEOJSON_TYPES:
        raise InvalidInput(f"{what} must be a GeoJSON geometry (application/geo+json)")
    try:
        geometry = shapely.geometry.shape(value)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        raise InvalidInput(f"{what} is not a valid GeoJSON geometry") from None
    moved = _to_storage(_checked(geometry, what), srid)
    return _bound(shapely.force_3d(moved), srid, 3)


def wkt_to_storage(wkt: str, srid: int) -> ColumnElement[Any]:
    """A filter literal's WKT (lon lat) as a 2D geometry expression in the storage CRS."""
    try:
        geometry = shapely.from_wkt(wkt)
    except shapely.errors.GEOSException:
        raise InvalidInput("$filter: the geography literal is not valid WKT") from None
    if geometry is None:
        raise InvalidInput("$filter: the geography literal is empty")
    return _bound(_to_storage(_checked(shapely.force_2d(geometry), "the literal"), srid), srid, 2)


def storage_to_geojson(value: Any, srid: int) -> dict[str, Any] | None:
    """A stored geometry as GeoJSON in WGS 84; z is dropped when every z is 0."""
    if value is None:
        return None
    data = bytes(value.data) if isinstance(value, WKBElement) else bytes(value)
    geometry = shapely.from_wkb(data)
    coords = shapely.get_coordinates(geometry, include_z=True)
    flat = bool(np.all(np.nan_to_num(coords[:, 2]) == 0)) if len(coords) else True
    backward = transformer(srid, WGS84)

    def move(points: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        x, y = backward.transform(points[:, 0], points[:, 1])
        if points.shape[1] == 3 and not flat:
            return np.column_stack([x, y, points[:, 2]])
        return np.column_stack([x, y])

    moved = shapely.transform(
        shapely.force_2d(geometry) if flat else geometry, move, include_z=not flat
    )
    mapping: dict[str, Any] = shapely.geometry.mapping(moved)
    return mapping
