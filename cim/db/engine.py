"""Engine and session factories; engines are made by the composition roots, never at import."""

from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from cim.config import normalise_database_url

IDLE_PING_SECONDS = 5.0
"""A pooled connection idle at least this long is pinged before it is handed out."""


def make_engine(
    url: str,
    *,
    statement_timeout_ms: int | None = None,
    pool_size: int = 5,
    idle_ping_seconds: float = IDLE_PING_SECONDS,
) -> Engine:
    """Create a psycopg 3 engine whose idle connections are pinged, so a restarted server
    costs one retry, not a 500.

    Why not ``pool_pre_ping``: it pings on *every* checkout, a round trip per request (under
    load ~8 % of a server's request threads, and one more wait for the GIL). Here only a
    connection that sat idle for ``idle_ping_seconds`` is pinged; a busy connection broken by a
    restart fails its statement, which SQLAlchemy reports as a disconnect and answers by
    invalidating the whole pool, so the next requests get new connections.
    """
    engine = create_engine(
        normalise_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "cim"},
    )
    _ping_when_idle(engine, idle_ping_seconds)
    if statement_timeout_ms is not None:

        @event.listens_for(engine, "connect")
        def _set_timeout(dbapi_connection, connection_record):  # type: ignore[no-untyped-def]
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
            dbapi_connection.commit()

    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a connection on checkout when it was idle ``idle_seconds`` or more; a failed ping
    makes the pool drop it and hand out a fresh one (SQLAlchemy's ``DisconnectionError``)."""

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("idle_since", 0.0) < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"an idle connection was broken: {exc}") from exc


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire objects on commit (results stay readable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)
