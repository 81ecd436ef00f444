"""The ``manifest.json`` of a backup folder: what it holds, row counts, and a sha256 per file.

Why: a restore must know, before it touches anything, that every file is the one the backup
wrote (checksums), which schema revision and storage SRID it needs, and afterwards that no row
was lost (per-table and per-dataset counts taken in the very snapshot the dump was made from).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, text

from cim.errors import InvalidInput

MANIFEST_NAME = "manifest.json"
FORMAT = "cim-backup"
FORMAT_VERSION = 1

_USER_TABLES = text(
    """
    SELECT format('%I.%I', n.nspname, c.relname) AS name, n.nspname = 'public' AS public,
           c.relname AS bare
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND NOT EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1
    """
)
"""Tables of the database that no extension owns: what a dump carries and a restore creates."""


class DatasetEntry(TypedDict):
    """One dataset of the backup, with its rows per table (tables holding ``dataset_id``)."""

    id: int
    kind: str
    name: str
    source_sha256: str
    status: str
    rows: dict[str, int]


class BaseBackupEntry(TypedDict):
    """The physical base backup taken beside the dump when the cluster archives its WAL."""

    folder: str
    started_at: str
    finished_at: str
    wal_archive: str


class Manifest(TypedDict):
    """The whole ``manifest.json``."""

    format: str
    format_version: int
    created_at: str
    cim_version: str
    schema_revision: str
    storage_srid: int
    postgresql: str
    postgis: str
    embedded: bool
    database_file: str
    tables: dict[str, int]
    datasets: list[DatasetEntry]
    tiles_file: str | None
    base_backup: BaseBackupEntry | None
    files: dict[str, str]


def user_tables(connection: Connection) -> list[str]:
    """Qualified names of the tables no extension owns (empty for an empty database)."""
    return [row.name for row in connection.execute(_USER_TABLES)]


def table_counts(connection: Connection) -> dict[str, int]:
    """Rows of every user table, by qualified name."""
    return {
        name: int(connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
        for name in user_tables(connection)
    }


def dataset_entries(connection: Connection) -> list[DatasetEntry]:
    """Every dataset with its rows in each public table that has a ``dataset_id`` column."""
    tables = [
        row.table_name
        for row in connection.execute(
            text(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name = 'dataset_id' ORDER BY table_name"
            )
        )
    ]
    rows: dict[int, dict[str, int]] = {}
    for table in tables:
        counts = connection.execute(
            text(f'SELECT dataset_id, count(*) FROM public."{table}" GROUP BY dataset_id')
        )
        for dataset_id, count in counts:
            if dataset_id is not None:
                rows.setdefault(int(dataset_id), {})[table] = int(count)
    datasets = connection.execute(
        text("SELECT id, kind, name, source_sha256, status FROM dataset ORDER BY id")
    )
    return [
        DatasetEntry(
            id=int(d.id),
            kind=d.kind,
            name=d.name,
            source_sha256=d.source_sha256,
            status=d.status,
            rows=rows.get(int(d.id), {}),
        )
        for d in datasets
    ]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checksum_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except the manifest, by relative POSIX path."""
    return {
        path.relative_to(folder).as_posix(): sha256_of(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` and flush it to disk."""
    path = folder / MANIFEST_NAME
    with open(path, "w") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(folder: Path) -> Manifest:
    """The manifest of backup ``folder`` once its format and every checksum are right.

    Raises InvalidInput with one line naming the first problem; reads nothing else.
    """
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a backup folder")
    if not path.is_file():
        raise InvalidInput(f"{folder} holds no {MANIFEST_NAME}: not a complete cim backup")
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a cim backup manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"{path} has format version {data.get('format_version')}; this cim reads "
            f"{FORMAT_VERSION}"
        )
    for name, expected in data["files"].items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InvalidInput(f"{path} names a file outside the backup: {name}")
        member = folder / name
        if not member.is_file():
            raise InvalidInput(f"backup file {member} is missing")
        if sha256_of(member) != expected:
            raise InvalidInput(f"backup file {member} is damaged (sha256 differs from manifest)")
    return cast(Manifest, data)
