"""Migration 0002 on a database that already holds data: roads kind, road_segment, downgrade."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError

from cim.db import migrate
from cim.db.engine import make_engine
from tests.conftest import create_database

INSERT_DATASET = (
    "INSERT INTO dataset (kind, name, source_name, source_sha256, status) "
    "VALUES (:kind, 'x', 'x', repeat('0', 64), 'ready') RETURNING id"
)


def test_0001_to_0002_keeps_data_and_types_roads_in_the_recorded_srid(server_url: str) -> None:
    engine = make_engine(create_database(server_url, "cim_migration_roads"))
    try:
        # A database initialised in UTM 50N before roads existed.
        migrate.upgrade(engine, srid=32650, default_srid=4547, revision="0001")
        with engine.begin() as conn:
            shelters = conn.execute(text(INSERT_DATASET), {"kind": "shelters"}).scalar_one()
            with pytest.raises(IntegrityError, match="ck_dataset_kind"), conn.begin_nested():
                conn.execute(text(INSERT_DATASET), {"kind": "roads"})
        # CIM_SRID unset: the recorded SRID is used for the new column.
        assert migrate.upgrade(engine, srid=None, default_srid=4547) == 32650
        with engine.begin() as conn:
            srid = conn.execute(
                text("SELECT srid FROM geometry_columns WHERE f_table_name = 'road_segment'")
            ).scalar_one()
            assert srid == 32650
            roads = conn.execute(text(INSERT_DATASET), {"kind": "roads"}).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO road_segment (dataset_id, geom, length) VALUES "
                    "(:d, ST_GeomFromText('LINESTRING(0 0, 3 4)', 32650), 5)"
                ),
                {"d": roads},
            )
            assert (
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_indexes WHERE tablename = 'road_segment' "
                        "AND indexdef ILIKE '%USING gist (geom)%'"
                    )
                ).scalar_one()
                == 1
            )
            with pytest.raises(DataError, match="does not match column type"), conn.begin_nested():
                conn.execute(
                    text(
                        "INSERT INTO road_segment (dataset_id, geom, length) VALUES "
                        "(:d, ST_GeomFromText('POINT(0 0)', 32650), 0)"
                    ),
                    {"d": roads},
                )
            conn.execute(text("DELETE FROM dataset WHERE id = :d"), {"d": roads})
            assert conn.execute(text("SELECT count(*) FROM road_segment")).scalar_one() == 0
            roads = conn.execute(text(INSERT_DATASET), {"kind": "roads"}).scalar_one()

        migrate.downgrade(engine, revision="0001")
        with engine.begin() as conn:
            kinds = conn.execute(text("SELECT kind FROM dataset ORDER BY id")).scalars().all()
            assert kinds == ["shelters"]  # the roads dataset went with the table
            assert conn.execute(text("SELECT to_regclass('road_segment')")).scalar_one() is None
            with pytest.raises(IntegrityError, match="ck_dataset_kind"), conn.begin_nested():
                conn.execute(text(INSERT_DATASET), {"kind": "roads"})
        assert migrate.current_revision(engine) == "0001"
        assert shelters
    finally:
        engine.dispose()
