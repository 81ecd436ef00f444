"""3D clash detection: pipe-pipe (centreline distance < sum of half-sizes) and pipe-building mesh.

Pipe-pipe: candidates from the 2D GiST index (``ST_DWithin`` by the largest possible sum of
half-sizes), then ``ST_3DDistance`` between the 3D centrelines; a clash is a distance below
the sum of the two outer half-sizes (a rectangular section counts as a cylinder of radius half
its larger side), overlap = sum - distance, located at the middle of ``ST_3DShortestLine``. Pipes
sharing a node are connected, not clashing. Pipe-building element: the element's triangulated
mesh (MULTIPOLYGONZ surfaces) is within the pipe's outer half-size of its centreline
(``ST_3DDWithin``), i.e. the pipe's surface touches or passes through a face of the element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.pipes.models import Clash, ClashReport, ElementSide, PairSide
from cim.services.pipes.scope import AnyRow, area_scope, listed_datasets, no_jit

RADIUS_SQL = (
    "(GREATEST(COALESCE({t}.diameter_mm, 0), COALESCE({t}.width_mm, 0),"
    " COALESCE({t}.height_mm, 0)) / 2000.0)"
)


def _radius(alias: str) -> str:
    return RADIUS_SQL.format(t=alias)


def _area(alias: str) -> str:
    return f"(CAST(:area AS text) IS NULL OR ST_Intersects({alias}.geom, ST_GeomFromEWKT(:area)))"


PIPE_PIPE_SQL = f"""
SELECT aid, acode, autil, bid, bcode, butil, overlap, distance,
       (ST_X(ST_StartPoint(sl)) + ST_X(ST_EndPoint(sl))) / 2,
       (ST_Y(ST_StartPoint(sl)) + ST_Y(ST_EndPoint(sl))) / 2,
       (ST_Z(ST_StartPoint(sl)) + ST_Z(ST_EndPoint(sl))) / 2
FROM (
    SELECT a.id AS aid, a.code AS acode, a.utility AS autil,
           b.id AS bid, b.code AS bcode, b.utility AS butil,
           {_radius("a")} + {_radius("b")} - ST_3DDistance(a.geom, b.geom) AS overlap,
           ST_3DDistance(a.geom, b.geom) AS distance,
           ST_3DShortestLine(a.geom, b.geom) AS sl
    FROM pipe_segment a
    JOIN pipe_segment b ON b.id + 0 > a.id AND b.dataset_id = ANY(:ds)
         AND ST_DWithin(a.geom, b.geom, :radius)
    WHERE a.dataset_id = ANY(:ds) AND {_area("a")}
      AND NOT (a.utility = ANY(:hidden)) AND NOT (b.utility = ANY(:hidden))
      AND a.start_node_id <> ALL(ARRAY[b.start_node_id, b.end_node_id])
      AND a.end_node_id <> ALL(ARRAY[b.start_node_id, b.end_node_id])
      AND ST_3DDWithin(a.geom, b.geom, {_radius("a")} + {_radius("b")})
      AND ST_3DDistance(a.geom, b.geom) < {_radius("a")} + {_radius("b")}
    OFFSET 0
) pairs
ORDER BY overlap DESC, aid, bid
"""

PIPE_ELEMENT_SQL = f"""
SELECT a.id, a.code, a.utility, e.id, e.guid, e.ifc_class, e.name,
       {_radius("a")} - ST_3DDistance(a.geom, e.mesh) AS overlap,
       ST_3DDistance(a.geom, e.mesh) AS distance,
       ST_X(ST_StartPoint(ST_3DShortestLine(a.geom, e.mesh))),
       ST_Y(ST_StartPoint(ST_3DShortestLine(a.geom, e.mesh))),
       ST_Z(ST_StartPoint(ST_3DShortestLine(a.geom, e.mesh)))
FROM pipe_segment a
JOIN building_element e ON e.mesh IS NOT NULL AND NOT e.is_space
     AND e.mesh && ST_Expand(a.geom, {_radius("a")})
WHERE a.dataset_id = ANY(:ds) AND {_area("a")} AND NOT (a.utility = ANY(:hidden))
  AND ST_3DDWithin(a.geom, e.mesh, {_radius("a")})
  AND ST_3DDistance(a.geom, e.mesh) < {_radius("a")}
ORDER BY overlap DESC, a.id, e.id
"""


def detect_clashes(
    session: Session,
    *,
    dataset_id: int | None = None,
    area: Any | None = None,
    kinds: tuple[str, ...] = ("pipe", "building"),
    limit: int = 1000,
    hidden_utilities: frozenset[str] = frozenset(),
) -> ClashReport:
    """Pipe-pipe and pipe-building-element clashes with location and overlap (m)."""
    unknown = set(kinds) - {"pipe", "building"}
    if unknown:
        raise InvalidInput(f"unknown clash kinds {sorted(unknown)}; use pipe, building")
    srid, datasets, area_ewkt = area_scope(session, dataset_id, area, limit)
    widest = float(
        session.execute(
            text(
                "SELECT COALESCE(max(GREATEST(COALESCE(diameter_mm, 0), COALESCE(width_mm, 0),"
                " COALESCE(height_mm, 0))), 0) / 2000.0"
                " FROM pipe_segment WHERE dataset_id = ANY(:ds)"
            ),
            {"ds": datasets},
        ).scalar_one()
    )
    no_jit(session)
    params = {
        "ds": datasets,
        "area": area_ewkt,
        "radius": 2 * widest + 0.001,
        "hidden": sorted(hidden_utilities),
    }
    clashes: list[Clash] = []
    total = 0
    if "pipe" in kinds and datasets:
        total += _keep(session.execute(text(PIPE_PIPE_SQL), params), _pipe_clash, clashes, limit)
    if "building" in kinds and datasets:
        rows = session.execute(text(PIPE_ELEMENT_SQL), params)
        total += _keep(rows, _element_clash, clashes, limit)
    return ClashReport(
        srid=srid,
        datasets=listed_datasets(session, datasets, hidden_utilities),
        clash_count=total,
        returned=len(clashes),
        truncated=total > len(clashes),
        clashes=clashes,
    )


def _keep(
    rows: Iterable[AnyRow],
    make: Callable[[AnyRow], Clash],
    kept: list[Clash],
    limit: int,
) -> int:
    """Append clashes made from ``rows`` to ``kept`` up to ``limit`` in all; count every row."""
    count = 0
    for r in rows:
        count += 1
        if count % bounds.CHECK_EVERY == 0:
            bounds.check_deadline("clashes: reading the pairs")
        if len(kept) < limit:
            kept.append(make(r))
    return count


def _pipe_side(r: AnyRow) -> PairSide:
    return PairSide(layer="pipe_segment", id=r[0], code=r[1], utility=r[2])


def _pipe_clash(r: AnyRow) -> Clash:
    return Clash(
        kind="pipe",
        a=_pipe_side(r),
        b=PairSide(layer="pipe_segment", id=r[3], code=r[4], utility=r[5]),
        overlap_m=round(float(r[6]), 3),
        distance_m=round(float(r[7]), 3),
        location=[round(float(v), 3) for v in r[8:11]],
    )


def _element_clash(r: AnyRow) -> Clash:
    return Clash(
        kind="building",
        a=_pipe_side(r),
        b=ElementSide(id=r[3], guid=r[4], ifc_class=r[5], name=r[6]),
        overlap_m=round(float(r[7]), 3),
        distance_m=round(float(r[8]), 3),
        location=[round(float(v), 3) for v in r[9:12]],
    )
