"""city models: no spatial index on ``building_surface.geom`` (issue 17)

A surface row holds the triangles of one building, LoD and semantic class; nothing looks them
up by location: tiles read them by id, ``?lod=`` and every bbox filter test the building's
footprint (indexed), and the BIM-to-block link compares footprints. The GiST index was kept up
row by row on every import: three surfaces a LOD1 block, so three R-tree insertions of a
building's whole box for each building, the largest part of a footprint import's server time.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 04:35:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_geospatial_index(
        "idx_building_surface_geom",
        table_name="building_surface",
        postgresql_using="gist",
        column_name="geom",
    )


def downgrade() -> None:
    op.create_geospatial_index(
        "idx_building_surface_geom",
        "building_surface",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
