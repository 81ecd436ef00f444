"""road network: dataset kind ``roads`` and table ``road_segment`` in the storage SRID

The storage SRID is the one recorded in ``cim_setting`` by 0001 (falling back to
`config.attributes["srid"]` like 0001), so upgrading an existing database types the new
geometry column like every other one. Downgrade deletes the ``roads`` datasets (their segments
go with the table) before it restores the old kind constraint.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:50:00.000000
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_0001 = "('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards')"
KINDS_0002 = "('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards', 'roads')"


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
    op.drop_constraint(op.f("ck_dataset_kind"), "dataset", type_="check")
    op.create_check_constraint(op.f("ck_dataset_kind"), "dataset", f"kind IN {KINDS_0002}")
    op.create_geospatial_table(
        "road_segment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="LINESTRING",
                dimension=2,
                srid=srid,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("length", sa.Float(), nullable=False),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_road_segment_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_road_segment")),
    )
    op.create_geospatial_index(
        "idx_road_segment_geom",
        "road_segment",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_road_segment_dataset_id"), "road_segment", ["dataset_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_road_segment_dataset_id"), table_name="road_segment")
    op.drop_geospatial_index(
        "idx_road_segment_geom",
        table_name="road_segment",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("road_segment")
    # Rows of kind 'roads' would violate the old constraint; their segments are gone already.
    op.execute("DELETE FROM dataset WHERE kind = 'roads'")
    op.drop_constraint(op.f("ck_dataset_kind"), "dataset", type_="check")
    op.create_check_constraint(op.f("ck_dataset_kind"), "dataset", f"kind IN {KINDS_0001}")
