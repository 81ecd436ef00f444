"""``cim db backup|restore``: a verified backup folder, and restore or point-in-time recovery."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cim.db.backup import BackupResult, create_backup
from cim.db.restore import RestoreResult, restore_backup
from cim.errors import InvalidInput
from cli.context import console, emit, load_settings

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON object for scripts.")]


def _progress(line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def backup(
    dest: Annotated[Path, typer.Argument(help="New folder to write; must not exist.")],
    tiles: Annotated[
        bool, typer.Option("--tiles", help="Also pack the built tiles (CIM_DATA_DIR/tiles).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Back up the database in use into a new folder (dump + manifest, verified, atomic).

    When the embedded cluster archives its WAL (CIM_WAL_ARCHIVE) a base backup for
    point-in-time recovery is taken too.
    """
    result = create_backup(load_settings(), dest, tiles=tiles, progress=_progress)
    emit(asdict(result), as_json=as_json, text=_describe_backup(result))


def _describe_backup(result: BackupResult) -> str:
    size = sum(result.files.values()) / 1e6
    extras = [name for name in ("tiles.tar",) if name in result.files]
    if result.base_backup:
        extras.append("base backup")
    return (
        f"backup {result.path}: {result.datasets} datasets, {result.rows:,} rows, "
        f"schema {result.schema_revision}, EPSG:{result.storage_srid}, {size:,.1f} MB"
        + (f" (+ {', '.join(extras)})" if extras else "")
        + f" in {result.seconds:.1f} s"
    )


def parse_until(value: str) -> datetime | None:
    """``latest`` (None: replay everything archived) or an ISO 8601 time; no zone means UTC."""
    if value.strip().lower() == "latest":
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"--until {value!r}: give an ISO 8601 time such as 2026-12-05T07:40:00Z, or latest"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by `cim db backup`.")],
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Point-in-time recovery of the embedded cluster: replay the WAL archive up to "
            "this ISO 8601 time (UTC unless it has a zone) or 'latest'.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into an empty database or a new CIM_DATA_DIR; refuses anything else."""
    result = restore_backup(
        load_settings(),
        source,
        point_in_time=until is not None,
        until=parse_until(until) if until is not None else None,
        progress=_progress,
    )
    emit(asdict(result), as_json=as_json, text=_describe_restore(result))


def _describe_restore(result: RestoreResult) -> str:
    how = f"up to {result.until or 'the end of the WAL archive'}" if result.method != "dump" else ""
    lines = [
        f"restored {result.source} into {result.target} ({result.method} {how}".rstrip() + ")",
        f"  {len(result.datasets)} datasets, {result.rows:,} rows in {result.tables} tables, "
        f"schema {result.schema_revision}, EPSG:{result.storage_srid}"
        + (", tiles restored" if result.tiles else "")
        + f", {result.seconds:.1f} s",
    ]
    lines += [
        f"  {d['id']:>5} {d['kind']:<10} {d['name']} ({d['rows']:,} rows)" for d in result.datasets
    ]
    return "\n".join(lines)
