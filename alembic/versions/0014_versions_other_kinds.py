"""versions for shelters, population, city models and IFC: ``valid_from`` on their tables (issue 18)

A re-import of these kinds under the same dataset name becomes the dataset's next version
(``cim.services.versions``), like pipes since 0009: their feature tables get ``valid_from``, the
time the row's current content became valid. Existing rows are valid from their dataset's
version 1 (its import time), so ``datetime`` at that time finds them. Hazard zones and roads
have no stable key and stay unversioned.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED_TABLES = (
    "shelter",
    "population_unit",
    "building",
    "building_surface",
    "building_storey",
    "building_element",
)

BACKFILL = """
UPDATE {table} t SET valid_from = coalesce(
    (SELECT v.created_at FROM dataset_version v WHERE v.dataset_id = d.id AND v.version = 1),
    d.imported_at)
FROM dataset d WHERE d.id = t.dataset_id
"""


def upgrade() -> None:
    for table in VERSIONED_TABLES:
        op.add_column(
            table,
            sa.Column(
                "valid_from",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            ),
        )
        op.execute(BACKFILL.format(table=table))


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM feature_history WHERE table_name = ANY(:tables)").bindparams(
            tables=list(VERSIONED_TABLES)
        )
    )
    for table in VERSIONED_TABLES:
        op.drop_column(table, "valid_from")
