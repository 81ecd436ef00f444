"""city-model buildings: dataset kind ``buildings``, new ``building`` columns, ``building_surface``

City models (CityJSON, later CityGML and footprints) share the ``building`` table with IFC so the
OGC ``buildings`` collection and the tiles read one table. The new columns are nullable (IFC rows
leave them empty): ``source_id`` (the source's stable id), ``lods`` (e.g. ``{1,2.2}``),
``height``, ``storeys``, ``function``, ``year``. ``building_surface`` holds the triangulated faces
of each building, one row per (LoD, semantic class), in the storage SRID recorded by 0001.
Downgrade deletes the ``buildings`` datasets (their rows cascade) before it restores the kinds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 08:10:00.000000
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_0002 = "('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards', 'roads')"
KINDS_0004 = (
    "('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards', 'roads', 'buildings')"
)
BUILDING_COLUMNS: dict[str, sa.types.TypeEngine[object]] = {
    "source_id": sa.Text(),
    "lods": postgresql.ARRAY(sa.Text()),
    "height": sa.Float(),
    "storeys": sa.Integer(),
    "function": sa.Text(),
    "year": sa.Integer(),
}


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
    op.create_check_constraint(op.f("ck_dataset_kind"), "dataset", f"kind IN {KINDS_0004}")
    for name, type_ in BUILDING_COLUMNS.items():
        op.add_column("building", sa.Column(name, type_, nullable=True))
    op.create_geospatial_table(
        "building_surface",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=False),
        sa.Column("lod", sa.Text(), nullable=False),
        sa.Column("semantic", sa.Text(), nullable=True),
        sa.Column("triangle_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGONZ",
                dimension=3,
                srid=srid,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["building.id"],
            name=op.f("fk_building_surface_building_id_building"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_building_surface_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_building_surface")),
    )
    op.create_geospatial_index(
        "idx_building_surface_geom",
        "building_surface",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_building_surface_dataset_id"), "building_surface", ["dataset_id"], unique=False
    )
    op.create_index(
        op.f("ix_building_surface_building_id"), "building_surface", ["building_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_building_surface_building_id"), table_name="building_surface")
    op.drop_index(op.f("ix_building_surface_dataset_id"), table_name="building_surface")
    op.drop_geospatial_index(
        "idx_building_surface_geom",
        table_name="building_surface",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("building_surface")
    # Rows of kind 'buildings' would violate the old constraint; their rows cascade with them.
    op.execute("DELETE FROM dataset WHERE kind = 'buildings'")
    for name in reversed(BUILDING_COLUMNS):
        op.drop_column("building", name)
    op.drop_constraint(op.f("ck_dataset_kind"), "dataset", type_="check")
    op.create_check_constraint(op.f("ck_dataset_kind"), "dataset", f"kind IN {KINDS_0002}")
