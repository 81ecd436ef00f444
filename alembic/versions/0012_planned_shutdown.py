"""planned pipe shutdowns: table ``pipe_shutdown_plan`` in the storage SRID (issue 19)

One row per planned shutdown of a water network: when (``starts_at`` < ``ends_at``), the valves
and pipes it closes, the ring it cuts off (segment and node ids and their lines, for overlap
tests) and whether it is still ``planned`` or ``cancelled``. The ring geometry is typed in the
storage SRID recorded by 0001, like every other geometry column.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 16:30:00.000000
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


def _ids(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        postgresql.ARRAY(sa.BigInteger()),
        server_default=sa.text("'{}'::bigint[]"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_geospatial_table(
        "pipe_shutdown_plan",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        _ids("valve_ids"),
        _ids("segment_ids"),
        _ids("ring_segment_ids"),
        _ids("ring_node_ids"),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTILINESTRINGZ",
                srid=_storage_srid(),
                dimension=3,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "impact",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), server_default="planned", nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_pipe_shutdown_plan_period")),
        sa.CheckConstraint(
            "status IN ('planned', 'cancelled')", name=op.f("ck_pipe_shutdown_plan_status")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_pipe_shutdown_plan_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipe_shutdown_plan")),
    )
    op.create_geospatial_index(
        "idx_pipe_shutdown_plan_geom",
        "pipe_shutdown_plan",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_pipe_shutdown_plan_dataset_id"),
        "pipe_shutdown_plan",
        ["dataset_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pipe_shutdown_plan_dataset_id"), table_name="pipe_shutdown_plan")
    op.drop_geospatial_index(
        "idx_pipe_shutdown_plan_geom",
        table_name="pipe_shutdown_plan",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("pipe_shutdown_plan")
