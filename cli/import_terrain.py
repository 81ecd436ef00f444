"""``cim import terrain FILE``: a DEM (GeoTIFF, COG, any GDAL raster) into ``terrain_raster``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.context import console, emit, engine_scope
from importers.base import ImportResult
from importers.registry import TERRAIN, ImportOptions


def command(
    file: Annotated[Path, typer.Argument(help=TERRAIN.files_help)],
    crs: Annotated[
        str | None,
        typer.Option("--crs", help="Source CRS when the file has none or a wrong one (EPSG:x)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Dataset name (default: stem).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-import a file that is already in (replaces it).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import a DEM: reprojected to the storage CRS (bilinear) and stored as 256x256 tiles.

    Where several DEMs overlap, the finest resolution wins (see README, Terrain).
    """
    columns = (
        TextColumn("importing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tiles"),
        TimeElapsedColumn(),
    )
    with engine_scope() as engine, Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(file.name, total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        options = ImportOptions(crs=crs, name=name, replace=replace)
        [result] = TERRAIN.run(engine, [file], options, progress)
    emit(result.to_dict(), as_json=as_json, text=_summary_line(result))


def _summary_line(result: ImportResult) -> str:
    dataset, qc = result.dataset, result.dataset.qc
    if not result.created:
        return f"already imported: dataset {dataset.id} {dataset.name} (use --replace)"
    extent = ", ".join(f"{v:.1f}" for v in qc.get("extent", []))
    tiles = dataset.counts.get("terrain_raster")
    lines = [
        f"imported terrain: dataset {dataset.id} {dataset.name}: {tiles} tiles, "
        f"{qc.get('width')}x{qc.get('height')} px at {qc.get('resolution', 0):.3f} m, "
        f"extent [{extent}] (EPSG:{qc.get('storage_srid')}), "
        f"heights {qc.get('min_height', 0):.2f}..{qc.get('max_height', 0):.2f} m"
    ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
