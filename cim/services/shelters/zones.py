"""Service-zone polygons of a plan and the GeoJSON the API and the viewer read.

A zone is the union of the units assigned to a shelter. Point units get their Voronoi cell
(clipped to the buffered hull of all units). A unit split across shelters is cut into slices
whose areas are proportional to the persons each shelter takes, ordered along the axis through
the shelters so that each slice lies on its shelter's side; an uncovered remainder is the last
slice and belongs to no zone. The slices tile the unit exactly, so zones never overlap.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
import shapely.affinity
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import NotFound
from cim.services.shelters.models import UncoveredCollection, ZoneCollection


def unit_cells(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Polygon per unit: the unit itself, or for point units their clipped Voronoi cell."""
    cells = np.asarray(geoms, dtype=object).copy()
    is_point = shapely.get_type_id(cells) == 0
    if not is_point.any():
        return cells
    points = cells[is_point]
    hull = shapely.convex_hull(shapely.multipoints(points))
    spacing = math.sqrt(hull.area / len(points)) if hull.area > 0 else 50.0
    extent = shapely.buffer(hull, spacing / 2)
    regions = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(points), extend_to=extent, ordered=True)
    )
    if len(regions) != len(points):  # duplicate points: fall back to a square around each
        regions = shapely.buffer(points, spacing / 2, cap_style="square")
    # Only the cells on the rim reach outside the extent; clip just those (much faster).
    shapely.prepare(extent)
    outside = ~shapely.contains_properly(extent, regions)
    regions[outside] = shapely.intersection(regions[outside], extent)
    cells[is_point] = regions
    return cells


def slice_unit(
    polygon: Any, parts: list[tuple[Any, float, tuple[float, float] | None]]
) -> list[tuple[Any, Any]]:
    """Cut ``polygon`` into slices with areas proportional to each part's persons.

    ``parts`` are (key, persons, shelter location or None for the uncovered remainder); slices
    follow the order of the shelters along the axis through them, the remainder last.

    Examples
    --------
    >>> square = shapely.box(0, 0, 10, 10)
    >>> out = slice_unit(square, [("east", 30.0, (20.0, 5.0)), ("west", 10.0, (-20.0, 5.0))])
    >>> [(key, round(part.area, 6), round(part.centroid.x, 3)) for key, part in out]
    [('west', 25.0, 1.25), ('east', 75.0, 6.25)]
    """
    located = [p for p in parts if p[2] is not None]
    rest = [p for p in parts if p[2] is None]
    xy = np.array([p[2] for p in located], dtype=float)
    angle = 0.0
    if len(xy) >= 2:
        distances = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        a, b = np.unravel_index(int(np.argmax(distances)), distances.shape)
        if distances[a, b] > 0:
            first, second = (a, b) if xy[a, 0] <= xy[b, 0] else (b, a)
            angle = math.degrees(math.atan2(*(xy[second] - xy[first])[::-1]))
    origin = polygon.centroid
    along = [
        float(shapely.affinity.rotate(shapely.Point(*p[2]), -angle, origin=origin).x)  # type: ignore[misc]
        for p in located
    ]
    ordered = [located[i] for i in np.argsort(along, kind="stable")] + rest
    rotated = shapely.affinity.rotate(polygon, -angle, origin=origin)
    xmin, ymin, xmax, ymax = rotated.bounds
    total = sum(p[1] for p in ordered)
    slices: list[tuple[Any, Any]] = []
    start, cumulative = xmin, 0.0
    for position, (key, persons, _) in enumerate(ordered):
        cumulative += persons
        if position == len(ordered) - 1:
            end = xmax
        else:
            target = rotated.area * cumulative / total
            low, high = start, xmax
            for _ in range(24):  # 2^-24 of the unit's width: below a millimetre for 10 km
                middle = (low + high) / 2
                cut = shapely.clip_by_rect(rotated, xmin, ymin - 1, middle, ymax + 1)
                low, high = (middle, high) if cut.area < target else (low, middle)
            end = high
        # clip_by_rect is fast but may return invalid output: fine for measuring areas in the
        # search above, not for the slice itself.
        piece = shapely.intersection(rotated, shapely.box(start, ymin - 1, end, ymax + 1))
        slices.append((key, shapely.affinity.rotate(piece, angle, origin=origin)))
        start = end
    return slices


