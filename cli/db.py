"""``cim db start|stop|status|url|upgrade|downgrade|backup|restore``: cluster, schema, backups."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from cim.db import migrate
from cim.db.connect import database_url, embedded_cluster, server_versions
from cim.db.embedded import ClusterStatus
from cim.db.engine import make_engine
from cim.errors import ConfigError
from cli.context import emit, load_settings
from cli.db_backup import backup, restore

app = typer.Typer(
    help="The database: embedded PostGIS cluster, schema migrations, backups.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON object for scripts.")]


def _require_embedded() -> None:
    if not load_settings().uses_embedded_database:
        raise ConfigError("CIM_DATABASE_URL is set: cim uses that server and manages no cluster")


def _describe(status: ClusterStatus) -> str:
    state = (
        "running" if status.running else ("stopped" if status.initialised else "not initialised")
    )
    lines = [f"embedded PostGIS: {state}", f"  data dir : {status.data_dir}"]
    if status.url:
        lines += [f"  url      : {status.url}", f"  socket   : {status.socket_dir}"]
    lines.append(f"  server as: {status.server_user} ({status.bindir})")
    return "\n".join(lines)


@app.command()
def start(as_json: JsonOption = False) -> None:
    """Initialise (first time) and start the embedded cluster; harmless when it runs."""
    _require_embedded()
    settings = load_settings()
    status = embedded_cluster(settings).start()
    emit(asdict(status), as_json=as_json, text=_describe(status))


@app.command()
def stop(as_json: JsonOption = False) -> None:
    """Stop the embedded cluster (data is kept)."""
    _require_embedded()
    status = embedded_cluster(load_settings()).stop()
    emit(asdict(status), as_json=as_json, text=_describe(status))


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Show the database in use: embedded cluster state, versions, schema revision, SRID."""
    settings = load_settings()
    result: dict[str, Any] = {"embedded": settings.uses_embedded_database}
    reachable = True
    if settings.uses_embedded_database:
        cluster_status = embedded_cluster(settings).status()
        result.update(asdict(cluster_status))
        reachable = cluster_status.running
    else:
        result["url"] = settings.database_url
    if reachable:
        engine = make_engine(database_url(settings, start=False))
        try:
            result.update(server_versions(engine))
            result["revision"] = migrate.current_revision(engine)
            with engine.connect() as connection:
                result["storage_srid"] = migrate.recorded_srid(connection)
        finally:
            engine.dispose()
    text = _describe(embedded_cluster(settings).status()) if settings.uses_embedded_database else ""
    if "postgis" in result:
        text += (
            f"\n  PostgreSQL {result['postgresql']}, PostGIS {result['postgis']}, "
            f"schema {result['revision'] or 'empty'}, SRID {result['storage_srid']}"
        )
    emit(result, as_json=as_json, text=text.strip())


@app.command()
def url() -> None:
    """Print a libpq URL of the database (psql accepts it)."""
    settings = load_settings()
    if settings.database_url:
        print(settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1))
        return
    print(embedded_cluster(settings).url())


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    as_json: JsonOption = False,
) -> None:
    """Migrate the schema up; the first upgrade fixes the storage SRID (CIM_SRID, default 4547)."""
    settings = load_settings()
    engine = make_engine(database_url(settings))
    try:
        srid = migrate.upgrade(
            engine, srid=settings.srid, default_srid=settings.initial_srid, revision=revision
        )
        result = {"revision": migrate.current_revision(engine), "storage_srid": srid}
    finally:
        engine.dispose()
    emit(result, as_json=as_json, text=f"schema at {result['revision']}, storage SRID EPSG:{srid}")


@app.command()
def downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision; 'base' drops every table.")
    ] = "-1",
    as_json: JsonOption = False,
) -> None:
    """Migrate the schema down (``base`` removes every cim table and its data)."""
    settings = load_settings()
    engine = make_engine(database_url(settings))
    try:
        migrate.downgrade(engine, revision=revision)
        result = {"revision": migrate.current_revision(engine)}
    finally:
        engine.dispose()
    emit(result, as_json=as_json, text=f"schema at {result['revision'] or 'base (empty)'}")


app.command()(backup)
app.command()(restore)
