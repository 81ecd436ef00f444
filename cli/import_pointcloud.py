"""``cim import pointcloud FILE…``: LAS/LAZ point clouds -> one ``pointcloud`` dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.context import console, emit, engine_scope, load_settings
from importers.base import ImportResult
from importers.registry import POINTCLOUD, PointcloudOptions


def command(
    files: Annotated[list[Path], typer.Argument(help=POINTCLOUD.files_help)],
    crs: Annotated[
        str | None,
        typer.Option(
            "--crs",
            help="Source CRS (EPSG:x) for files without one; it wins over a file's own CRS.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Dataset name (default: the first file).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-import files that are already in (replaces).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import LAS/LAZ point clouds: counts, classes, extent; tiled by `cim tiles build`.

    All the files given become one dataset, all or nothing; the files are kept under
    CIM_DATA_DIR/pointclouds for the pointcloud tiles layer (see README, Point clouds).
    """
    settings = load_settings()
    columns = (
        TextColumn("reading points"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        engine_scope(settings) as engine,
        Progress(*columns, console=console, transient=True) as bar,
    ):
        task = bar.add_task("points", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        options = PointcloudOptions(crs=crs, name=name, replace=replace, data_dir=settings.data_dir)
        [result] = POINTCLOUD.run(engine, files, options, progress)
    emit(result.to_dict(), as_json=as_json, text=summary_line(result))


def summary_line(result: ImportResult) -> str:
    """One line per import (plus warnings): points, classes, CRS."""
    dataset = result.dataset
    if not result.created:
        return f"already imported: dataset {dataset.id} {dataset.name} (use --replace)"
    counts = dataset.counts
    classes = ", ".join(f"{c['name']} {c['points']:,}" for c in counts.get("classes", []))
    lines = [
        f"imported pointcloud: dataset {dataset.id} {dataset.name}: {counts.get('points', 0):,} "
        f"points in {counts.get('files')} file(s) ({dataset.source_crs}); {classes}"
    ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
