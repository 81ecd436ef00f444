"""``cim.db.engine``: idle pooled connections are pinged before use; busy ones are not."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from cim.db.engine import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(other: Engine, pid: int) -> None:
    with other.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    time.sleep(0.2)  # the backend is gone


def test_an_idle_broken_connection_is_replaced_before_use(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, idle_ping_seconds=0.3)
    other = make_engine(database_url, pool_size=1)
    try:
        pid = _backend_pid(engine)
        _terminate(other, pid)
        time.sleep(0.3)
        assert _backend_pid(engine) != pid  # pinged, dropped, a fresh connection answered
    finally:
        engine.dispose()
        other.dispose()


def test_a_busy_connection_is_not_pinged_and_a_break_costs_one_failure(
    database_url: str,
) -> None:
    engine = make_engine(database_url, pool_size=1, idle_ping_seconds=3600)
    other = make_engine(database_url, pool_size=1)
    try:
        pid = _backend_pid(engine)
        _terminate(other, pid)
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # no ping: the broken connection was handed out
        assert _backend_pid(engine) != pid  # the disconnect emptied the pool: next one works
    finally:
        engine.dispose()
        other.dispose()
