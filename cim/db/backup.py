"""``cim db backup``: a verified backup folder of the database in use, published atomically.

Why this shape: the folder is built as ``DEST.partial-<pid>`` beside ``DEST`` and renamed only
once ``pg_restore --list`` reads the dump and every checksum in ``manifest.json`` matches, so a
backup killed at any moment (SIGKILL included) leaves no ``DEST`` that looks complete; the next
backup removes partial folders whose process is gone. The dump (``pg_dump -Fc``) and the row
counts of the manifest come from one exported snapshot, so the counts are exactly the dump's.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, text

import cim
from cim.config import CimSettings
from cim.db import migrate
from cim.db.backup_manifest import (
    FORMAT,
    FORMAT_VERSION,
    Manifest,
    checksum_files,
    dataset_entries,
    read_manifest,
    table_counts,
    write_manifest,
)
from cim.db.connect import database_url, server_versions
from cim.db.engine import make_engine
from cim.db.pgtools import (
    PROGRESS_EVERY_SECONDS,
    Progress,
    client_program,
    libpq_target,
    run_program,
    server_major,
)
from cim.db.pitr import base_backup_wanted, take_base_backup
from cim.errors import ConfigError, InvalidInput
from cim.faults import pause_point
from cim.processes import process_alive

PARTIAL_MARK = ".partial-"
DUMP_NAME = "database.dump"
TILES_NAME = "tiles.tar"
STAGED_LAYER = re.compile(r"\.[^/]+\.(tmp|old)-.*")
"""Folders :mod:`tiles.atomic` writes beside a layer: never part of a backup."""


@dataclass(frozen=True)
class BackupResult:
    """What ``cim db backup`` reports."""

    path: str
    created_at: str
    schema_revision: str
    storage_srid: int
    datasets: int
    rows: int
    base_backup: bool
    files: dict[str, int] = field(default_factory=dict)
    """Size in bytes of each file of the backup, by path inside the folder."""
    removed_stale: list[str] = field(default_factory=list)
    seconds: float = 0.0


def create_backup(
    settings: CimSettings, dest: Path, *, tiles: bool, progress: Progress
) -> BackupResult:
    """Back up the database of ``settings`` (and with ``tiles`` its tiles folder) into ``dest``.

    Refuses an existing ``dest``; everything is written under a temporary name, verified and
    then renamed, so ``dest`` appears complete or not at all.
    """
    started = time.monotonic()
    dest = Path(os.path.abspath(dest.expanduser()))
    if dest.exists() or dest.is_symlink():
        raise InvalidInput(f"{dest} already exists: a backup never overwrites, choose a new folder")
    if tiles and not settings.tiles_dir.is_dir():
        raise InvalidInput(f"--tiles: no tiles have been built in {settings.tiles_dir}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_partials(dest, progress)
    partial = dest.parent / f"{dest.name}{PARTIAL_MARK}{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)  # a dead process that had our pid
    partial.mkdir()
    try:
        manifest = _fill(settings, partial, tiles=tiles, progress=progress)
        _verify(partial, settings, progress)
        pause_point("backup-publish")
        _publish(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupResult(
        path=str(dest),
        created_at=manifest["created_at"],
        schema_revision=manifest["schema_revision"],
        storage_srid=manifest["storage_srid"],
        datasets=len(manifest["datasets"]),
        rows=sum(manifest["tables"].values()),
        base_backup=manifest["base_backup"] is not None,
        files={name: (dest / name).stat().st_size for name in manifest["files"]},
        removed_stale=removed,
        seconds=round(time.monotonic() - started, 2),
    )


def remove_stale_partials(dest: Path, progress: Progress) -> list[str]:
    """Delete ``DEST.partial-<pid>`` folders whose process is gone; live ones are left alone."""
    removed = []
    for path in dest.parent.glob(glob.escape(dest.name) + PARTIAL_MARK + "*"):
        pid = path.name.rsplit(PARTIAL_MARK, 1)[1]
        if not pid.isdigit() or (process_alive(int(pid)) and int(pid) != os.getpid()):
            continue
        progress(f"removing {path} left by a backup that did not finish")
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _fill(settings: CimSettings, folder: Path, *, tiles: bool, progress: Progress) -> Manifest:
    """Write the dump, the tiles tar and the base backup into ``folder``, then the manifest."""
    engine = make_engine(database_url(settings), pool_size=1)
    try:
        revision = migrate.current_revision(engine)
        if revision is None:
            raise ConfigError("the database has no cim schema: there is nothing to back up")
        versions = server_versions(engine)
        manifest = _dump(settings, engine, folder, revision=revision, progress=progress)
        manifest["postgresql"], manifest["postgis"] = versions["postgresql"], versions["postgis"]
        with engine.connect() as connection:
            wanted = base_backup_wanted(settings, connection, progress)
    finally:
        engine.dispose()
    if tiles:
        _tar_tiles(settings.tiles_dir, folder / TILES_NAME, progress)
        manifest["tiles_file"] = TILES_NAME
    if wanted:
        manifest["base_backup"] = take_base_backup(settings, folder, progress=progress)
    progress("writing the manifest (sha256 of every file)")
    manifest["files"] = checksum_files(folder)
    write_manifest(folder, manifest)
    return manifest


def _dump(
    settings: CimSettings, engine: Engine, folder: Path, *, revision: str, progress: Progress
) -> Manifest:
    """``pg_dump -Fc`` in a snapshot exported by a transaction that also counts the rows."""
    with engine.connect() as connection:
        connection = connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        with connection.begin():
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            manifest = _describe(connection, settings, revision)
            progress(
                f"counted {sum(manifest['tables'].values()):,} rows in "
                f"{len(manifest['tables'])} tables, {len(manifest['datasets'])} datasets"
            )
            program = client_program("pg_dump", server_major(connection), settings.pg_bindir)
            conninfo, env = libpq_target(engine.url.render_as_string(hide_password=False))
            progress(f"dumping the database ({program})")
            run_program(
                [
                    str(program),
                    "-Fc",
                    f"--snapshot={snapshot}",
                    "--no-password",
                    "-f",
                    str(folder / DUMP_NAME),
                    "-d",
                    conninfo,
                ],
                env=env,
                label="dump",
                progress=progress,
                watch=folder / DUMP_NAME,
            )
    return manifest


def _describe(connection: Connection, settings: CimSettings, revision: str) -> Manifest:
    srid = migrate.recorded_srid(connection)
    return Manifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(),
        cim_version=cim.__version__,
        schema_revision=revision,
        storage_srid=srid if srid is not None else settings.initial_srid,
        postgresql="",
        postgis="",
        embedded=settings.uses_embedded_database,
        database_file=DUMP_NAME,
        tables=table_counts(connection),
        datasets=dataset_entries(connection),
        tiles_file=None,
        base_backup=None,
        files={},
    )


def _tar_tiles(tiles_dir: Path, target: Path, progress: Progress) -> None:
    progress(f"packing {tiles_dir} into {target.name}")
    count = 0
    next_report = time.monotonic() + PROGRESS_EVERY_SECONDS

    def report(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        nonlocal count, next_report
        if STAGED_LAYER.fullmatch(Path(member.name).name):
            return None  # a build's staging folder, or a replaced layer being deleted
        count += 1
        if time.monotonic() >= next_report:
            progress(f"tiles: {count:,} files packed")
            next_report += PROGRESS_EVERY_SECONDS
        return member

    with tarfile.open(target, "w") as tar:
        tar.add(tiles_dir, arcname="tiles", filter=report)


def _verify(folder: Path, settings: CimSettings, progress: Progress) -> None:
    """The dump must list with ``pg_restore`` and every file must match its checksum."""
    progress("verifying the backup (pg_restore --list, checksums)")
    manifest = read_manifest(folder)
    major = int(manifest["postgresql"].split(".")[0])
    listing = run_program(
        [
            str(client_program("pg_restore", major, settings.pg_bindir)),
            "--list",
            str(folder / manifest["database_file"]),
        ],
        label="pg_restore --list",
        progress=progress,
    )
    for name in manifest["tables"]:
        schema, table = (part.strip('"') for part in name.split(".", 1))
        if f" TABLE {schema} {table} " not in listing:
            raise ConfigError(f"the dump lacks table {name}: the backup is not usable")
    if manifest["tiles_file"] is not None:
        with tarfile.open(folder / manifest["tiles_file"]) as tar:
            tar.getmembers()


def _publish(partial: Path, dest: Path) -> None:
    """Flush every file and folder to disk, then rename ``partial`` to ``dest``."""
    for path in sorted(partial.rglob("*"), reverse=True):
        _fsync(path)
    _fsync(partial)
    if dest.exists():
        raise InvalidInput(f"{dest} appeared while the backup ran: this one is discarded")
    os.rename(partial, dest)
    _fsync(dest.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
