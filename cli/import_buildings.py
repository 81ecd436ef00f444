"""``cim import buildings FILE…``: CityJSON / CityJSONSeq / CityGML files -> one ``buildings``
dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.context import console, emit, engine_scope
from importers.base import ImportResult
from importers.registry import BUILDINGS, BuildingOptions


def command(
    files: Annotated[list[Path], typer.Argument(help=BUILDINGS.files_help)],
    crs: Annotated[
        str | None,
        typer.Option("--crs", help="Source CRS when a file names none (EPSG:x)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Dataset name (default: the first file).")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="YAML mapping for footprint layers: id, height or floors (x storey_height, "
            "default 3.0), base, function, year fields.",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-import files that are already in (replaces).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import city models (CityJSON, CityJSONSeq, CityGML) and footprints (LOD1 blocks).

    All the files given become one dataset, all or nothing (see README, City models).
    """
    columns = (
        TextColumn("importing buildings"),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with engine_scope() as engine, Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("buildings", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done)

        options = BuildingOptions(crs=crs, name=name, replace=replace, mapping=mapping)
        [result] = BUILDINGS.run(engine, files, options, progress)
    emit(result.to_dict(), as_json=as_json, text=summary_line(result))


def summary_line(result: ImportResult) -> str:
    """One line per import (plus warnings): what was stored and what was left out."""
    dataset = result.dataset
    if not result.created:
        return f"already imported: dataset {dataset.id} {dataset.name} (use --replace)"
    counts, qc = dataset.counts, dataset.qc
    lines = [
        f"imported buildings: dataset {dataset.id} {dataset.name}: {counts.get('buildings')} "
        f"buildings + {counts.get('building_parts')} parts, {counts.get('triangles')} triangles "
        f"({dataset.source_crs}); faces left out: {qc.get('degenerate_faces')} degenerate, "
        f"{qc.get('non_planar_faces')} non-planar"
    ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
