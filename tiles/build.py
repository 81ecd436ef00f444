"""Build a 3D Tiles layer (buildings, pipes) from PostGIS into ``CIM_DATA_DIR/tiles/<layer>/``.

Flow: a compact feature index (id, 3D box, triangle estimate; 56 bytes a feature) is streamed
with a server-side cursor -> adaptive quadtree (:mod:`tiles.subdivide`) -> for each tile, its
rows are fetched, meshed in the tile's ENU frame and written as glb (or b3dm), so memory holds
one tile's geometry at a time -> ``tileset.json`` -> atomic swap -> the ``tileset`` row records
which dataset versions the layer holds, so an unchanged layer is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import Connection
from sqlalchemy import Engine, text

from cim.crs import transformer
from cim.db.connect import storage_srid
from cim.errors import DatabaseUnavailable, InvalidInput, TilingError
from tiles import buildings, pipes
from tiles.atomic import atomic_layer
from tiles.content import MeshParts, TileFrame, encode_tile
from tiles.gltf import FeatureTable
from tiles.model import Tile, Tileset, write_tileset
from tiles.subdivide import DEFAULT_MAX_TRIANGLES, FeatureIndex, TileNode, subdivide

SPECS = ("1.1", "1.0")
BATCH_TRIANGLES = 40_000  # per content query: a few tiles, memory stays a few MB
REGION_MARGIN_RAD = 2e-9  # ~1 cm: regions are padded so that float rounding never clips a vertex
HEIGHT_MARGIN_M = 0.01

Progress = Callable[[int, int], None]
"""Called with (features done, features total) as tiles are written."""


@dataclass
class TileOutput:
    """What writing one tile's content produced (the build sums these; sha256 makes the tag)."""

    key: str
    features: int
    triangles: int
    bytes: int
    sha256: str


@dataclass
class RenderJob:
    """The content tiles of one build, for a renderer other than the local loop."""

    layer: str
    index: FeatureIndex
    nodes: list[TileNode]
    folder: Path
    spec: str
    srid: int
    extension: str
    engine: Engine


Renderer = Callable[[RenderJob, Progress | None], list[TileOutput]]
"""Writes every ``nodes`` tile as ``folder/content/<key>.<extension>`` (e.g. on dask workers,
:mod:`tiles.distributed`); must produce the bytes the local loop of :func:`_build` does."""


class LayerSource(Protocol):
    """What a 3D Tiles layer module provides (see :mod:`tiles.buildings`, :mod:`tiles.pipes`)."""

    DATASET_KIND: str

    def load_index(
        self,
        connection: Connection[Any],
        *,
        sensitive: frozenset[str],
        restricted: bool,
        include_spaces: bool,
    ) -> FeatureIndex: ...

    def fetch_rows(
        self, connection: Connection[Any], ids: npt.NDArray[np.int64]
    ) -> dict[int, tuple[Any, ...]]: ...

    def mesh_tile(
        self, keyed_rows: list[tuple[int, tuple[Any, ...]]], frame: TileFrame, *, leaf: bool
    ) -> tuple[MeshParts, FeatureTable]: ...


@dataclass(frozen=True)
class MeshLayer:
    """A layer: its source module, its folder under the tiles dir, and whether it holds only
    the sensitive utility classes (``restricted/`` is served only to callers with a key)."""

    source: LayerSource
    folder: str
    restricted: bool = False


MESH_LAYERS: dict[str, MeshLayer] = {
    "buildings": MeshLayer(buildings, "buildings"),
    "pipes": MeshLayer(pipes, "pipes"),
    "pipes_restricted": MeshLayer(pipes, "restricted/pipes", restricted=True),
}
DEFAULT_SENSITIVE = frozenset({"RQ", "DL"})
"""Gas and power, as ``CIM_SENSITIVE_UTILITIES`` defaults to."""


