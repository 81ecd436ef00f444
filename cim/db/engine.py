"""Engine and session factories; engines are made by the composition roots, never at import."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cim.config import normalise_database_url


def make_engine(url: str, *, statement_timeout_ms: int | None = None, pool_size: int = 5) -> Engine:
    """Create a psycopg 3 engine with pre-ping, so a restarted server costs one retry, not a 500."""
    engine = create_engine(
        normalise_database_url(url),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "cim"},
    )
    if statement_timeout_ms is not None:

        @event.listens_for(engine, "connect")
        def _set_timeout(dbapi_connection, connection_record):  # type: ignore[no-untyped-def]
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
            dbapi_connection.commit()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire objects on commit (results stay readable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)
