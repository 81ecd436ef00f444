"""initial schema: every table of DESIGN.md in the storage SRID

The storage SRID comes from `config.attributes["srid"]` (set by `cim db upgrade` from CIM_SRID,
default 4547) and is recorded in `cim_setting`; geometry columns are typed with it.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 22:59:24.307634
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from geoalchemy2 import Geometry, Raster
from sqlalchemy.dialects import postgresql

from alembic import op
from cim.db.base import Box3D

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _storage_srid() -> int:
    srid = op.get_context().config.attributes.get("srid") if op.get_context().config else None
    return int(srid or os.environ.get("CIM_SRID") or 4547)


SRID = 4547  # replaced by _storage_srid() when upgrade() runs


def upgrade() -> None:
    global SRID
    SRID = _storage_srid()
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis_raster")
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_available_extensions"
        " WHERE name = 'postgis_sfcgal') THEN CREATE EXTENSION IF NOT EXISTS postgis_sfcgal;"
        " END IF; END $$"
    )
    known = op.get_bind().execute(
        sa.text("SELECT 1 FROM spatial_ref_sys WHERE srid = :srid"), {"srid": SRID}
    )
    if known.first() is None:
        raise RuntimeError(f"EPSG:{SRID} is not a known SRID in spatial_ref_sys")
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('reader', 'analyst', 'admin')", name=op.f("ck_api_key_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "cim_setting",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cim_setting")),
    )
    op.create_table(
        "dataset",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("source_crs", sa.Text(), nullable=True),
        sa.Column("transform", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="loading", nullable=False),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "qc",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards')",
            name=op.f("ck_dataset_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('loading', 'ready', 'failed')", name=op.f("ck_dataset_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
    )
    op.create_index(
        "ix_dataset_kind_source_sha256", "dataset", ["kind", "source_sha256"], unique=False
    )
    op.create_table(
        "import_job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("progress", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("dataset_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_import_job_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
    )
    op.create_table(
        "shelter_plan",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shelter_plan")),
    )
    op.create_table(
        "tileset",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), server_default="1.1", nullable=False),
        sa.Column(
            "dataset_versions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "built_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tileset")),
        sa.UniqueConstraint("layer", name=op.f("uq_tileset_layer")),
    )
    op.create_geospatial_table(
        "building",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("guid", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "footprint",
            Geometry(
                geometry_type="MULTIPOLYGON",
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("base_z", sa.Float(), nullable=True),
        sa.Column("top_z", sa.Float(), nullable=True),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_building_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_building")),
    )
    op.create_geospatial_index(
        "idx_building_footprint",
        "building",
        ["footprint"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_building_dataset_id"), "building", ["dataset_id"], unique=False)
    op.create_index(op.f("ix_building_guid"), "building", ["guid"], unique=False)
    op.create_geospatial_table(
        "hazard_zone",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_hazard_zone_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hazard_zone")),
    )
    op.create_geospatial_index(
        "idx_hazard_zone_geom",
        "hazard_zone",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_hazard_zone_dataset_id"), "hazard_zone", ["dataset_id"], unique=False)
    op.create_index(op.f("ix_hazard_zone_kind"), "hazard_zone", ["kind"], unique=False)
    op.create_geospatial_table(
        "pipe_node",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("utility", sa.String(length=8), nullable=False),
        sa.Column("subclass", sa.String(length=8), nullable=True),
        sa.Column("kind", sa.Text(), server_default="junction", nullable=False),
        sa.Column("feature", sa.Text(), nullable=True),
        sa.Column("appurtenance", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINTZ",
                dimension=3,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("ground_z", sa.Float(), nullable=True),
        sa.Column("bottom_z", sa.Float(), nullable=True),
        sa.Column("valve_state", sa.String(length=16), nullable=True),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "valve_state IS NULL OR valve_state IN ('open', 'closed', 'broken', 'inaccessible')",
            name=op.f("ck_pipe_node_valve_state"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_pipe_node_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipe_node")),
    )
    op.create_geospatial_index(
        "idx_pipe_node_geom",
        "pipe_node",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_pipe_node_code"), "pipe_node", ["code"], unique=False)
    op.create_index(op.f("ix_pipe_node_dataset_id"), "pipe_node", ["dataset_id"], unique=False)
    op.create_index(op.f("ix_pipe_node_utility"), "pipe_node", ["utility"], unique=False)
    op.create_geospatial_table(
        "population_unit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("population", sa.Float(), nullable=False),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_population_unit_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_population_unit")),
    )
    op.create_geospatial_index(
        "idx_population_unit_geom",
        "population_unit",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_population_unit_dataset_id"), "population_unit", ["dataset_id"], unique=False
    )
    op.create_geospatial_table(
        "shelter",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "entrances",
            Geometry(
                geometry_type="MULTIPOINT",
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("effective_area", sa.Float(), nullable=True),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "level IN ('emergency', 'short', 'medium', 'long', 'central')",
            name=op.f("ck_shelter_level"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_shelter_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shelter")),
    )
    op.create_geospatial_index(
        "idx_shelter_geom",
        "shelter",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_shelter_dataset_id"), "shelter", ["dataset_id"], unique=False)
    op.create_geospatial_table(
        "terrain_raster",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("resolution", sa.Float(), nullable=False),
        sa.Column(
            "rast",
            Raster(spatial_index=False, from_text="raster", name="raster", nullable=False),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_terrain_raster_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terrain_raster")),
    )
    op.create_index(
        op.f("ix_terrain_raster_dataset_id"), "terrain_raster", ["dataset_id"], unique=False
    )
    op.create_table(
        "building_storey",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("guid", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("elevation", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["building.id"],
            name=op.f("fk_building_storey_building_id_building"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_building_storey_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_building_storey")),
    )
    op.create_index(
        op.f("ix_building_storey_building_id"), "building_storey", ["building_id"], unique=False
    )
    op.create_index(
        op.f("ix_building_storey_dataset_id"), "building_storey", ["dataset_id"], unique=False
    )
    op.create_index(op.f("ix_building_storey_guid"), "building_storey", ["guid"], unique=False)
    op.create_geospatial_table(
        "pipe_segment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("utility", sa.String(length=8), nullable=False),
        sa.Column("subclass", sa.String(length=8), nullable=True),
        sa.Column("link_type", sa.Text(), server_default="pipe", nullable=False),
        sa.Column("start_node_id", sa.BigInteger(), nullable=False),
        sa.Column("end_node_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="LINESTRINGZ",
                dimension=3,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("start_invert_z", sa.Float(), nullable=True),
        sa.Column("end_invert_z", sa.Float(), nullable=True),
        sa.Column("start_top_z", sa.Float(), nullable=True),
        sa.Column("end_top_z", sa.Float(), nullable=True),
        sa.Column("section_shape", sa.String(length=16), server_default="circular", nullable=False),
        sa.Column("diameter_mm", sa.Float(), nullable=True),
        sa.Column("width_mm", sa.Float(), nullable=True),
        sa.Column("height_mm", sa.Float(), nullable=True),
        sa.Column("material", sa.Text(), nullable=True),
        sa.Column("pressure", sa.Text(), nullable=True),
        sa.Column("voltage", sa.Text(), nullable=True),
        sa.Column("cable_count", sa.Integer(), nullable=True),
        sa.Column("hole_total", sa.Integer(), nullable=True),
        sa.Column("hole_used", sa.Integer(), nullable=True),
        sa.Column("burial", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("length_m", sa.Float(), nullable=True),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "section_shape IN ('circular', 'rectangular', 'other')",
            name=op.f("ck_pipe_segment_section_shape"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_pipe_segment_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["end_node_id"],
            ["pipe_node.id"],
            name=op.f("fk_pipe_segment_end_node_id_pipe_node"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["start_node_id"],
            ["pipe_node.id"],
            name=op.f("fk_pipe_segment_start_node_id_pipe_node"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipe_segment")),
    )
    op.create_geospatial_index(
        "idx_pipe_segment_geom",
        "pipe_segment",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_pipe_segment_code"), "pipe_segment", ["code"], unique=False)
    op.create_index(
        op.f("ix_pipe_segment_dataset_id"), "pipe_segment", ["dataset_id"], unique=False
    )
    op.create_index(
        op.f("ix_pipe_segment_end_node_id"), "pipe_segment", ["end_node_id"], unique=False
    )
    op.create_index(
        op.f("ix_pipe_segment_start_node_id"), "pipe_segment", ["start_node_id"], unique=False
    )
    op.create_index(op.f("ix_pipe_segment_utility"), "pipe_segment", ["utility"], unique=False)
    op.create_table(
        "shelter_assignment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("shelter_id", sa.BigInteger(), nullable=True),
        sa.Column("unit_id", sa.BigInteger(), nullable=False),
        sa.Column("persons", sa.Float(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["shelter_plan.id"],
            name=op.f("fk_shelter_assignment_plan_id_shelter_plan"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shelter_id"],
            ["shelter.id"],
            name=op.f("fk_shelter_assignment_shelter_id_shelter"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["population_unit.id"],
            name=op.f("fk_shelter_assignment_unit_id_population_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shelter_assignment")),
    )
    op.create_index(
        op.f("ix_shelter_assignment_plan_id"), "shelter_assignment", ["plan_id"], unique=False
    )
    op.create_index(
        op.f("ix_shelter_assignment_shelter_id"), "shelter_assignment", ["shelter_id"], unique=False
    )
    op.create_index(
        op.f("ix_shelter_assignment_unit_id"), "shelter_assignment", ["unit_id"], unique=False
    )
    op.create_geospatial_table(
        "shelter_zone",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("shelter_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("population", sa.Float(), nullable=False),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column("load_ratio", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["shelter_plan.id"],
            name=op.f("fk_shelter_zone_plan_id_shelter_plan"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shelter_id"],
            ["shelter.id"],
            name=op.f("fk_shelter_zone_shelter_id_shelter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shelter_zone")),
    )
    op.create_geospatial_index(
        "idx_shelter_zone_geom",
        "shelter_zone",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_shelter_zone_plan_id"), "shelter_zone", ["plan_id"], unique=False)
    op.create_index(
        op.f("ix_shelter_zone_shelter_id"), "shelter_zone", ["shelter_id"], unique=False
    )
    op.create_geospatial_table(
        "building_element",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("storey_id", sa.BigInteger(), nullable=True),
        sa.Column("guid", sa.Text(), nullable=False),
        sa.Column("ifc_class", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("is_space", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "psets",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("material", sa.Text(), nullable=True),
        sa.Column("color", postgresql.ARRAY(sa.Float()), nullable=True),
        sa.Column("triangle_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "mesh",
            Geometry(
                geometry_type="MULTIPOLYGONZ",
                dimension=3,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "footprint",
            Geometry(
                geometry_type="MULTIPOLYGON",
                dimension=2,
                srid=SRID,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("bbox3d", Box3D(), nullable=True),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["building.id"],
            name=op.f("fk_building_element_building_id_building"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_building_element_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["storey_id"],
            ["building_storey.id"],
            name=op.f("fk_building_element_storey_id_building_storey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_building_element")),
    )
    op.create_geospatial_index(
        "idx_building_element_footprint",
        "building_element",
        ["footprint"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_building_element_mesh",
        "building_element",
        ["mesh"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_building_element_building_id"), "building_element", ["building_id"], unique=False
    )
    op.create_index(
        op.f("ix_building_element_dataset_id"), "building_element", ["dataset_id"], unique=False
    )
    op.create_index(op.f("ix_building_element_guid"), "building_element", ["guid"], unique=False)
    op.create_index(
        op.f("ix_building_element_ifc_class"), "building_element", ["ifc_class"], unique=False
    )
    op.create_index(
        op.f("ix_building_element_storey_id"), "building_element", ["storey_id"], unique=False
    )

    op.execute(
        "CREATE INDEX ix_terrain_raster_rast_hull ON terrain_raster"
        " USING gist (ST_ConvexHull(rast))"
    )
    op.create_index("ix_pipe_node_dataset_id_code", "pipe_node", ["dataset_id", "code"])
    op.create_index("ix_pipe_segment_dataset_id_code", "pipe_segment", ["dataset_id", "code"])
    op.create_index(
        "ix_building_element_dataset_id_guid", "building_element", ["dataset_id", "guid"]
    )
    op.execute(
        sa.text("INSERT INTO cim_setting (key, value) VALUES ('storage_srid', :srid)").bindparams(
            srid=str(SRID)
        )
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_building_element_storey_id"), table_name="building_element")
    op.drop_index(op.f("ix_building_element_ifc_class"), table_name="building_element")
    op.drop_index(op.f("ix_building_element_guid"), table_name="building_element")
    op.drop_index(op.f("ix_building_element_dataset_id"), table_name="building_element")
    op.drop_index(op.f("ix_building_element_building_id"), table_name="building_element")
    op.drop_geospatial_index(
        "idx_building_element_mesh",
        table_name="building_element",
        postgresql_using="gist",
        column_name="mesh",
    )
    op.drop_geospatial_index(
        "idx_building_element_footprint",
        table_name="building_element",
        postgresql_using="gist",
        column_name="footprint",
    )
    op.drop_geospatial_table("building_element")
    op.drop_index(op.f("ix_shelter_zone_shelter_id"), table_name="shelter_zone")
    op.drop_index(op.f("ix_shelter_zone_plan_id"), table_name="shelter_zone")
    op.drop_geospatial_index(
        "idx_shelter_zone_geom",
        table_name="shelter_zone",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("shelter_zone")
    op.drop_index(op.f("ix_shelter_assignment_unit_id"), table_name="shelter_assignment")
    op.drop_index(op.f("ix_shelter_assignment_shelter_id"), table_name="shelter_assignment")
    op.drop_index(op.f("ix_shelter_assignment_plan_id"), table_name="shelter_assignment")
    op.drop_table("shelter_assignment")
    op.drop_index(op.f("ix_pipe_segment_utility"), table_name="pipe_segment")
    op.drop_index(op.f("ix_pipe_segment_start_node_id"), table_name="pipe_segment")
    op.drop_index(op.f("ix_pipe_segment_end_node_id"), table_name="pipe_segment")
    op.drop_index(op.f("ix_pipe_segment_dataset_id"), table_name="pipe_segment")
    op.drop_index(op.f("ix_pipe_segment_code"), table_name="pipe_segment")
    op.drop_geospatial_index(
        "idx_pipe_segment_geom",
        table_name="pipe_segment",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("pipe_segment")
    op.drop_index(op.f("ix_building_storey_guid"), table_name="building_storey")
    op.drop_index(op.f("ix_building_storey_dataset_id"), table_name="building_storey")
    op.drop_index(op.f("ix_building_storey_building_id"), table_name="building_storey")
    op.drop_table("building_storey")
    op.drop_index(op.f("ix_terrain_raster_dataset_id"), table_name="terrain_raster")
    op.drop_geospatial_table("terrain_raster")
    op.drop_index(op.f("ix_shelter_dataset_id"), table_name="shelter")
    op.drop_geospatial_index(
        "idx_shelter_geom", table_name="shelter", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("shelter")
    op.drop_index(op.f("ix_population_unit_dataset_id"), table_name="population_unit")
    op.drop_geospatial_index(
        "idx_population_unit_geom",
        table_name="population_unit",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("population_unit")
    op.drop_index(op.f("ix_pipe_node_utility"), table_name="pipe_node")
    op.drop_index(op.f("ix_pipe_node_dataset_id"), table_name="pipe_node")
    op.drop_index(op.f("ix_pipe_node_code"), table_name="pipe_node")
    op.drop_geospatial_index(
        "idx_pipe_node_geom", table_name="pipe_node", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("pipe_node")
    op.drop_index(op.f("ix_hazard_zone_kind"), table_name="hazard_zone")
    op.drop_index(op.f("ix_hazard_zone_dataset_id"), table_name="hazard_zone")
    op.drop_geospatial_index(
        "idx_hazard_zone_geom",
        table_name="hazard_zone",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("hazard_zone")
    op.drop_index(op.f("ix_building_guid"), table_name="building")
    op.drop_index(op.f("ix_building_dataset_id"), table_name="building")
    op.drop_geospatial_index(
        "idx_building_footprint",
        table_name="building",
        postgresql_using="gist",
        column_name="footprint",
    )
    op.drop_geospatial_table("building")
    op.drop_table("tileset")
    op.drop_table("shelter_plan")
    op.drop_table("import_job")
    op.drop_index("ix_dataset_kind_source_sha256", table_name="dataset")
    op.drop_table("dataset")
    op.drop_table("cim_setting")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_key")