@dataclass
class BuildResult:
    """What one layer build did; ``status`` is built | up-to-date | empty."""

    layer: str
    status: str
    spec: str
    path: str
    features: int = 0
    tiles: int = 0
    triangles: int = 0
    bytes: int = 0
    largest_tile_bytes: int = 0
    seconds: float = 0.0
    dataset_versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_versions(engine: Engine, kind: str) -> dict[str, str]:
    """``{dataset id: sha256@ready_at}`` of the ready datasets a layer is built from."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, source_sha256, ready_at FROM dataset "
                "WHERE kind = :kind AND status = 'ready' ORDER BY id"
            ),
            {"kind": kind},
        ).all()
    return {
        str(r.id): f"{r.source_sha256}@{r.ready_at.isoformat() if r.ready_at else ''}" for r in rows
    }


def _recorded(engine: Engine, layer: str) -> tuple[str, dict[str, Any]] | None:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT spec, dataset_versions FROM tileset WHERE layer = :layer"),
            {"layer": layer},
        ).first()
    return None if row is None else (str(row.spec), dict(row.dataset_versions))


def _record(engine: Engine, result: BuildResult) -> None:
    stats = {k: v for k, v in result.to_dict().items() if k not in {"dataset_versions", "path"}}
    with engine.begin() as connection:
        if result.status == "empty":
            connection.execute(text("DELETE FROM tileset WHERE layer = :l"), {"l": result.layer})
            return
        connection.execute(
            text(
                "INSERT INTO tileset (layer, spec, dataset_versions, stats, built_at) "
                "VALUES (:layer, :spec, CAST(:versions AS jsonb), CAST(:stats AS jsonb), now()) "
                "ON CONFLICT (layer) DO UPDATE SET spec = excluded.spec, "
                "dataset_versions = excluded.dataset_versions, stats = excluded.stats, "
                "built_at = excluded.built_at"
            ),
            {
                "layer": result.layer,
                "spec": result.spec,
                "versions": json.dumps(result.dataset_versions),
                "stats": json.dumps(stats),
            },
        )


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
) -> BuildResult:
    """Build ``layer`` unless its datasets are unchanged since last time.

    ``layer`` is buildings, pipes (the public utility classes) or pipes_restricted (only the
    ``sensitive`` classes, written under ``restricted/``). ``include_spaces`` also tiles IFC
    spaces (translucent), which are left out by default. ``renderer`` writes the content tiles
    elsewhere than in this process (dask workers); the output is the same bytes.
    """
    if layer not in MESH_LAYERS:
        raise InvalidInput(f"unknown 3D Tiles layer {layer!r} ({', '.join(MESH_LAYERS)})")
    if spec not in SPECS:
        raise InvalidInput(f"unknown 3D Tiles version {spec!r} (1.1 or 1.0)")
    mesh_layer = MESH_LAYERS[layer]
    source = mesh_layer.source
    target = Path(tiles_dir) / mesh_layer.folder
    versions = dataset_versions(engine, source.DATASET_KIND)
    if source is pipes:  # the split between the public and the restricted layer is an input
        versions["sensitive_utilities"] = ",".join(sorted(c.upper() for c in sensitive))
    if source is buildings and include_spaces:
        versions["include_spaces"] = "yes"
    result = BuildResult(layer, "up-to-date", spec, str(target), dataset_versions=versions)
    recorded = _recorded(engine, layer)
    if not force and recorded == (spec, versions) and (target / "tileset.json").exists():
        return result
    started = time.perf_counter()
    try:
        index_options = {
            "sensitive": sensitive,
            "restricted": mesh_layer.restricted,
            "include_spaces": include_spaces,
        }
        _build(
            engine, target, layer, index_options, result, spec, progress, max_triangles, renderer
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"the database went away while tiling {layer}: {exc}") from exc
    except (OSError, ValueError, psycopg.Error) as exc:
        raise TilingError(f"building the {layer} tiles failed: {exc}") from exc
    result.seconds = round(time.perf_counter() - started, 3)
    _record(engine, result)
    return result


def frame_of(node: TileNode, srid: int) -> TileFrame:
    """The ENU frame a tile's content is meshed in: at the centre of its box."""
    centre = (node.box[:3] + node.box[3:]) / 2
    return TileFrame.at(srid, *map(float, centre))


