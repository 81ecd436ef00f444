"""city models: the 3D box of each ``building_surface`` stored beside its triangles (issue 17)

Why: tiling a city reads the box of every surface (the tile tree is cut from them), and
``Box3D(geom)`` parses every surface's triangles on the server: 3.5 of the 5.6 s of server time
of the index query at 200k buildings. The importer knows the triangles' extent anyway and writes
it. Rows written before this migration (or by a writer that leaves the columns NULL) have their
box computed from ``geom`` at tiling time, as before, so nothing is backfilled here.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("building_surface", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("building_surface", name)
