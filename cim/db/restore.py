"""``cim db restore``: a backup folder into an empty database or data dir, checked by counts.

Why so careful: a restore is what people run on a bad day. Everything that can be checked
without touching the target is checked first (manifest format, every checksum, a schema
revision this cim knows, an empty target); ``pg_restore`` then runs in one transaction, and
afterwards every table's and every dataset's row counts must equal the manifest's. With
``point_in_time`` the base backup is replayed instead (:mod:`cim.db.pitr`).
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from cim.config import CimSettings
from cim.db import migrate
from cim.db.backup_manifest import (
    DatasetEntry,
    Manifest,
    dataset_entries,
    read_manifest,
    table_counts,
    user_tables,
)
from cim.db.connect import database_url
from cim.db.engine import make_engine
from cim.db.pgtools import Progress, client_program, libpq_target, run_program, server_major
from cim.db.pitr import check_recoverable, recover
from cim.errors import CimError, ConfigError, InvalidInput

_EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION )(\S+)")
"""A ``pg_restore --list`` line of an extension or its comment: the target makes its own."""


@dataclass(frozen=True)
class RestoreResult:
    """What ``cim db restore`` reports."""

    source: str
    target: str
    method: str
    """``dump`` (as of the backup) or ``point-in-time`` (base backup + WAL archive replay)."""
    until: str | None
    schema_revision: str | None
    storage_srid: int | None
    tables: int
    rows: int
    tiles: bool
    datasets: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def restore_backup(
    settings: CimSettings,
    source: Path,
    *,
    point_in_time: bool = False,
    until: datetime | None = None,
    progress: Progress,
) -> RestoreResult:
    """Restore backup folder ``source`` into the empty database (or data dir) of ``settings``.

    With ``point_in_time`` the embedded cluster is rebuilt from the base backup and the WAL
    archive, up to ``until`` (None: everything archived).
    """
    started = time.monotonic()
    source = Path(os.path.abspath(source.expanduser()))
    progress(f"checking {source} (manifest and checksums)")
    manifest = read_manifest(source)
    _check_revision(manifest["schema_revision"])
    tiles_file = manifest["tiles_file"]
    if tiles_file is not None and settings.tiles_dir.exists() and any(settings.tiles_dir.iterdir()):
        raise InvalidInput(f"{settings.tiles_dir} is not empty: restore only into a new data dir")
    if point_in_time:
        cluster = check_recoverable(settings, manifest, until)
        recover(cluster, source, manifest, until=until, progress=progress)
        url = cluster.url()
    else:
        url = _restore_dump(settings, source, manifest, progress)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            tables, datasets = table_counts(connection), dataset_entries(connection)
            srid = migrate.recorded_srid(connection)
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    if not point_in_time:
        _compare(manifest, tables, datasets)
    if tiles_file is not None:
        _unpack_tiles(source / tiles_file, settings.tiles_dir, progress)
    return RestoreResult(
        source=str(source),
        target=_describe_target(settings),
        method="point-in-time" if point_in_time else "dump",
        until=until.isoformat() if until is not None else None,
        schema_revision=revision,
        storage_srid=srid,
        tables=len(tables),
        rows=sum(tables.values()),
        tiles=tiles_file is not None,
        datasets=[
            {"id": d["id"], "kind": d["kind"], "name": d["name"], "rows": sum(d["rows"].values())}
            for d in datasets
        ],
        seconds=round(time.monotonic() - started, 2),
    )


def _check_revision(revision: str) -> None:
    """Refuse a backup whose schema revision this cim's migration history does not hold."""
    config = Config()
    config.set_main_option("script_location", str(migrate.ALEMBIC_DIR))
    try:
        known = ScriptDirectory.from_config(config).get_revision(revision) is not None
    except RevisionError:
        known = False
    if not known:
        raise InvalidInput(
            f"the backup's schema revision {revision} is unknown to this cim (a newer one wrote "
            "it?): restore with the cim version that made the backup"
        )


def _describe_target(settings: CimSettings) -> str:
    if settings.database_url is None:
        return f"embedded cluster in {settings.data_dir}"
    return libpq_target(settings.database_url)[0]


def _restore_dump(
    settings: CimSettings, source: Path, manifest: Manifest, progress: Progress
) -> str:
    """``pg_restore`` the dump into the (checked empty) target; returns the target's URL."""
    url = database_url(settings)  # initialises and starts an embedded cluster when needed
    engine = make_engine(url, pool_size=1)
    dump = source / manifest["database_file"]
    try:
        with engine.connect() as connection:
            existing = user_tables(connection)
            major = server_major(connection)
        if existing:
            raise InvalidInput(
                f"the target database is not empty ({len(existing)} tables, e.g. {existing[0]}): "
                "restore only into an empty database or a new CIM_DATA_DIR"
            )
        program = client_program("pg_restore", major, settings.pg_bindir)
        listing = run_program([str(program), "--list", str(dump)], label="list", progress=progress)
        kept = _create_extensions(engine, listing)
    finally:
        engine.dispose()
    conninfo, env = libpq_target(url)
    with tempfile.NamedTemporaryFile("w", suffix=".list") as use_list:
        use_list.write("\n".join(kept) + "\n")
        use_list.flush()
        progress(f"restoring {dump.name} ({program})")
        run_program(
            [
                str(program),
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                "-L",
                use_list.name,
                "-d",
                conninfo,
                str(dump),
            ],
            env=env,
            label="restore",
            progress=progress,
        )
    return url


def _create_extensions(engine: Engine, listing: str) -> list[str]:
    """Create the dump's extensions in the target; returns the listing without them.

    The extensions' own entries are left out of the restore: on a server where an administrator
    created PostGIS, replaying ``CREATE EXTENSION``/``COMMENT ON EXTENSION`` as the cim role fails.
    """
    kept, extensions = [], []
    for line in listing.splitlines():
        entry = _EXTENSION_ENTRY.match(line)
        if entry is None:
            kept.append(line)
        elif " EXTENSION - " in line:
            extensions.append(entry.group(1))
    for name in extensions:
        try:
            with engine.begin() as connection:
                connection.execute(text(f'CREATE EXTENSION IF NOT EXISTS "{name}"'))
        except DBAPIError as exc:
            raise ConfigError(
                f"cannot create extension {name} in the target ({exc.orig}): "
                f"ask an administrator to run CREATE EXTENSION {name} there"
            ) from None
    return kept


def _compare(manifest: Manifest, tables: dict[str, int], datasets: list[DatasetEntry]) -> None:
    """The restored rows must be the backup's, table by table and dataset by dataset."""
    for name, expected in manifest["tables"].items():
        if tables.get(name) != expected:
            raise CimError(
                f"restored, but {name} holds {tables.get(name)} rows where the backup recorded "
                f"{expected}: do not use this database"
            )
    if datasets != manifest["datasets"]:
        raise CimError("restored, but the datasets differ from the backup's manifest")


def _unpack_tiles(archive: Path, tiles_dir: Path, progress: Progress) -> None:
    """Extract the tiles beside ``tiles_dir`` and rename them into place when complete."""
    progress(f"restoring tiles into {tiles_dir}")
    partial = tiles_dir.parent / f"{tiles_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        if tiles_dir.exists():
            tiles_dir.rmdir()  # checked empty before the restore began
        os.rename(partial / "tiles", tiles_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
