"""Ground heights under the pipes from the terrain DEM (``terrain_raster``, finest wins)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


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
