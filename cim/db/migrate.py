"""Run the Alembic history from code, and guard the storage SRID recorded in the database.

Why here and not only in ``alembic``: ``cim db upgrade`` and the test harness must migrate from
any working directory, with the SRID chosen by ``CIM_SRID`` on first initialisation.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from alembic import command
from cim.errors import ConfigError

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(connection: Connection, srid: int) -> Config:
    """An Alembic config bound to ``connection`` that creates geometry columns in ``srid``."""
    if not (ALEMBIC_DIR / "env.py").exists():
        raise ConfigError(f"migrations not found at {ALEMBIC_DIR}: install cim with pip install -e")
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["connection"] = connection
    config.attributes["srid"] = srid
    return config


def recorded_srid(connection: Connection) -> int | None:
    """The storage SRID fixed when this database was initialised, or None if it never was."""
    if not inspect(connection).has_table("cim_setting"):
        return None
    value = connection.execute(
        text("SELECT value FROM cim_setting WHERE key = 'storage_srid'")
    ).scalar_one_or_none()
    return int(value) if value is not None else None


def check_srid(connection: Connection, requested: int | None) -> int | None:
    """Refuse a ``CIM_SRID`` that differs from the one recorded; return the recorded one."""
    recorded = recorded_srid(connection)
    if recorded is not None and requested is not None and recorded != requested:
        raise ConfigError(
            f"CIM_SRID={requested} but this database stores geometries in EPSG:{recorded}; "
            "unset CIM_SRID or use a new database"
        )
    return recorded


def head_revision() -> str:
    """The newest revision of the migration history."""
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None = never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, *, srid: int | None, default_srid: int, revision: str = "head") -> int:
    """Migrate to ``revision`` in one transaction; returns the storage SRID in force."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(4547001)"))
        recorded = check_srid(connection, srid)
        effective = recorded or srid or default_srid
        command.upgrade(alembic_config(connection, effective), revision)
    return effective


def downgrade(engine: Engine, *, revision: str = "-1") -> None:
    """Migrate down to ``revision`` (``base`` drops every cim table)."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(4547001)"))
        srid = recorded_srid(connection) or 0
        command.downgrade(alembic_config(connection, srid), revision)
