"""Shared pieces of the pipe analyses: dataset scope, section sizes, ground heights, input shapes.

Every pipe analysis works in the storage CRS (metres); user geometries arrive as GeoJSON-like
dicts or WKT in that CRS. Sizes: circular pipes have ``diameter_mm``; rectangular sections
``width_mm`` x ``height_mm``. Half-sizes are what clearances subtract from axis distances.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.migrate import recorded_srid
from cim.errors import AuthenticationRequired, ConfigError, InvalidInput, NotFound
from cim.utilities import hex_colour_of, utility_class

# Horizontal / vertical half-size (m) of a section as SQL over the alias {t}.
HALF_WIDTH_SQL = "(COALESCE(NULLIF({t}.diameter_mm, 0), NULLIF({t}.width_mm, 0), 0) / 2000.0)"
HALF_HEIGHT_SQL = "(COALESCE(NULLIF({t}.diameter_mm, 0), NULLIF({t}.height_mm, 0), 0) / 2000.0)"


def half_width_sql(alias: str) -> str:
    return HALF_WIDTH_SQL.format(t=alias)


def half_height_sql(alias: str) -> str:
    return HALF_HEIGHT_SQL.format(t=alias)


def session_srid(session: Session) -> int:
    """The storage SRID recorded in the database of ``session``."""
    srid = recorded_srid(session.connection())
    if srid is None:
        raise ConfigError("the database has no cim schema yet: run `cim db upgrade`")
    return srid


def pipe_dataset_ids(session: Session, dataset_id: int | None) -> list[int]:
    """The ready pipe datasets an analysis looks at: the one asked for, or all of them."""
    if dataset_id is not None:
        kind = session.execute(
            text("SELECT kind FROM dataset WHERE id = :id AND status = 'ready'"), {"id": dataset_id}
        ).scalar_one_or_none()
        if kind is None:
            raise NotFound(f"dataset {dataset_id} does not exist or is not ready")
        if kind != "pipes":
            raise InvalidInput(f"dataset {dataset_id} is a {kind} dataset, not pipes")
        return [dataset_id]
    rows = session.execute(
        text("SELECT id FROM dataset WHERE kind = 'pipes' AND status = 'ready' ORDER BY id")
    ).scalars()
    return [int(r) for r in rows]


def section_label(
    shape: str | None, diameter: float | None, width: float | None, height: float | None
) -> str:
    """``DN300`` for circular pipes, ``800x600`` for rectangular sections, ``?`` if unknown."""
    if shape == "rectangular" and width and height:
        return f"{width:g}x{height:g}"
    if diameter:
        return f"DN{diameter:g}"
    if width and height:
        return f"{width:g}x{height:g}"
    return "?"


def section_height_m(diameter: float | None, height: float | None) -> float:
    """Vertical outer size (m); 0 when unknown."""
    return float(diameter or height or 0.0) / 1000.0


def section_area_m2(
    shape: str | None, diameter: float | None, width: float | None, height: float | None
) -> float:
    """Inner cross-section area (m2) used for water volumes; 0 when unknown."""
    if shape == "rectangular" and width and height:
        return (width / 1000.0) * (height / 1000.0)
    if diameter:
        return math.pi * (diameter / 1000.0) ** 2 / 4.0
    if width and height:
        return (width / 1000.0) * (height / 1000.0)
    return 0.0


def class_info(utility: str | None) -> dict[str, str]:
    """Name and standard CJJ 61 colour of a class code (unknown codes get grey)."""
    if not utility:
        return {"utility_name": "", "colour": "#808080"}
    try:
        cls = utility_class(utility)
        return {"utility_name": cls.name_zh, "colour": hex_colour_of(utility)}
    except InvalidInput:
        return {"utility_name": utility, "colour": "#808080"}


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


def refuse_hidden(utility: str, hidden: frozenset[str]) -> None:
    """AuthenticationRequired when an anonymous caller asks about a sensitive class (gas, power)."""
    if utility.upper() in hidden:
        raise AuthenticationRequired(
            f"{utility} pipes are sensitive: send an API key to analyse them"
        )


def no_jit(session: Session) -> None:
    """Turn JIT off for this transaction: PostGIS cost estimates make PostgreSQL JIT-compile
    these short queries, which costs seconds and saves nothing (measured in bench/analysis)."""
    session.execute(text("SET LOCAL jit = off"))


def has_terrain(session: Session) -> bool:
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM terrain_raster)")).scalar())


def terrain_heights(
    session: Session, points: list[tuple[float, float]], srid: int
) -> list[float | None]:
    """Ground height at each point from ``terrain_raster`` (finest DEM wins); None off the DEM."""
    if not points:
        return []
    rows = session.execute(
        text(
            """
            WITH p AS (
                SELECT ord, ST_SetSRID(ST_MakePoint(x, y), :srid) AS g
                FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]))
                     WITH ORDINALITY AS u(x, y, ord)
            )
            SELECT p.ord, (
                SELECT ST_Value(t.rast, 1, p.g)
                FROM terrain_raster t
                WHERE ST_Intersects(t.rast, p.g) AND ST_Value(t.rast, 1, p.g) IS NOT NULL
                ORDER BY t.resolution
                LIMIT 1
            )
            FROM p ORDER BY p.ord
            """
        ),
        {"xs": [p[0] for p in points], "ys": [p[1] for p in points], "srid": srid},
    ).all()
    return [None if r[1] is None else float(r[1]) for r in rows]


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def segment_features(session: Session, ids: list[int], *, role: str) -> list[dict[str, Any]]:
    """GeoJSON features (storage CRS) of segments, for viewer highlights; ``role`` in properties."""
    if not ids:
        return []
    rows = session.execute(
        text(
            """
            SELECT id, code, utility, ST_AsGeoJSON(geom, 3)::json FROM pipe_segment
            WHERE id = ANY(:ids) ORDER BY id
            """
        ),
        {"ids": ids},
    ).all()
    return [
        {
            "type": "Feature",
            "id": f"pipe_segment.{r[0]}",
            "geometry": r[3],
            "properties": {
                "layer": "pipe_segment",
                "id": r[0],
                "code": r[1],
                "utility": r[2],
                "role": role,
                **class_info(r[2]),
            },
        }
        for r in rows
    ]


def node_features(session: Session, ids: list[int], *, role: str) -> list[dict[str, Any]]:
    """GeoJSON features of nodes (valves to close, start points...) with ``role``."""
    if not ids:
        return []
    rows = session.execute(
        text(
            """
            SELECT id, code, utility, kind, valve_state, ST_AsGeoJSON(geom, 3)::json
            FROM pipe_node WHERE id = ANY(:ids) ORDER BY id
            """
        ),
        {"ids": ids},
    ).all()
    return [
        {
            "type": "Feature",
            "id": f"pipe_node.{r[0]}",
            "geometry": r[5],
            "properties": {
                "layer": "pipe_node",
                "id": r[0],
                "code": r[1],
                "utility": r[2],
                "kind": r[3],
                "valve_state": r[4],
                "role": role,
            },
        }
        for r in rows
    ]


def feature_collection(features: list[dict[str, Any]], srid: int) -> dict[str, Any]:
    """A GeoJSON FeatureCollection in the storage CRS (named with a ``crs`` member)."""
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{srid}"}},
        "features": features,
    }


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


def reproject_features(collection: dict[str, Any], srid: int, target: str) -> dict[str, Any]:
    """A storage-CRS FeatureCollection in ``target`` (e.g. ``EPSG:4326`` for web maps); Z kept."""
    from cim.crs import crs_label, parse_crs, transformer

    move = transformer(srid, target)
    features = []
    for feature in collection.get("features", []):
        geom = shapely.geometry.shape(feature["geometry"])
        moved = shapely.transform(
            geom,
            lambda xyz: np.column_stack([*move.transform(xyz[:, 0], xyz[:, 1]), xyz[:, 2]]),
            include_z=True,
        )
        features.append(feature | {"geometry": shapely.geometry.mapping(moved)})
    label = crs_label(parse_crs(target))
    code = label.split(":", 1)[1] if label.startswith("EPSG:") else label
    return collection | {
        "features": features,
        "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{code}"}},
    }
