"""``cim.db.copy.refresh_statistics``: an import analyses the tables it grew by more than a
tenth (so the queries right after its commit are planned on real row counts), not the tables
it barely touched, and a rolled-back import leaves no statistics behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.copy import refresh_statistics


@pytest.fixture
def tables(engine: Engine) -> Iterator[None]:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE stats_big AS SELECT g AS x FROM generate_series(1, 10000) AS g;"
            " CREATE TABLE stats_new (x int)"
        )
        connection.exec_driver_sql("SELECT pg_stat_force_next_flush()")  # live tuples known now
    yield
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE stats_big, stats_new")


def _analysed(session: Session, table: str) -> bool:
    return bool(
        session.execute(
            text("SELECT count(*) FROM pg_stats WHERE tablename = :t"), {"t": table}
        ).scalar()
    )


def test_only_the_grown_table_is_analysed_and_a_rollback_forgets_it(
    engine: Engine, tables: None
) -> None:
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO stats_big SELECT g FROM generate_series(1, 500) AS g"))
        session.execute(text("INSERT INTO stats_new SELECT g FROM generate_series(1, 500) AS g"))
        assert not _analysed(session, "stats_new")
        analysed = refresh_statistics(
            session, {"stats_big": 500, "stats_new": 500, "stats_unused": 0}
        )
        assert analysed == ["stats_new"]  # 500 rows are 5 % of stats_big's 10,000
        assert _analysed(session, "stats_new")  # its own uncommitted rows were sampled
        estimate = session.execute(
            text("EXPLAIN (FORMAT JSON) SELECT * FROM stats_new WHERE x <= 100")
        ).scalar()
        assert estimate[0]["Plan"]["Plan Rows"] == pytest.approx(100, rel=0.1)
        session.rollback()
    with Session(engine) as session:
        assert not _analysed(session, "stats_new")
