"""``cim import ifc FILE``: one IFC (or .ifczip) building model -> one dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cli.context import console, emit, engine_scope, load_settings
from importers.ifc import IfcImport, parse_origin
from importers.registry import IFC, IfcOptions


def command(
    file: Annotated[Path, typer.Argument(help=IFC.files_help)],
    crs: Annotated[
        str | None,
        typer.Option(
            help="CRS of --origin, or of a map conversion whose IfcProjectedCRS has no name "
            "(default: the storage CRS)."
        ),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option(
            help="E,N[,H]: where the model's origin goes (in --crs); overrides the file's "
            "georeferencing."
        ),
    ] = None,
    rotation: Annotated[
        float | None,
        typer.Option(help="Degrees counter-clockwise from grid east to the model's X axis."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: file stem).")] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-import a file that is already in.")
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(help="Geometry worker processes (default: one per core, at most 8; 1: none)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import buildings, storeys and elements (meshes, property sets, colours) from IFC."""
    options = IfcOptions(
        crs=crs,
        origin=parse_origin(origin) if origin else None,
        rotation=rotation,
        name=name,
        replace=replace,
        threads=threads,
        max_expanded_bytes=load_settings().ifczip_max_expanded_bytes,
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # only once there is work to show: early errors stay one clean line
        if stage not in tasks:
            label = "triangulating" if stage == "geometry" else "writing elements"
            tasks[stage] = bar.add_task(label, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    try:
        with engine_scope() as engine:
            [outcome] = IFC.run(engine, [file], options, progress)
    finally:
        if tasks:
            bar.stop()
    for warning in outcome.result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    emit(outcome.to_dict(), as_json=as_json, text=_summary(outcome))


def _summary(outcome: IfcImport) -> str:
    dataset = outcome.result.dataset
    counts = dataset.counts
    if not outcome.result.created:
        return f"{dataset.source_name} is already dataset {dataset.id} (use --replace)"
    return (
        f"dataset {dataset.id} ({dataset.name}): {counts.get('building', 0)} buildings, "
        f"{counts.get('building_storey', 0)} storeys, {counts.get('building_element', 0)} "
        f"elements ({counts.get('spaces', 0)} spaces), {counts.get('triangles', 0)} triangles, "
        f"{counts.get('skipped', 0)} skipped; placed by {outcome.georef_source} in "
        f"{dataset.source_crs}"
    )
