"""Dataset versions and feature history: a re-import is a new version, the old one stays readable

``dataset_version`` lists the versions of each dataset (1 = the first import). Versioned feature
tables (the pipe network) get ``valid_from``: the time the row's current content became valid.
When a version changes or removes a feature, the row as it was goes to ``feature_history``
(its full content as JSONB, its geometry as a column for bounding-box search) with the interval
it was valid; the current row keeps its id. Unchanged features are shared, never copied. See
``cim.services.versions``. Existing datasets become version 1, valid from their import.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 13:00:00.000000
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED_TABLES = ("pipe_node", "pipe_segment")

FIRST_VERSIONS = """
INSERT INTO dataset_version (dataset_id, version, created_at, source_name, source_sha256,
                             counts, changes)
SELECT id, 1, imported_at, source_name, source_sha256, counts, '{}'::jsonb
FROM dataset
"""


def _storage_srid() -> int:
    recorded = (
        op.get_bind()
        .execute(sa.text("SELECT value FROM cim_setting WHERE key = 'storage_srid'"))
        .scalar_one_or_none()
    )
    if recorded is not None:
        return int(recorded)
    srid = op.get_context().config.attributes.get("srid") if op.get_context().config else None
    return int(srid or os.environ.get("CIM_SRID") or 4547)


def upgrade() -> None:
    srid = _storage_srid()
    op.create_table(
        "dataset_version",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "dataset.id", ondelete="CASCADE", name="fk_dataset_version_dataset_id_dataset"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column(
            "counts", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "changes", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_version_dataset_id_version"),
    )
    op.create_index("ix_dataset_version_dataset_id", "dataset_version", ["dataset_id"])
    op.create_table(
        "feature_history",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "dataset.id", ondelete="CASCADE", name="fk_feature_history_dataset_id_dataset"
            ),
            nullable=False,
        ),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("feature_id", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row", postgresql.JSONB(), nullable=False),
        sa.Column("geom", Geometry("GEOMETRYZ", srid=srid, spatial_index=False), nullable=True),
    )
    op.create_index(
        "ix_feature_history_table_valid",
        "feature_history",
        ["table_name", "valid_to", "valid_from"],
    )
    op.create_index("ix_feature_history_dataset_id", "feature_history", ["dataset_id"])
    op.create_index("ix_feature_history_feature", "feature_history", ["table_name", "feature_id"])
    op.create_index("ix_feature_history_geom", "feature_history", ["geom"], postgresql_using="gist")
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
        op.execute(
            f"UPDATE {table} t SET valid_from = d.imported_at"
            f" FROM dataset d WHERE d.id = t.dataset_id"
        )
    op.execute(FIRST_VERSIONS)


def downgrade() -> None:
    for table in VERSIONED_TABLES:
        op.drop_column(table, "valid_from")
    op.drop_table("feature_history")
    op.drop_table("dataset_version")