def mesh_node(
    source: LayerSource,
    rows: dict[int, tuple[Any, ...]],
    ids: npt.NDArray[np.int64],
    frame: TileFrame,
    *,
    leaf: bool,
) -> tuple[MeshParts, FeatureTable]:
    """Mesh one tile from its fetched rows, features in a fixed order (so bytes are stable)."""
    keys = sorted((int(k) for k in ids if int(k) in rows), key=lambda k: (k < 0, abs(k)))
    return source.mesh_tile([(k, rows[k]) for k in keys], frame, leaf=leaf)


def _build(
    engine: Engine,
    target: Path,
    layer: str,
    index_options: dict[str, Any],
    result: BuildResult,
    spec: str,
    progress: Progress | None,
    max_triangles: int,
    renderer: Renderer | None = None,
) -> None:
    source = MESH_LAYERS[layer].source
    srid = storage_srid(engine)
    extension = "b3dm" if spec == "1.0" else "glb"
    digests: dict[str, str] = {}
    with engine.connect() as sa_connection:
        connection: Connection[Any] = sa_connection.connection.driver_connection  # type: ignore[assignment]
        index = source.load_index(connection, **index_options)
        connection.rollback()
        if len(index) == 0:
            result.status = "empty"
            shutil.rmtree(target, ignore_errors=True)  # its datasets are gone from the DB
            return
        root = subdivide(index, max_triangles=max_triangles)
        frames: dict[str, TileFrame] = {}
        content_nodes = [node for node in root.walk() if node.rows.size]
        total = len(index)
        done = 0
        with (
            atomic_layer(target) as folder,
            ThreadPoolExecutor(max_workers=1) as pool,
            ThreadPoolExecutor(max_workers=1) as writer,
        ):
            (folder / "content").mkdir()
            if renderer is not None:
                job = RenderJob(layer, index, content_nodes, folder, spec, srid, extension, engine)
                for output in renderer(job, progress):
                    _count(result, output)
                    digests[output.key] = output.sha256
                frames.update({node.key: frame_of(node, srid) for node in content_nodes})
                content_nodes = []  # written: the local loop below has nothing to do

            def fetch(batch: list[TileNode]) -> list[tuple[MeshParts, FeatureTable]]:
                # One query per batch of tiles: round trips, not rows, dominate small tiles.
                rows = source.fetch_rows(
                    connection, np.concatenate([index.ids[n.rows] for n in batch])
                )
                out = []
                for node in batch:
                    frames[node.key] = frame_of(node, srid)
                    ids = index.ids[node.rows]
                    leaf = not node.children
                    out.append(mesh_node(source, rows, ids, frames[node.key], leaf=leaf))
                return out

            batches = _batches(content_nodes, index, BATCH_TRIANGLES)
            writes: list[Future[int]] = []
            # Fetching and meshing the next batch overlaps encoding and writing this one.
            pending: Future[list[tuple[MeshParts, FeatureTable]]] | None = None
            for position, batch in enumerate(batches):
                contents = pending.result() if pending else fetch(batch)
                if position + 1 < len(batches):
                    pending = pool.submit(fetch, batches[position + 1])
                for node, (parts, table) in zip(batch, contents, strict=True):
                    data = encode_tile(parts, table, spec=spec)
                    # Creating files is slow on some file systems: a thread writes them.
                    path = folder / "content" / f"{node.key}.{extension}"
                    writes.append(writer.submit(path.write_bytes, data))
                    if len(writes) > 16:  # keep at most a few tiles' bytes in flight
                        writes.pop(0).result()
                    digests[node.key] = hashlib.sha256(data).hexdigest()
                    _count(
                        result,
                        TileOutput(node.key, table.count, parts.triangle_count, len(data), ""),
                    )
                    done += int(node.rows.size)
                    if progress is not None:
                        progress(done, total)
            for write in writes:
                write.result()  # surfaces a failed write before the layer is swapped in
            connection.rollback()
            # Content URLs carry a tag so servers can mark them immutable and caches never mix
            # tiles of two builds (file names are tile keys and repeat from build to build).
            # The tag hashes the content, so equal builds (local or on dask) are equal bytes.
            signature = "".join(f"{key}:{digests[key]}\n" for key in sorted(digests))
            tag = hashlib.sha256(signature.encode()).hexdigest()[:12]
            tileset: Tileset = {
                "asset": {"version": spec, "generator": "cim tiles build"},
                "geometricError": float(max(index.size.max(), root.geometric_error)),
                "root": _tile_json(root, np.identity(4), frames, srid, f"{extension}?v={tag}"),
            }
            tileset["root"]["refine"] = "ADD"
            write_tileset(tileset, folder / "tileset.json")
            result.bytes += (folder / "tileset.json").stat().st_size
        result.status = "built"


