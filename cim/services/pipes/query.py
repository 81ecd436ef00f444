"""Pipe query (within a bbox, polygon or buffer of a line, with attribute filters).

The spatial part uses the GiST index (``&&`` / ``ST_Intersects`` / ``ST_DWithin``); the
filters are utility class or sub-class, material, diameter range (mm; width for rectangular
sections), year range and depth range. Depth is the cover to the pipe top, the shallower of the
two ends (ground height of the end node - top elevation), so "depth 0-1.0 m" finds pipes that
come within 1 m of the surface somewhere. PostGIS builds the GeoJSON.
"""

from __future__ import annotations

import json
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.pipes.geojson import feature_collection
from cim.services.pipes.inputs import ewkt, parse_line, parse_polygon
from cim.services.pipes.models import PipeCollection
from cim.services.pipes.scope import AnyRow, no_jit, pipe_dataset_ids, session_srid
from cim.services.pipes.sections import section_label
from cim.services.results import Feature
from cim.utilities import hex_colour_of, resolve_utility

MAX_LIMIT = 10_000

QUERY_SQL = """
WITH q AS (
    SELECT s.*, a.ground_z AS ground_a, b.ground_z AS ground_b,
           LEAST(a.ground_z - s.start_top_z, b.ground_z - s.end_top_z) AS depth
    FROM pipe_segment s
    JOIN pipe_node a ON a.id = s.start_node_id
    JOIN pipe_node b ON b.id = s.end_node_id
    WHERE s.dataset_id = ANY(:ds) AND {spatial} AND NOT (s.utility = ANY(:hidden))
      AND (CAST(:classes AS text[]) IS NULL
           OR s.utility = ANY(:classes) OR s.subclass = ANY(:classes))
      AND (CAST(:materials AS text[]) IS NULL OR upper(s.material) = ANY(:materials))
      AND (CAST(:dmin AS float8) IS NULL OR COALESCE(s.diameter_mm, s.width_mm) >= :dmin)
      AND (CAST(:dmax AS float8) IS NULL OR COALESCE(s.diameter_mm, s.width_mm) <= :dmax)
      AND (CAST(:ymin AS int) IS NULL OR s.year >= :ymin)
      AND (CAST(:ymax AS int) IS NULL OR s.year <= :ymax)
)
SELECT count(*) OVER () AS matched, q.id, q.code, q.utility, q.subclass, q.material,
       q.section_shape, q.diameter_mm, q.width_mm, q.height_mm, q.year, q.owner, q.pressure,
       q.burial, q.length_m, q.depth, ST_AsGeoJSON(q.geom, 3) AS geometry
FROM q
WHERE (CAST(:zmin AS float8) IS NULL OR q.depth >= :zmin)
  AND (CAST(:zmax AS float8) IS NULL OR q.depth <= :zmax)
ORDER BY q.id
LIMIT :limit OFFSET :offset
"""


def query_pipes(
    session: Session,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    polygon: Any | None = None,
    line: Any | None = None,
    buffer_m: float = 0.0,
    dataset_id: int | None = None,
    utilities: list[str] | None = None,
    materials: list[str] | None = None,
    diameter_min_mm: float | None = None,
    diameter_max_mm: float | None = None,
    year_min: int | None = None,
    year_max: int | None = None,
    depth_min_m: float | None = None,
    depth_max_m: float | None = None,
    limit: int = 1000,
    offset: int = 0,
    hidden_utilities: frozenset[str] = frozenset(),
    output_crs: str | None = None,
) -> PipeCollection:
    """A GeoJSON FeatureCollection of the pipes matching every given condition.

    Geometries come in the storage CRS; the features go out in ``output_crs`` (default storage).
    """
    if sum(x is not None for x in (bbox, polygon, line)) != 1:
        raise InvalidInput("give exactly one of bbox, polygon or line")
    bounds.current().check_limit(limit)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT} and offset >= 0")
    srid = session_srid(session)
    area, spatial = _search_area(bbox, polygon, line, buffer_m)
    # a class code matches its class, a sub-class code (YS, WS...) only that sub-class
    classes = [_code(u) for u in utilities] if utilities else None
    no_jit(session)
    rows = session.execute(
        text(QUERY_SQL.format(spatial=spatial)),
        {
            "ds": pipe_dataset_ids(session, dataset_id),
            "area": ewkt(area, srid),
            "buffer": buffer_m,
            "classes": classes,
            "materials": [m.upper() for m in materials] if materials else None,
            "dmin": diameter_min_mm,
            "dmax": diameter_max_mm,
            "ymin": year_min,
            "ymax": year_max,
            "zmin": depth_min_m,
            "zmax": depth_max_m,
            "limit": limit,
            "offset": offset,
            "hidden": sorted(hidden_utilities),
        },
    ).all()
    collection = feature_collection([_pipe_feature(r) for r in rows], srid, output_crs)
    return PipeCollection(
        crs=collection["crs"],
        numberMatched=int(rows[0].matched) if rows else 0,
        numberReturned=len(rows),
        features=collection["features"],
    )


def _search_area(
    bbox: tuple[float, float, float, float] | None,
    polygon: Any | None,
    line: Any | None,
    buffer_m: float,
) -> tuple[BaseGeometry, str]:
    """The search geometry given and the SQL condition that tests a segment against it."""
    if bbox is not None:
        if len(bbox) != 4 or bbox[0] >= bbox[2] or bbox[1] >= bbox[3]:
            raise InvalidInput("bbox must be minx,miny,maxx,maxy with min < max")
        return shapely.box(*bbox), "ST_Intersects(s.geom, ST_GeomFromEWKT(:area))"
    if polygon is not None:
        return parse_polygon(polygon), "ST_Intersects(s.geom, ST_GeomFromEWKT(:area))"
    if buffer_m < 0:
        raise InvalidInput("buffer_m must not be negative")
    return parse_line(line), "ST_DWithin(s.geom, ST_GeomFromEWKT(:area), :buffer)"


def _pipe_feature(r: AnyRow) -> Feature:
    return {
        "type": "Feature",
        "id": f"pipe_segment.{r.id}",
        "geometry": json.loads(r.geometry),
        "properties": {
            "id": r.id,
            "code": r.code,
            "utility": r.utility,
            "subclass": r.subclass,
            "colour": _colour(r.utility),
            "material": r.material,
            "section_shape": r.section_shape,
            "section": section_label(r.section_shape, r.diameter_mm, r.width_mm, r.height_mm),
            "diameter_mm": r.diameter_mm,
            "width_mm": r.width_mm,
            "height_mm": r.height_mm,
            "year": r.year,
            "owner": r.owner,
            "pressure": r.pressure,
            "burial": r.burial,
            "length_m": r.length_m,
            "depth_m": None if r.depth is None else round(float(r.depth), 3),
        },
    }


def _code(utility: str) -> str:
    klass, sub = resolve_utility(utility)
    return sub or klass


def _colour(utility: str) -> str:
    try:
        return hex_colour_of(utility)
    except InvalidInput:
        return "#808080"
