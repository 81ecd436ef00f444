"""BIM supersedes the block: link an IFC building to the city-model buildings it stands in for.

A city has LOD1/LOD2 blocks for every building and BIM for a few hundred. Where both exist the
BIM model is the better one, so CIM platforms show the IFC model in its place and hide the block.
cim links them when either side becomes ready: a city-model building whose footprint overlaps an
IFC building's footprint by at least half of the smaller of the two footprints gets
``building.superseded_by`` = the IFC building's id (the IFC building with the largest overlap
when several qualify). The tiles leave superseded blocks out; the OGC ``buildings`` collection
exposes the link (``superseded_by``; the blocks an IFC building replaces are
``filter=superseded_by = <id>``). Deleting the IFC dataset clears the link (``ON DELETE SET
NULL``), so the block shows again; re-importing it links anew.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Share of the smaller footprint two buildings must overlap by to be the same building.
MIN_OVERLAP_SHARE = 0.5

_LINK_SQL = """
WITH bim AS MATERIALIZED (
    SELECT b.id, b.dataset_id, b.footprint
    FROM building b
    JOIN dataset db ON db.id = b.dataset_id AND db.kind = 'ifc'
    WHERE b.footprint IS NOT NULL AND (db.status = 'ready' OR db.id = :dataset)
), pairs AS (
    SELECT c.id AS block_id, bim.id AS bim_id,
           ST_Area(ST_Intersection(c.footprint, bim.footprint)) AS overlap,
           least(ST_Area(c.footprint), ST_Area(bim.footprint)) AS smaller
    FROM bim
    JOIN building c ON c.footprint && bim.footprint AND ST_Intersects(bim.footprint, c.footprint)
    JOIN dataset dc ON dc.id = c.dataset_id AND dc.kind = 'buildings'
    WHERE (c.dataset_id = :dataset OR bim.dataset_id = :dataset)
      AND (dc.status = 'ready' OR dc.id = :dataset)
), best AS (
    SELECT DISTINCT ON (block_id) block_id, bim_id
    FROM pairs WHERE smaller > 0 AND overlap >= :share * smaller
    ORDER BY block_id, overlap DESC, bim_id
)
UPDATE building SET superseded_by = best.bim_id
FROM best WHERE building.id = best.block_id
  AND building.superseded_by IS DISTINCT FROM best.bim_id
"""
"""Driven from the IFC buildings (a few hundred in a city, often none), materialised first: the
planner cannot then start from the blocks, whose statistics are stale inside the importing
transaction (it believed the freshly copied table empty and joined 100,000 new blocks with
each other in a nested loop, for tens of minutes)."""


def link_bim_to_blocks(session: Session, *, dataset_id: int) -> int:
    """Link the blocks and IFC buildings that involve ``dataset_id``; the number of blocks linked.

    Runs inside the importing transaction (before it commits), so the links arrive with the
    data or not at all. A transaction-scoped advisory lock serialises linking, so an IFC model
    and a city model imported at the same time still see each other's committed rows.
    """
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('cim:bim-blocks', 0))"))
    result = session.execute(text(_LINK_SQL), {"dataset": dataset_id, "share": MIN_OVERLAP_SHARE})
    return int(getattr(result, "rowcount", 0) or 0)