def _count(result: BuildResult, output: TileOutput) -> None:
    result.tiles += 1
    result.features += output.features
    result.triangles += output.triangles
    result.bytes += output.bytes
    result.largest_tile_bytes = max(result.largest_tile_bytes, output.bytes)


def _batches(
    nodes: list[TileNode], index: FeatureIndex, max_triangles: int
) -> list[list[TileNode]]:
    """Consecutive tiles grouped so that each group holds about ``max_triangles``."""
    batches: list[list[TileNode]] = []
    current: list[TileNode] = []
    weight = 0
    for node in nodes:
        node_weight = int(index.triangles[node.rows].sum())
        if current and weight + node_weight > max_triangles:
            batches.append(current)
            current, weight = [], 0
        current.append(node)
        weight += node_weight
    if current:
        batches.append(current)
    return batches


def _region(box: npt.NDArray[np.float64], srid: int) -> list[float]:
    west, south, east, north = transformer(srid, 4326).transform_bounds(
        float(box[0]), float(box[1]), float(box[3]), float(box[4]), densify_pts=21
    )
    return [
        float(np.radians(west)) - REGION_MARGIN_RAD,
        float(np.radians(south)) - REGION_MARGIN_RAD,
        float(np.radians(east)) + REGION_MARGIN_RAD,
        float(np.radians(north)) + REGION_MARGIN_RAD,
        float(box[2]) - HEIGHT_MARGIN_M,
        float(box[5]) + HEIGHT_MARGIN_M,
    ]


def _tile_json(
    node: TileNode,
    parent_world: npt.NDArray[np.float64],
    frames: dict[str, TileFrame],
    srid: int,
    extension: str,
) -> Tile:
    """The tile of ``node``; transforms are relative to the parent's (3D Tiles composes them)."""
    frame = frames.get(node.key)
    world = parent_world if frame is None else frame.matrix
    children = [_tile_json(c, world, frames, srid, extension) for c in node.children]
    region = _region(node.box, srid)
    for child in children:  # a parent region always covers its children's, rounding included
        child_region = child["boundingVolume"]["region"]
        region[0:2] = np.minimum(region[0:2], child_region[0:2]).tolist()
        region[2:4] = np.maximum(region[2:4], child_region[2:4]).tolist()
        region[4] = min(region[4], child_region[4])
        region[5] = max(region[5], child_region[5])
    tile: Tile = {"boundingVolume": {"region": region}, "geometricError": node.geometric_error}
    if frame is not None:
        relative = np.linalg.solve(parent_world, frame.matrix)
        tile["transform"] = [float(v) for v in relative.T.reshape(-1)]  # column-major
        tile["content"] = {"uri": f"content/{node.key}.{extension}"}
    if children:
        tile["children"] = children
    return tile
