"""Find the database to use: ``CIM_DATABASE_URL``, or the embedded cluster (started on demand)."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from cim.config import CimSettings
from cim.db import migrate
from cim.db.embedded import EmbeddedCluster
from cim.db.engine import make_engine
from cim.errors import ConfigError, DatabaseUnavailable


def embedded_cluster(settings: CimSettings) -> EmbeddedCluster:
    """The embedded cluster of ``settings.data_dir`` (archiving WAL to ``CIM_WAL_ARCHIVE``)."""
    return EmbeddedCluster(settings.data_dir, settings.pg_bindir, settings.wal_archive)


def database_url(settings: CimSettings, *, start: bool = True) -> str:
    """The SQLAlchemy URL to use; starts the embedded cluster when ``start`` and none is set."""
    if settings.database_url is not None:
        return settings.database_url
    cluster = embedded_cluster(settings)
    if start:
        cluster.start()
    elif not cluster.is_running():
        raise DatabaseUnavailable(
            f"the embedded database in {settings.data_dir} is not running: run `cim db start`"
        )
    return cluster.url(driver="postgresql+psycopg")


def open_database(settings: CimSettings, *, pool_size: int = 5) -> Engine:
    """An engine on a database whose schema is at head.

    The embedded database is started and migrated on demand, so ``cim import ...`` works on a
    fresh machine; an external server must be migrated explicitly with ``cim db upgrade``.
    """
    engine = make_engine(database_url(settings), statement_timeout_ms=None, pool_size=pool_size)
    try:
        current = migrate.current_revision(engine)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc.orig}") from exc
    if current != migrate.head_revision():
        if settings.uses_embedded_database:
            migrate.upgrade(engine, srid=settings.srid, default_srid=settings.initial_srid)
        else:
            raise ConfigError(
                f"the database schema is at {current or 'nothing'}, not at the current head: "
                "run `cim db upgrade`"
            )
    with engine.connect() as connection:
        migrate.check_srid(connection, settings.srid)
    return engine


def storage_srid(engine: Engine) -> int:
    """The storage SRID recorded in the database."""
    with engine.connect() as connection:
        srid = migrate.recorded_srid(connection)
    if srid is None:
        raise ConfigError("the database has no cim schema yet: run `cim db upgrade`")
    return srid


def server_versions(engine: Engine) -> dict[str, str]:
    """PostgreSQL and PostGIS versions, for ``/health`` and ``cim db status``."""
    with engine.connect() as connection:
        postgres = connection.execute(text("SHOW server_version")).scalar_one()
        postgis = connection.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
        ).scalar_one_or_none()
    return {"postgresql": str(postgres), "postgis": str(postgis or "not installed")}
