"""The Alembic history: up to head, down to base, up again; the storage SRID is recorded."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import inspect, text

from cim.db import migrate
from cim.db.engine import make_engine
from cim.errors import ConfigError
from tests.conftest import create_database

PARTITION = re.compile(r"sensor_observation_(default|p\d{6})")

TABLES = {
    "dataset",
    "building_surface",
    "terrain_raster",
    "building",
    "building_storey",
    "building_element",
    "pipe_node",
    "pipe_segment",
    "shelter",
    "population_unit",
    "hazard_zone",
    "shelter_plan",
    "shelter_assignment",
    "shelter_zone",
    "tileset",
    "road_segment",
    "pipe_shutdown_plan",
}


def test_upgrade_downgrade_upgrade_and_srid(server_url: str) -> None:
    engine = make_engine(create_database(server_url, "cim_migrations"))
    try:
        assert migrate.upgrade(engine, srid=None, default_srid=4547) == 4547
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            srids = conn.execute(text("SELECT DISTINCT srid FROM geometry_columns")).scalars().all()
            assert srids == [4547]
            assert migrate.recorded_srid(conn) == 4547
            fks = conn.execute(
                text(
                    "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confdeltype = 'c' "
                    "AND confrelid = 'dataset'::regclass"
                )
            ).scalar_one()
            assert fks == 14  # every data table cascades from dataset (versions, shutdown plans)
            unindexed = (
                conn.execute(
                    text(
                        "SELECT f_table_name || '.' || f_geometry_column FROM geometry_columns g "
                        "WHERE NOT EXISTS (SELECT 1 FROM pg_indexes i"
                        " WHERE i.tablename = g.f_table_name"
                        " AND i.indexdef ILIKE '%USING gist (' || g.f_geometry_column || ')%')"
                    )
                )
                .scalars()
                .all()
            )
            # every other geometry has a GiST index; surfaces are found through their building
            assert sorted(unindexed) == ["building_surface.geom", "shelter.entrances"]
            assert (
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_indexes"
                        " WHERE indexname = 'ix_terrain_raster_rast_hull'"
                    )
                ).scalar_one()
                == 1
            )

        with pytest.raises(ConfigError, match="EPSG:4547"):
            migrate.upgrade(engine, srid=3857, default_srid=4547)

        migrate.downgrade(engine, revision="base")
        with engine.connect() as conn:
            assert not (TABLES & set(inspect(conn).get_table_names()))
        assert migrate.current_revision(engine) is None

        # A fresh start may pick another storage CRS, and records it.
        assert migrate.upgrade(engine, srid=32650, default_srid=4547) == 32650
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT DISTINCT srid FROM geometry_columns")
            ).scalars().all() == [32650]
        migrate.downgrade(engine, revision="base")
    finally:
        engine.dispose()


def test_unknown_srid_is_refused(server_url: str) -> None:
    engine = make_engine(create_database(server_url, "cim_badsrid"))
    try:
        with pytest.raises(Exception, match="999999"):
            migrate.upgrade(engine, srid=999999, default_srid=4547)
        assert migrate.current_revision(engine) is None  # the failed upgrade left nothing
    finally:
        engine.dispose()


# Indexes the migrations add beyond the models (composite lookups, the raster hull).
MIGRATION_ONLY_INDEXES = {
    "ix_building_element_dataset_id_guid",
    "ix_terrain_raster_rast_hull",
}


@pytest.mark.filterwarnings("ignore:Did not recognize type 'box3d'")  # reflected as NullType
def test_models_match_the_migrated_schema(server_url: str) -> None:
    """Autogenerate finds nothing to do but the storage SRID the models leave open."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from geoalchemy2 import Geometry, alembic_helpers

    from cim.db import models  # noqa: F401  (fills Base.metadata)
    from cim.db.base import Base

    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        if type_ == "table" and name in {"spatial_ref_sys", "layer", "topology"}:
            return False  # postgis_raster/tiger/topology tables, as in alembic/env.py
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        if PARTITION.fullmatch(table or ""):
            return False  # month partitions of sensor_observation, as in alembic/env.py
        return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)

    engine = make_engine(create_database(server_url, "cim_autogenerate"))
    try:
        migrate.upgrade(engine, srid=None, default_srid=4547)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_object": include, "compare_type": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    left = []
    for change in diff:
        is_tuple = isinstance(change, tuple)
        if is_tuple and change[0] == "remove_index" and change[1].name in MIGRATION_ONLY_INDEXES:
            continue
        if isinstance(change, list) and all(
            step[0] == "modify_type" and isinstance(step[-1], Geometry) for step in change
        ):
            continue  # srid -1 in the models, the recorded storage SRID in the database
        left.append(change)
    assert left == []