def build_zones(
    unit_geoms: npt.NDArray[np.object_],
    pair_unit: npt.NDArray[np.int64],
    pair_shelter: npt.NDArray[np.int64],
    flow: npt.NDArray[np.float64],
    uncovered: npt.NDArray[np.float64],
    shelter_xy: npt.NDArray[np.float64],
) -> list[Any]:
    """Zone (MultiPolygon, possibly empty) per shelter from the solved assignment.

    ``pair_*``/``flow`` are the pairs with persons > 0; ``uncovered`` is per unit.
    """
    cells = unit_cells(unit_geoms)
    parts = np.bincount(pair_unit, minlength=len(unit_geoms)) + (uncovered > 0)
    whole = parts[pair_unit] == 1
    piece_geoms = list(cells[pair_unit[whole]])
    piece_owner = list(pair_shelter[whole])
    for unit in np.flatnonzero(parts > 1):
        mine = np.flatnonzero(pair_unit == unit)
        unit_parts: list[tuple[Any, float, tuple[float, float] | None]] = [
            (
                int(pair_shelter[p]),
                float(flow[p]),
                (float(shelter_xy[pair_shelter[p], 0]), float(shelter_xy[pair_shelter[p], 1])),
            )
            for p in mine
        ]
        if uncovered[unit] > 0:
            unit_parts.append((None, float(uncovered[unit]), None))
        for key, piece in slice_unit(cells[unit], unit_parts):
            if key is not None:
                piece_geoms.append(piece)
                piece_owner.append(key)
    # Whole Voronoi cells share exact edges (a valid coverage): coverage union is much faster.
    whole_count = int(whole.sum())
    from_points = np.zeros(len(piece_geoms), dtype=bool)
    from_points[:whole_count] = shapely.get_type_id(unit_geoms[pair_unit[whole]]) == 0
    owners = np.asarray(piece_owner, dtype=np.int64)
    geoms = np.asarray(piece_geoms, dtype=object)
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(len(shelter_xy) + 1))
    zones: list[Any] = []
    for j in range(len(shelter_xy)):
        members = order[bounds[j] : bounds[j + 1]]
        if len(members) == 0:
            zones.append(shapely.MultiPolygon())
            continue
        voronoi = geoms[members[from_points[members]]]
        rest = geoms[members[~from_points[members]]]
        merged = [shapely.coverage_union_all(voronoi)] if len(voronoi) else []
        union = shapely.union_all(np.asarray([*merged, *rest], dtype=object))
        if not shapely.is_valid(union):
            union = shapely.make_valid(union)
        polygons = [g for g in shapely.get_parts(union) if isinstance(g, shapely.Polygon)]
        zones.append(shapely.MultiPolygon(polygons))
    return zones


ZONES_SQL = """
    SELECT z.shelter_id, s.name, s.level, z.population, z.capacity, z.load_ratio,
           ST_AsGeoJSON(ST_Transform(z.geom, 4326), 7)
    FROM shelter_zone z JOIN shelter s ON s.id = z.shelter_id
    WHERE z.plan_id = :plan ORDER BY z.shelter_id
"""
UNCOVERED_SQL = """
    SELECT u.id, u.code, u.population, a.persons, a.reason,
           ST_AsGeoJSON(ST_Transform(u.geom, 4326), 7)
    FROM shelter_assignment a JOIN population_unit u ON u.id = a.unit_id
    WHERE a.plan_id = :plan AND a.shelter_id IS NULL ORDER BY u.id
"""


def _plan_features(
    session: Session, plan_id: int, sql: str, id_key: str, names: tuple[str, ...]
) -> dict[str, Any]:
    """A FeatureCollection of the rows of ``sql`` (id, ``names``..., GeoJSON geometry last);
    the properties are the plan id, the id as ``id_key`` and ``names``."""
    _exists(session, plan_id)
    rows = session.execute(text(sql), {"plan": plan_id}).all()
    features = [
        {
            "type": "Feature",
            "id": int(r[0]),
            "geometry": json.loads(r[-1]),
            "properties": {
                "plan_id": plan_id,
                id_key: int(r[0]),
                **dict(zip(names, r[1:-1], strict=True)),
            },
        }
        for r in rows
    ]
    return {"type": "FeatureCollection", "features": features}


def zone_features(session: Session, *, plan_id: int) -> ZoneCollection:
    """The plan's zones as a GeoJSON FeatureCollection in WGS84, with load ratio per shelter."""
    names = ("name", "level", "population", "capacity", "load_ratio")
    collection = _plan_features(session, plan_id, ZONES_SQL, "shelter_id", names)
    return ZoneCollection.model_validate(collection)


def uncovered_features(session: Session, *, plan_id: int) -> UncoveredCollection:
    """The plan's uncovered units (persons and reason) as GeoJSON in WGS84."""
    names = ("code", "population", "uncovered", "reason")
    collection = _plan_features(session, plan_id, UNCOVERED_SQL, "unit_id", names)
    return UncoveredCollection.model_validate(collection)


def _exists(session: Session, plan_id: int) -> None:
    found = session.execute(
        text("SELECT 1 FROM shelter_plan WHERE id = :plan"), {"plan": plan_id}
    ).first()
    if found is None:
        raise NotFound(f"no shelter plan {plan_id}")
