"""Build a 3D Tiles layer (buildings, pipes) from PostGIS into ``CIM_DATA_DIR/tiles/<layer>/``.

Flow: a compact feature index (id, 3D box, triangle estimate; 56 bytes a feature) is streamed
with a server-side cursor -> adaptive quadtree (:mod:`tiles.subdivide`) -> for each tile, its
rows are fetched, meshed in the tile's ENU frame and written as glb (or b3dm), so memory holds
one tile's geometry at a time -> ``tileset.json`` (:mod:`tiles.tileset`) -> atomic swap -> the
``tileset`` row records which dataset versions the layer holds (:mod:`tiles.record`), so an
unchanged layer is not rebuilt. The layers themselves are listed in :mod:`tiles.layers`.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import Connection
from sqlalchemy import Engine

from cim.db.connect import storage_srid
from cim.errors import DatabaseUnavailable, TilingError
from tiles.atomic import atomic_layer
from tiles.content import MeshParts, TileFrame, encode_tile
from tiles.gltf import FeatureTable
from tiles.layers import DEFAULT_SENSITIVE, LayerSource, MeshLayer, mesh_layer
from tiles.model import write_tileset
from tiles.record import BuildResult, dataset_versions, record, recorded
from tiles.render import (
    BATCH_TRIANGLES,
    Progress,
    Renderer,
    RenderJob,
    TileOutput,
    batches,
    frame_of,
    mesh_node,
)
from tiles.subdivide import DEFAULT_MAX_TRIANGLES, FeatureIndex, TileNode, subdivide
from tiles.tileset import content_tag, tileset_json

WRITES_IN_FLIGHT = 16  # keep at most a few tiles' bytes waiting for the writer thread

Meshed = list[tuple[MeshParts, FeatureTable]]


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
) -> BuildResult:
    """Build ``layer`` unless its datasets are unchanged since last time.

    ``layer`` is buildings, pipes (the public utility classes) or pipes_restricted (only the
    ``sensitive`` classes, written under ``restricted/``). ``include_spaces`` also tiles IFC
    spaces (translucent), which are left out by default. ``renderer`` writes the content tiles
    elsewhere than in this process (dask workers); the output is the same bytes. ``compress``
    writes meshopt-compressed content (``EXT_meshopt_compression``, ``KHR_mesh_quantization``).
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
    with engine.connect() as sa_connection:
        connection: Connection[Any] = sa_connection.connection.driver_connection  # type: ignore[assignment]
        index = source.load_index(connection, **index_options)
        connection.rollback()
        if len(index) == 0:
            result.status = "empty"
            shutil.rmtree(target, ignore_errors=True)  # its datasets are gone from the DB
            return
        root = subdivide(index, max_triangles=options.max_triangles)
        nodes = [node for node in root.walk() if node.rows.size]
        with atomic_layer(target) as folder:
            (folder / "content").mkdir()
            frames = {node.key: frame_of(node, srid) for node in nodes}
            job = RenderJob(
                result.layer, index, nodes, folder, result.spec, srid, extension, engine,
                compress=options.compress,
            )  # fmt: skip
            if options.renderer is not None:
                outputs = options.renderer(job, progress)
            else:
                outputs = _render_here(job, source, connection, frames, progress)
            connection.rollback()
            for output in outputs:
                _count(result, output)
            tag = content_tag({output.key: output.sha256 for output in outputs})
            tileset = tileset_json(
                root, index, frames, spec=result.spec, srid=srid, extension=extension, tag=tag
            )
            write_tileset(tileset, folder / "tileset.json")
            result.bytes += (folder / "tileset.json").stat().st_size
        result.status = "built"


def _render_here(
    job: RenderJob,
    source: LayerSource,
    connection: Connection[Any],
    frames: dict[str, TileFrame],
    progress: Progress | None,
) -> list[TileOutput]:
    """The local renderer: fetching and meshing the next batch of tiles (a thread) overlaps
    encoding this one, and a second thread writes the files (slow on some file systems)."""
    index = job.index
    weights = [int(index.triangles[node.rows].sum()) for node in job.nodes]
    groups = batches(job.nodes, weights, BATCH_TRIANGLES)
    outputs: list[TileOutput] = []
    writes: list[Future[int]] = []
    done, total = 0, len(index)
    with ThreadPoolExecutor(max_workers=1) as pool, ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future[Meshed] | None = None
        for position, batch in enumerate(groups):
            contents = (
                pending.result() if pending else _mesh(source, connection, index, frames, batch)
            )
            if position + 1 < len(groups):
                pending = pool.submit(
                    _mesh, source, connection, index, frames, groups[position + 1]
                )
            for node, (parts, table) in zip(batch, contents, strict=True):
                data = encode_tile(parts, table, spec=job.spec, compress=job.compress)
                path = job.folder / "content" / f"{node.key}.{job.extension}"
                writes.append(writer.submit(path.write_bytes, data))
                if len(writes) > WRITES_IN_FLIGHT:
                    writes.pop(0).result()
                digest = hashlib.sha256(data).hexdigest()
                outputs.append(
                    TileOutput(node.key, table.count, parts.triangle_count, len(data), digest)
                )
                done += int(node.rows.size)
                if progress is not None:
                    progress(done, total)
        for write in writes:
            write.result()  # surfaces a failed write before the layer is swapped in
    return outputs


def _mesh(
    source: LayerSource,
    connection: Connection[Any],
    index: FeatureIndex,
    frames: dict[str, TileFrame],
    batch: list[TileNode],
) -> Meshed:
    """Mesh a batch of tiles from one query: round trips, not rows, dominate small tiles."""
    rows = source.fetch_rows(connection, np.concatenate([index.ids[n.rows] for n in batch]))
    return [
        mesh_node(source, rows, index.ids[node.rows], frames[node.key], leaf=not node.children)
        for node in batch
    ]


def _count(result: BuildResult, output: TileOutput) -> None:
    result.tiles += 1
    result.features += output.features
    result.triangles += output.triangles
    result.bytes += output.bytes
    result.largest_tile_bytes = max(result.largest_tile_bytes, output.bytes)
