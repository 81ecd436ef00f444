"""``building.superseded_by``: a city-model block replaced by the IFC building that stands there

See ``cim.services.buildings.supersede``: a block overlapping an IFC building by at least half of
the smaller footprint points at it; tiles hide such blocks. Existing rows are linked here once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK_EXISTING = """
WITH pairs AS (
    SELECT c.id AS block_id, b.id AS bim_id,
           ST_Area(ST_Intersection(c.footprint, b.footprint)) AS overlap,
           least(ST_Area(c.footprint), ST_Area(b.footprint)) AS smaller
    FROM building c
    JOIN dataset dc ON dc.id = c.dataset_id AND dc.kind = 'buildings'
    JOIN building b ON ST_Intersects(b.footprint, c.footprint)
    JOIN dataset db ON db.id = b.dataset_id AND db.kind = 'ifc'
), best AS (
    SELECT DISTINCT ON (block_id) block_id, bim_id FROM pairs
    WHERE smaller > 0 AND overlap >= 0.5 * smaller
    ORDER BY block_id, overlap DESC, bim_id
)
UPDATE building SET superseded_by = best.bim_id FROM best WHERE building.id = best.block_id
"""


def upgrade() -> None:
    op.add_column("building", sa.Column("superseded_by", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_building_superseded_by_building"),
        "building",
        "building",
        ["superseded_by"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_building_superseded_by"), "building", ["superseded_by"])
    op.execute(LINK_EXISTING)


def downgrade() -> None:
    op.drop_index(op.f("ix_building_superseded_by"), table_name="building")
    op.drop_constraint(op.f("fk_building_superseded_by_building"), "building", type_="foreignkey")
    op.drop_column("building", "superseded_by")
