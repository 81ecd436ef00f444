"""Alembic environment: cim's metadata and the GeoAlchemy2 helpers for spatial types.

``cim db upgrade`` passes an open connection and the storage SRID in ``config.attributes``;
run by hand, ``alembic`` reads ``CIM_DATABASE_URL`` and ``CIM_SRID``.
"""

from __future__ import annotations

import os
import re

from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine

from alembic import context
from cim.db import models  # noqa: F401  (fills Base.metadata)
from cim.db.base import Base

config = context.config
target_metadata = Base.metadata


PARTITION = re.compile(r"sensor_observation_(default|p\d{6})")
"""Month partitions of ``sensor_observation`` (made at run time, not in the models)."""


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # postgis_raster/tiger/topology bring tables of their own that are not ours.
    if type_ == "table" and name in {"spatial_ref_sys", "layer", "topology"}:
        return False
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    if PARTITION.fullmatch(table or ""):
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("CIM_DATABASE_URL")
    if not url:
        raise SystemExit("set CIM_DATABASE_URL, or run `cim db upgrade`")
    from cim.config import normalise_database_url

    engine = create_engine(normalise_database_url(url))
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
