"""``cim tiles build``: build the buildings, pipes, terrain and pointcloud layers into
CIM_DATA_DIR/tiles."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.context import console, emit, engine_scope, load_settings
from cli.tiles_scale import output_scope, renderer_scope


class Layer(StrEnum):
    buildings = "buildings"
    pipes = "pipes"
    terrain = "terrain"
    pointcloud = "pointcloud"
    all = "all"


EXPANDED = {
    "pipes": ["pipes", "pipes_restricted"],
    "all": ["buildings", "pipes", "pipes_restricted", "terrain", "pointcloud"],
}
"""What ``--layer`` builds: pipes = the public classes + pipes_restricted
(``CIM_SENSITIVE_UTILITIES``, served with a key)."""


class Spec(StrEnum):
    v11 = "1.1"
    v10 = "1.0"


def _terrain(engine: Any, tiles_dir: Path, progress: Any) -> dict[str, Any]:
    """Quantized-mesh terrain (``tiles.terrain``), imported only when it is built."""
    from tiles.terrain import build_terrain

    summary = dict(build_terrain(engine, tiles_dir / "terrain", progress=progress))
    summary.setdefault("layer", "terrain")
    return summary


def _pointcloud(engine: Any, tiles_dir: Path, force: bool, progress: Any) -> dict[str, Any]:
    """Point clouds tiled by py3dtiles in its own venv (``tiles.pointcloud``)."""
    from tiles.pointcloud import build_pointcloud_layer

    return build_pointcloud_layer(engine, tiles_dir, force=force, progress=progress).to_dict()


def _mesh(
    engine: Any,
    tiles_dir: Path,
    layer: str,
    settings: Any,
    progress: Any,
    options: dict[str, Any],
) -> dict[str, Any]:
    """A buildings or pipes layer (``tiles.build``); after new versions of its datasets only
    the tiles they touch are rewritten, unless ``options["full"]``."""
    from tiles.build import build_mesh_layer  # numpy/shapely stacks only when building

    built = build_mesh_layer(
        engine,
        tiles_dir,
        layer,
        progress=progress,
        sensitive=settings.sensitive_utility_set,
        **options,
    )
    return built.to_dict()


def _summary_line(result: dict[str, Any]) -> str:
    layer = result.get("layer", "?")
    status = result.get("status", "built")
    if status != "built":
        return f"{layer}: {status}"
    size = result.get("bytes", 0) / 1e6
    if result.get("mode") == "incremental":
        return (
            f"{layer}: incremental, {result.get('tiles_rewritten', 0):,} of "
            f"{result.get('tiles', 0):,} tiles rewritten, {result.get('features', 0):,} features "
            f"in {result.get('seconds', 0)} s -> {result.get('path', '')}"
        )
    if layer == "pointcloud":
        return (
            f"{layer}: {result.get('features', 0):,} points, {result.get('tiles', 0):,} tiles, "
            f"{size:.1f} MB in {result.get('seconds', 0)} s -> {result.get('path', '')}"
        )
    return (
        f"{layer}: {result.get('features', 0):,} features, {result.get('tiles', 0):,} tiles, "
        f"{result.get('triangles', 0):,} triangles, {size:.1f} MB in {result.get('seconds', 0)} s"
        f" -> {result.get('path', '')}"
    )


def command(
    layer: Annotated[Layer, typer.Option("--layer", help="Which layer to build.")] = Layer.all,
    spec: Annotated[
        Spec, typer.Option("--spec", help="3D Tiles 1.1 (glb) or 1.0 (b3dm, older viewers).")
    ] = Spec.v11,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if the layer's datasets are unchanged.")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Rewrite every tile even when only new dataset versions changed (by default "
            "those rewrite only the tiles they touch).",
        ),
    ] = False,
    include_spaces: Annotated[
        bool, typer.Option("--include-spaces", help="Also tile IFC spaces (left out by default).")
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option("--dask", help="Render tiles on this dask scheduler (tcp://host:8786)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Render tiles on N local dask worker processes."),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", help="Publish to an fsspec URL (s3://bucket/tiles, file:///p)."),
    ] = None,
    compress: Annotated[
        bool,
        typer.Option(
            "--compress", help="meshopt-compress building/pipe content (EXT_meshopt_compression)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Build 3D Tiles (buildings, pipes, point clouds) and terrain; unchanged layers are skipped.

    A pipes layer whose datasets only gained new versions is refreshed incrementally: only the
    tiles the changes touch are rewritten (--full rewrites them all).

    The pointcloud layer is always 3D Tiles 1.0 (.pnts, py3dtiles); --spec applies to the others.
    """
    settings = load_settings()
    layers = EXPANDED.get(layer.value, [layer.value])
    results: list[dict[str, Any]] = []
    with (
        engine_scope(settings) as engine,
        renderer_scope(dask, workers) as renderer,
        output_scope(out, settings.tiles_dir) as output,
    ):
        for name in layers:
            with Progress(
                TextColumn(f"[bold]{name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task(name, total=None)

                def report(done: int, total: int, task: Any = task, bar: Progress = bar) -> None:
                    bar.update(task, completed=done, total=total)

                if name == "terrain":
                    results.append(output.publish(_terrain(engine, output.tiles_dir, report)))
                elif name == "pointcloud":
                    built_cloud = _pointcloud(engine, output.tiles_dir, force, report)
                    results.append(output.publish(built_cloud))
                else:
                    options = dict(spec=spec.value, force=force, full=full, compress=compress)
                    options |= dict(include_spaces=include_spaces, renderer=renderer)
                    built = _mesh(engine, output.tiles_dir, name, settings, report, options)
                    results.append(output.publish(built))
    text = "\n".join(_summary_line(r) for r in results)
    emit(results, as_json=as_json, text=text)  # always a list: one object per layer
