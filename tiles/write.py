"""Writing a layer into its staged folder: content tiles rendered here, ``tileset.json`` and the
manifest. Shared by the full build (:mod:`tiles.build`) and the incremental refresh
(:mod:`tiles.incremental`), so both write the very same bytes for the same tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import Connection

from tiles.content import MeshParts, TileFrame, encode_tile
from tiles.forked import processes_for, render_forked
from tiles.gltf import FeatureTable
from tiles.layers import LayerSource
from tiles.manifest import Manifest, Stamp, tile_records, tree_of, write_manifest
from tiles.model import write_tileset
from tiles.record import BuildResult
from tiles.render import (
    BATCH_TRIANGLES,
    Progress,
    Renderer,
    RenderJob,
    TileOutput,
    batches,
    mesh_node,
)
from tiles.subdivide import FeatureIndex, TileNode
from tiles.tileset import content_tag, tileset_json

WRITES_IN_FLIGHT = 16  # keep at most a few tiles' bytes waiting for the writer thread

Meshed = list[tuple[MeshParts, FeatureTable]]


def render(
    job: RenderJob,
    renderer: Renderer | None,
    source: LayerSource,
    connection: Connection[Any],
    frames: dict[str, TileFrame],
    progress: Progress | None,
) -> list[TileOutput]:
    """Write the content of ``job.nodes`` with ``renderer`` (dask) or here."""
    if not job.nodes:
        return []
    if renderer is not None:
        return renderer(job, progress)
    outputs = render_here(job, source, connection, frames, progress)
    connection.rollback()
    return outputs


def render_here(
    job: RenderJob,
    source: LayerSource,
    connection: Connection[Any],
    frames: dict[str, TileFrame],
    progress: Progress | None,
) -> list[TileOutput]:
    """The local renderer: batches of tiles (one content query each), in this process or, for
    a large layer, also in forked children (:mod:`tiles.forked`); same bytes either way."""
    index = job.index
    weights = [int(index.triangles[node.rows].sum()) for node in job.nodes]
    groups = batches(job.nodes, weights, BATCH_TRIANGLES)
    processes = min(processes_for(sum(weights)), len(groups))

    def render_part(
        on: Connection[Any], part: Sequence[list[TileNode]], told: Progress | None
    ) -> list[TileOutput]:
        return render_batches(job, source, on, frames, part, told)

    if processes <= 1:
        return render_part(connection, groups, progress)
    total = sum(int(node.rows.size) for node in job.nodes)
    return render_forked(job.engine, connection, groups, render_part, processes, progress, total)


def render_batches(
    job: RenderJob,
    source: LayerSource,
    connection: Connection[Any],
    frames: dict[str, TileFrame],
    groups: Sequence[list[TileNode]],
    progress: Progress | None,
) -> list[TileOutput]:
    """Render ``groups`` (batches of tiles), a pipeline: the database fetches batch k+2's rows
    (a thread that mostly waits on the server, which works on its own core) while batch k+1
    is meshed (a second thread) and batch k encoded here; a third thread writes the files
    (slow on some file systems). Fetching and meshing on one thread left the server idle
    while it meshed. ``progress`` is told (features done, features of ``groups``)."""
    index = job.index
    # per tile: what it holds, and its file's write, which returns the file's sha256
    written: list[tuple[tuple[str, int, int, int], Future[str]]] = []
    done = 0
    total = sum(int(node.rows.size) for batch in groups for node in batch)
    with (
        ThreadPoolExecutor(max_workers=1) as fetcher,
        ThreadPoolExecutor(max_workers=1) as mesher,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):
        fetched: dict[int, Future[dict[int, Any]]] = {}
        meshed: dict[int, Future[Meshed]] = {}

        def fetch(position: int) -> None:
            if position < len(groups) and position not in fetched:
                ids = np.concatenate([index.ids[n.rows] for n in groups[position]])
                fetched[position] = fetcher.submit(source.fetch_rows, connection, ids)

        def mesh(position: int) -> None:
            if position < len(groups) and position not in meshed:
                fetch(position)
                rows = fetched.pop(position)
                meshed[position] = mesher.submit(
                    _mesh, source, rows, index, frames, groups[position]
                )

        for position, batch in enumerate(groups):
            mesh(position)
            mesh(position + 1)
            fetch(position + 2)
            contents = meshed.pop(position).result()
            for node, (parts, table) in zip(batch, contents, strict=True):
                data = encode_tile(parts, table, spec=job.spec, compress=job.compress)
                path = job.folder / "content" / f"{node.key}.{job.extension}"
                held = (node.key, table.count, parts.triangle_count, len(data))
                written.append((held, writer.submit(_write_and_digest, path, data)))
                if len(written) > WRITES_IN_FLIGHT:
                    written[-WRITES_IN_FLIGHT - 1][1].result()  # a few tiles' bytes in flight
                done += int(node.rows.size)
                if progress is not None:
                    progress(done, total)
        # .result() surfaces a failed write before the layer is swapped in
        return [TileOutput(*held, write.result()) for held, write in written]


def _write_and_digest(path: Path, data: bytes) -> str:
    """Write a tile file and hash its bytes (on the writer thread: sha256 releases the GIL
    and is, at ~0.4 GB/s on this kind of machine, a tenth of a refresh otherwise)."""
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _mesh(
    source: LayerSource,
    fetched: Future[dict[int, Any]],
    index: FeatureIndex,
    frames: dict[str, TileFrame],
    batch: list[TileNode],
) -> Meshed:
    """Mesh a batch of tiles from the rows of one query (round trips, not rows, dominate
    small tiles)."""
    rows = fetched.result()
    return [
        mesh_node(source, rows, index.ids[node.rows], frames[node.key], leaf=not node.children)
        for node in batch
    ]


def describe_layer(
    folder: Path,
    root: TileNode,
    index: FeatureIndex,
    frames: dict[str, TileFrame],
    outputs: dict[str, TileOutput],
    result: BuildResult,
    *,
    srid: int,
    extension: str,
    stamp: Stamp,
    max_triangles: int,
    regions: dict[bytes, list[float]] | None = None,
    transforms: dict[bytes, list[float]] | None = None,
    known_ids: dict[str, npt.NDArray[np.int64]] | None = None,
    lap: Callable[[str], None] | None = None,
) -> None:
    """Write ``tileset.json`` and the manifest of the tree under ``root`` whose content files
    are ``outputs`` (by key), and add them all up into ``result``. ``regions``: the regions
    already known by box, ``transforms`` those known by matrices (see
    :func:`tiles.tileset.tileset_json`), ``known_ids`` the sorted feature ids of tiles known to
    be unchanged. ``lap`` is told when the tileset and the manifest are written (stage
    timings of a refresh)."""
    known = {} if regions is None else regions
    relatives = {} if transforms is None else transforms
    for output in outputs.values():
        result.tiles += 1
        result.features += output.features
        result.triangles += output.triangles
        result.bytes += output.bytes
        result.largest_tile_bytes = max(result.largest_tile_bytes, output.bytes)
    tag = content_tag({key: output.sha256 for key, output in outputs.items()})
    tileset = tileset_json(
        root,
        index,
        frames,
        spec=result.spec,
        srid=srid,
        extension=extension,
        tag=tag,
        regions=known,
        transforms=relatives,
    )
    write_tileset(tileset, folder / "tileset.json")
    result.bytes += (folder / "tileset.json").stat().st_size
    if lap is not None:
        lap("write tileset.json")
    manifest = Manifest(
        layer=result.layer,
        spec=result.spec,
        settings=dict(result.dataset_versions),
        max_triangles=max_triangles,
        stamp=stamp,
        index=index,
        tiles=tile_records(root, index, outputs, frames, known, relatives, known_ids),
        tree=tree_of(root),
    )
    write_manifest(folder, manifest)
    if lap is not None:
        lap("write manifest")
