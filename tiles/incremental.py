"""Refresh a tile layer after new dataset versions by rewriting only the tiles they touch.

Why it equals a full rebuild: the layer's manifest (:mod:`tiles.manifest`) keeps the feature
index the tree was cut from. The refresh replaces, in that index, the rows of the features the
new versions touched (:mod:`tiles.changes`; re-read with the full index's own SQL) and cuts the
tree again with :func:`tiles.subdivide.subdivide` - the very tree a full rebuild would cut from
the database, so the same features land in the same tiles with the same bounding volumes and
geometric errors. Subtrees whose features are all unchanged are taken from the manifest rather
than cut again (:mod:`tiles.reuse`), so cutting costs in proportion to the change. (Placing
the changed features into the old leaves instead would drift from a full rebuild as soon as a
leaf would split or a centre moves across a split line.)

A tile is then *clean* when it has the same key, the same features, the same box (hence the
same local frame) and the same leaf flag as in the manifest and none of its features was
touched: its file is hard-linked into the staged folder (same bytes, same inode). Every other
tile - the touched ones and those whose bounds or error changed, i.e. their ancestors - is
rendered again, and so is every coarse tile drawn from the buildings under it (the LOD1 blocks
of a REPLACE subtree, :mod:`tiles.coarse`) above a tile rendered again. ``tileset.json`` and
the manifest are rewritten whole and the folder is
swapped in atomically, as a full build does.

A full rebuild is done instead (the build result's ``full_reason`` says why) when there is no
readable manifest, the spec, triangle budget or an option changed, a dataset was added or
removed, a changed dataset is not of a versioned kind, its history since the build was purged,
or the layer became empty.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import Connection
from sqlalchemy import Engine

from cim.db.connect import storage_srid
from tiles import pipes
from tiles.atomic import atomic_layer
from tiles.changes import NotIncremental, touched_features, version_steps
from tiles.coarse import stale_ancestors
from tiles.content import TileFrame
from tiles.layers import MeshLayer
from tiles.manifest import (
    Manifest,
    known_transforms,
    read_manifest,
    read_manifest_head,
    sorted_index,
)
from tiles.record import BuildResult, read_stamp
from tiles.render import Progress, Renderer, RenderJob, TileOutput, frame_of
from tiles.reuse import PreviousTree
from tiles.subdivide import FeatureIndex, TileNode, subdivide
from tiles.write import describe_layer, render

log = logging.getLogger(__name__)


class StageTimes:
    """Seconds spent in each stage of a refresh, logged at DEBUG on ``tiles.incremental`` with
    ``extra={"stages": {stage: seconds}}`` (bench/versions.py prints them)."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        """End ``stage`` now (the time since the previous stage ended is added to it)."""
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self.last
        self.last = now


def refresh_layer(
    engine: Engine,
    target: Path,
    layer: MeshLayer,
    result: BuildResult,
    *,
    sensitive: frozenset[str],
    max_triangles: int,
    renderer: Renderer | None = None,
    compress: bool = False,
    progress: Progress | None = None,
) -> bool:
    """Refresh the layer at ``target`` in place of a full build; False (with
    ``result.full_reason`` set) when it must be rebuilt in full instead.

    Runs with the layer's build lock held (:func:`tiles.atomic.atomic_layer`), so the manifest
    and the files it reuses are those of the layer on disk, and nobody swaps it meanwhile.
    """
    if layer.source is not pipes:
        result.full_reason = "only the pipes layers refresh incrementally"
        return False
    lap = StageTimes()
    stamp = read_stamp(engine, layer.source.DATASET_KINDS)
    srid = storage_srid(engine)
    extension = "b3dm" if result.spec == "1.0" else "glb"
    try:
        with (
            engine.connect() as sa_connection,
            atomic_layer(target, remove_old_later=True) as folder,
        ):
            connection: Connection[Any] = sa_connection.connection.driver_connection  # type: ignore[assignment]
            lap("read stamp, lock")
            settings, versions = _usable_settings(target, result, max_triangles)
            # The manifest's arrays (tens of MB at city scale) are read on a thread while the
            # database says what changed.
            with ThreadPoolExecutor(max_workers=1) as reader:
                reading = reader.submit(read_manifest, target)
                changed = [k for k, v in result.dataset_versions.items() if settings[k] != v]
                steps = version_steps(sa_connection, versions, changed)
                touched = touched_features(sa_connection, steps)
                sa_connection.rollback()
                lap("read changes")
                current = pipes.load_index_of(
                    connection, touched, sensitive=sensitive, restricted=layer.restricted
                )
                connection.rollback()
                lap("query changed features")
                previous = reading.result()
            if previous is None or previous.settings != settings:
                raise NotIncremental("the layer's manifest could not be read")
            lap("load manifest")
            index = _updated_index(previous.index, touched, current)
            lap("merge index")
            if len(index) == 0:
                raise NotIncremental("the layer became empty")
            was_touched = _members(index.ids, touched)
            reuse = PreviousTree(previous, index, was_touched)
            lap("label previous tiles")
            root = subdivide(index, max_triangles=max_triangles, reuse=reuse)
            lap("cut tree")
            nodes = [node for node in root.walk() if node.rows.size]
            frames = _frames(nodes, previous, srid, reuse.reused)
            dirty, kept = _split(nodes, index, previous, was_touched, reuse.reused)
            dirty, kept = _with_stale_ancestors(root, nodes, dirty, kept)
            lap("find dirty tiles")
            (folder / "content").mkdir()
            # Linking the clean tiles (thousands of syscalls, the GIL released) runs on a
            # thread while the dirty ones are rendered here.
            with ThreadPoolExecutor(max_workers=1) as linker:
                names = [f"{record.key}.{extension}" for record in kept]
                linked = linker.submit(_link_all, names, target, folder)
                job = RenderJob(
                    result.layer, index, dirty, folder, result.spec, srid, extension, engine,
                    compress=compress,
                )  # fmt: skip
                fresh = render(job, renderer, layer.source, connection, frames, progress)
                linked.result()
            lap("render dirty tiles, link clean ones")
            outputs = {record.key: record for record in kept} | {o.key: o for o in fresh}
            describe_layer(
                folder, root, index, frames, outputs, result,
                srid=srid, extension=extension, stamp=stamp, max_triangles=max_triangles,
                regions={r.box.tobytes(): r.region.tolist() for r in previous.tiles.values()},
                transforms=known_transforms(previous.tiles),
                known_ids={record.key: previous.tiles[record.key].ids for record in kept},
                lap=lap,
            )  # fmt: skip
        lap("swap")
    except NotIncremental as reason:
        result.full_reason = str(reason)
        return False
    log.debug("incremental refresh stages", extra={"stages": lap.stages})
    result.status, result.mode, result.tiles_rewritten = "built", "incremental", len(fresh)
    result.rewritten_keys = sorted(output.key for output in fresh)
    return True


def _usable_settings(
    target: Path, result: BuildResult, max_triangles: int
) -> tuple[dict[str, str], dict[str, int]]:
    """The settings and dataset versions the layer on disk was built with, if a refresh can
    start from it (read from the manifest's small header, not its arrays)."""
    head = read_manifest_head(target)
    if head is None or not (target / "tileset.json").is_file():
        raise NotIncremental("the layer on disk has no manifest")
    if head.spec != result.spec or head.max_triangles != max_triangles:
        raise NotIncremental("the 3D Tiles version or the triangle budget changed")
    if set(head.settings) != set(result.dataset_versions):
        raise NotIncremental("a dataset was added or removed, or an option changed")
    for key, value in result.dataset_versions.items():
        if not key.isdigit() and head.settings[key] != value:  # options are named
            raise NotIncremental(f"the build option {key} changed")
    return head.settings, head.stamp.versions


def _updated_index(
    previous: FeatureIndex, touched: np.ndarray, current: FeatureIndex
) -> FeatureIndex:
    """``previous`` with the rows of ``touched`` replaced by ``current`` (those that still are
    features of the layer), ordered by id like a full build's index. Both are sorted by id,
    so this is a merge, not a sort of the whole layer."""
    keep = ~_members(previous.ids, touched)
    current = sorted_index(current)
    ids = previous.ids[keep]
    at = np.searchsorted(ids, current.ids)
    return FeatureIndex(
        np.insert(ids, at, current.ids),
        np.insert(previous.boxes[keep], at, current.boxes, axis=0),
        np.insert(previous.triangles[keep], at, current.triangles),
    )


def _members(sorted_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Which of the id-sorted ``sorted_ids`` are in the sorted ``wanted`` (one binary search
    per wanted id instead of a sort of the whole layer)."""
    found = np.zeros(sorted_ids.size, dtype=bool)
    at = np.searchsorted(sorted_ids, wanted)
    inside = at < sorted_ids.size
    hits = at[inside][sorted_ids[at[inside]] == wanted[inside]]
    found[hits] = True
    return found


def _split(
    nodes: list[TileNode],
    index: FeatureIndex,
    previous: Manifest,
    was_touched: np.ndarray,
    reused: set[str],
) -> tuple[list[TileNode], list[TileOutput]]:
    """The tiles to render again, and the outputs of the tiles whose files are kept
    (``was_touched``: per index row, whether the new versions touched the feature;
    ``reused``: tiles of subtrees taken whole from the previous build, clean by construction)."""
    dirty: list[TileNode] = []
    kept: list[TileOutput] = []
    for node in nodes:
        if node.key in reused:
            kept.append(previous.tiles[node.key].output)
            continue
        ids = np.sort(index.ids[node.rows])
        record = previous.tiles.get(node.key)
        if record is None or was_touched[node.rows].any() or not record.same_place(node, ids):
            dirty.append(node)
        else:
            kept.append(record.output)
    return dirty, kept


def _with_stale_ancestors(
    root: TileNode, nodes: list[TileNode], dirty: list[TileNode], kept: list[TileOutput]
) -> tuple[list[TileNode], list[TileOutput]]:
    """``dirty`` and ``kept`` with the coarse tiles drawn from a dirty tile's buildings moved
    to ``dirty`` (:func:`tiles.coarse.stale_ancestors`; none in a layer without them)."""
    stale = stale_ancestors(root, {node.key for node in dirty})
    stale -= {node.key for node in dirty}
    if not stale:
        return dirty, kept
    dirty = dirty + [node for node in nodes if node.key in stale]
    return dirty, [output for output in kept if output.key not in stale]


def _frames(
    nodes: list[TileNode], previous: Manifest, srid: int, reused: set[str]
) -> dict[str, TileFrame]:
    """Each content tile's ENU frame: the previous build's where the box is the same (the
    frame is a function of the box; always so in ``reused`` subtrees), computed for others."""
    frames = {}
    for node in nodes:
        record = previous.tiles.get(node.key)
        if record is not None and (node.key in reused or np.array_equal(record.box, node.box)):
            frames[node.key] = TileFrame(srid, record.matrix)
        else:
            frames[node.key] = frame_of(node, srid)
    return frames


def _link_all(names: list[str], target: Path, folder: Path) -> None:
    """Hard-link the unchanged tiles ``names`` from the layer at ``target`` into the staged
    ``folder`` (same bytes, same inode; a copy where links fail). Paths are resolved relative
    to open directories: tens of thousands of links cost a fraction of a second."""
    old = os.open(target / "content", os.O_RDONLY | os.O_DIRECTORY)
    new = os.open(folder / "content", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            try:
                os.link(name, name, src_dir_fd=old, dst_dir_fd=new, follow_symlinks=False)
            except FileNotFoundError:
                raise NotIncremental(f"the tile {name} of the previous build is missing") from None
            except OSError:  # a file system without hard links
                shutil.copy2(target / "content" / name, folder / "content" / name)
    finally:
        os.close(old)
        os.close(new)
