"""Ground heights under the pipes from the terrain DEM (``terrain_raster``, finest wins)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def has_terrain(session: Session) -> bool:
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM terrain_raster)")).scalar())


def terrain_heights(
    session: Session, points: list[tuple[float, float]], srid: int
) -> list[float | None]:
    """Ground height at each point from ``terrain_raster`` (finest DEM wins); None off the DEM.

    One statement for all the points: the DEM tiles under their extent are read once (band 1
    only), not once per point, and the points are materialised so that the raster test uses
    the GiST index on the tiles' hulls (an inlined point expression defeats it).
    """
    if not points:
        return []
    rows = session.execute(
        text(
            """
            WITH p AS MATERIALIZED (
                SELECT ord, ST_SetSRID(ST_MakePoint(x, y), :srid) AS g
                FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]))
                     WITH ORDINALITY AS u(x, y, ord)
            ), r AS MATERIALIZED (
                SELECT t.resolution, ST_Band(t.rast, ARRAY[1]) AS rast
                FROM terrain_raster t
                WHERE ST_ConvexHull(t.rast) && (SELECT ST_SetSRID(ST_Extent(g), :srid) FROM p)
            )
            SELECT DISTINCT ON (p.ord) p.ord, v.z
            FROM p
            JOIN r ON ST_Intersects(r.rast, p.g)
            CROSS JOIN LATERAL (SELECT ST_Value(r.rast, 1, p.g) AS z) AS v
            WHERE v.z IS NOT NULL
            ORDER BY p.ord, r.resolution
            """
        ),
        {"xs": [p[0] for p in points], "ys": [p[1] for p in points], "srid": srid},
    ).all()
    heights: list[float | None] = [None] * len(points)
    for ord_, z in rows:
        heights[ord_ - 1] = float(z)
    return heights
