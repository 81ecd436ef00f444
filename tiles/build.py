"""Build a 3D Tiles layer (buildings, pipes) from PostGIS into ``CIM_DATA_DIR/tiles/<layer>/``.

Flow: a compact feature index (id, 3D box, triangle estimate; 56 bytes a feature) is streamed
with a server-side cursor -> adaptive quadtree (:mod:`tiles.subdivide`; city-model buildings:
LOD1 blocks over detail leaves, :mod:`tiles.coarse`) -> for each tile, its rows are fetched,
meshed in the tile's ENU frame and written as glb (or b3dm), so memory holds one tile's
geometry at a time -> ``tileset.json`` (:mod:`tiles.tileset`) -> atomic swap -> the
``tileset`` row records which dataset versions the layer holds (:mod:`tiles.record`), so an
unchanged layer is not rebuilt. A manifest of where every feature went is written with the
tiles (:mod:`tiles.manifest`), so that new versions of the datasets rewrite only the tiles they
touch (:mod:`tiles.incremental`). The layers themselves are listed in :mod:`tiles.layers`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import Connection
from sqlalchemy import Engine

from cim.db.connect import storage_srid
from cim.errors import DatabaseUnavailable, TilingError
from tiles.atomic import atomic_layer
from tiles.incremental import refresh_layer
from tiles.layers import DEFAULT_SENSITIVE, MeshLayer, cut_tree, mesh_layer
from tiles.manifest import sorted_index
from tiles.record import BuildResult, dataset_versions, read_stamp, record, recorded
from tiles.render import Progress, Renderer, RenderJob, frame_of
from tiles.subdivide import DEFAULT_MAX_TRIANGLES
from tiles.write import describe_layer, render


def build_mesh_layer(
    engine: Engine,
    tiles_dir: Path,
    layer: str,
    *,
    spec: str = "1.1",
    force: bool = False,
    progress: Progress | None = None,
    max_triangles: int = DEFAULT_MAX_TRIANGLES,
    sensitive: frozenset[str] = DEFAULT_SENSITIVE,
    include_spaces: bool = False,
    renderer: Renderer | None = None,
    compress: bool = False,
    full: bool = False,
) -> BuildResult:
    """Build ``layer`` unless its datasets are unchanged since last time.

    ``layer`` is buildings, pipes (the public utility classes) or pipes_restricted (only the
    ``sensitive`` classes, written under ``restricted/``). ``include_spaces`` also tiles IFC
    spaces (translucent), which are left out by default. ``renderer`` writes the content tiles
    elsewhere than in this process (dask workers); the output is the same bytes. ``compress``
    writes meshopt-compressed content (``EXT_meshopt_compression``, ``KHR_mesh_quantization``).

    When the only change since the last build is new versions of its datasets, only the tiles
    they touch are rewritten (:mod:`tiles.incremental`; the result says ``mode`` incremental
    and how many ``tiles_rewritten``); ``full`` (or ``force``) rebuilds every tile instead.
    """
    chosen = mesh_layer(layer, spec)
    target = Path(tiles_dir) / chosen.folder
    versions = dataset_versions(engine, chosen.source.DATASET_KINDS)
    versions |= chosen.options(sensitive, include_spaces)
    if compress:
        versions["compression"] = "meshopt"
    result = BuildResult(layer, "up-to-date", spec, str(target), dataset_versions=versions)
    last = recorded(engine, layer)
    if not force and last == (spec, versions) and (target / "tileset.json").exists():
        return result
    started = time.perf_counter()
    try:
        done = False
        if not (force or full):
            done = refresh_layer(
                engine, target, chosen, result, sensitive=sensitive, max_triangles=max_triangles,
                renderer=renderer, compress=compress, progress=progress,
            )  # fmt: skip
        if not done:
            index_options = {
                "sensitive": sensitive,
                "restricted": chosen.restricted,
                "include_spaces": include_spaces,
            }
            options = _Options(max_triangles, renderer, compress)
            _build(engine, target, chosen, index_options, result, progress, options)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"the database went away while tiling {layer}: {exc}") from exc
    except (OSError, ValueError, psycopg.Error) as exc:
        raise TilingError(f"building the {layer} tiles failed: {exc}") from exc
    result.seconds = round(time.perf_counter() - started, 3)
    record(engine, result)
    return result


@dataclass(frozen=True)
class _Options:
    """How to build the content: triangle budget per tile, renderer, compression."""

    max_triangles: int
    renderer: Renderer | None
    compress: bool


def _build(
    engine: Engine,
    target: Path,
    layer: MeshLayer,
    index_options: dict[str, Any],
    result: BuildResult,
    progress: Progress | None,
    options: _Options,
) -> None:
    """Index, subdivide, render and describe ``layer``, then swap it in at ``target``."""
    source = layer.source
    srid = storage_srid(engine)
    extension = "b3dm" if result.spec == "1.0" else "glb"
    stamp = read_stamp(engine, source.DATASET_KINDS)  # before the index: see read_stamp
    with engine.connect() as sa_connection:
        connection: Connection[Any] = sa_connection.connection.driver_connection  # type: ignore[assignment]
        index = sorted_index(source.load_index(connection, **index_options))
        if len(index) == 0:
            connection.rollback()
            result.status = "empty"
            shutil.rmtree(target, ignore_errors=True)  # its datasets are gone from the DB
            return
        index, root = cut_tree(layer, index, options.max_triangles)
        connection.rollback()
        nodes = [node for node in root.walk() if node.rows.size]
        with atomic_layer(target, remove_old_later=True) as folder:
            (folder / "content").mkdir()
            frames = {node.key: frame_of(node, srid) for node in nodes}
            job = RenderJob(
                result.layer, index, nodes, folder, result.spec, srid, extension, engine,
                compress=options.compress,
            )  # fmt: skip
            outputs = render(job, options.renderer, source, connection, frames, progress)
            describe_layer(
                folder, root, index, frames, {output.key: output for output in outputs}, result,
                srid=srid, extension=extension, stamp=stamp, max_triangles=options.max_triangles,
            )  # fmt: skip
        result.status = "built"
        result.tiles_rewritten = result.tiles
