"""Spatial hierarchy: an adaptive quadtree over the storage CRS with ADD refinement.

Each feature lives in exactly one tile. A tile that would exceed the triangle budget keeps its
*largest* features (those still visible at its scale) up to the budget and hands the rest to
four children split at the middle of their centres. The geometric error of a tile is therefore
exactly what rendering it without its children leaves out: the size (3D bounding-box diagonal)
of the largest feature stored below it; leaves have error 0. Bounding volumes are unions of the
real feature boxes, so a child always lies inside its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import Connection

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFAULT_MAX_TRIANGLES = 10_000
"""About 1 MB of glb per tile (positions, normals, colours and ids: ~100 bytes per triangle)."""
KEEP_RATIO = 1.0 / 16.0
"""A feature stays in a coarse tile only if it is at least this fraction of the tile's width."""
MAX_DEPTH = 16

Reuse = Callable[[str, "IntArray"], "TileNode | None"]
"""Given a tile's key and rows, an already known identical subtree (or None to cut it)."""


@dataclass
class FeatureIndex:
    """Compact per-feature index (56 bytes a feature): id, 3D box, triangle estimate."""

    ids: IntArray
    boxes: FloatArray  # (n, 6): minx, miny, minz, maxx, maxy, maxz in the storage CRS
    triangles: IntArray
    city: Any = None
    """The buildings layer's city-model surface columns, read in the same pass as the index
    (:class:`tiles.city_surfaces.CitySurfaces`, sorted by id on their own); None elsewhere."""

    @cached_property
    def size(self) -> FloatArray:
        """3D diagonal of every feature box (m); computed once (the cut and the tileset both
        need it, and a city layer has millions of boxes)."""
        extent = self.boxes[:, 3:] - self.boxes[:, :3]
        return np.asarray(np.sqrt((extent**2).sum(axis=1)))

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class TileNode:
    """One tile: the index rows of its content, its children and its honest error."""

    key: str
    rows: IntArray
    box: FloatArray
    geometric_error: float = 0.0
    children: list[TileNode] = field(default_factory=list)
    refine: str | None = None
    """ADD or REPLACE where it differs from the parent's (the root's default is ADD)."""

    def walk(self) -> list[TileNode]:
        """This tile and every descendant, parents first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def _union(boxes: FloatArray) -> FloatArray:
    return np.concatenate([boxes[:, :3].min(axis=0), boxes[:, 3:].max(axis=0)])


def subdivide(
    index: FeatureIndex,
    *,
    max_triangles: int = DEFAULT_MAX_TRIANGLES,
    keep_ratio: float = KEEP_RATIO,
    max_depth: int = MAX_DEPTH,
    reuse: Reuse | None = None,
) -> TileNode:
    """The tile tree of ``index`` (an empty root when the index is empty).

    The subtree of a tile depends only on the features given to it (their order is always by
    size, then id, when ``index`` is sorted by id). ``reuse`` may return the subtree of a
    previous cut for the same key and features, which is then taken as it is
    (:mod:`tiles.reuse`).
    """
    if len(index) == 0:
        return TileNode("r", np.zeros(0, dtype=np.int64), np.zeros(6))
    size = index.size
    centre = (index.boxes[:, :2] + index.boxes[:, 3:5]) / 2
    root = _build(
        "r",
        np.arange(len(index), dtype=np.int64),
        0,
        index,
        size,
        centre,
        max_triangles,
        keep_ratio,
        max_depth,
        reuse,
    )
    return root


def _build(
    key: str,
    rows: IntArray,
    depth: int,
    index: FeatureIndex,
    size: FloatArray,
    centre: FloatArray,
    max_triangles: int,
    keep_ratio: float,
    max_depth: int,
    reuse: Reuse | None = None,
) -> TileNode:
    if reuse is not None and (known := reuse(key, rows)) is not None:
        return known
    weight = index.triangles[rows]
    centres = centre[rows]  # one gather (near the root these are millions of rows)
    lo = centres.min(axis=0)
    hi = centres.max(axis=0)
    spread = float((hi - lo).max())
    if int(weight.sum()) <= max_triangles or depth >= max_depth or spread < 0.5:
        return TileNode(key, rows, _union(index.boxes[rows]))
    box = _union(index.boxes[rows])
    width = float(max(box[3] - box[0], box[4] - box[1]))
    order = rows[np.argsort(-size[rows], kind="stable")]
    visible = size[order] >= width * keep_ratio
    fits = np.cumsum(index.triangles[order]) <= max_triangles // 2
    keep_count = int(np.argmin(visible & fits)) if not (visible & fits).all() else len(order)
    keep, rest = order[:keep_count], order[keep_count:]
    middle = (lo + hi) / 2
    quadrant = (centre[rest, 0] >= middle[0]).astype(np.int64) + 2 * (
        centre[rest, 1] >= middle[1]
    ).astype(np.int64)
    node = TileNode(key, np.sort(keep), box, float(size[rest].max()))
    for q in range(4):
        part = rest[quadrant == q]
        if part.size:
            node.children.append(
                _build(
                    key + str(q),
                    part,
                    depth + 1,
                    index,
                    size,
                    centre,
                    max_triangles,
                    keep_ratio,
                    max_depth,
                    reuse,
                )
            )
    return node


def fetch_index(connection: Connection[Any], sql: str) -> FeatureIndex:
    """Stream ``sql`` (id, minx, miny, minz, maxx, maxy, maxz, triangles) through a server-side
    cursor into a :class:`FeatureIndex`, 20,000 rows at a time."""
    ids: list[npt.NDArray[np.int64]] = []
    boxes: list[npt.NDArray[np.float64]] = []
    triangles: list[npt.NDArray[np.int64]] = []
    with connection.cursor(name="cim_tiles_index", binary=True) as cursor:
        cursor.itersize = 20_000
        cursor.execute(sql)
        while rows := cursor.fetchmany(20_000):
            array = np.array(rows, dtype=np.float64)
            ids.append(np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
            boxes.append(array[:, 1:7])
            triangles.append(array[:, 7].astype(np.int64))
    if not ids:
        return FeatureIndex(np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros(0, np.int64))
    return FeatureIndex(np.concatenate(ids), np.concatenate(boxes), np.concatenate(triangles))


def without_jit(cursor: Any) -> None:
    """JIT compilation off for the rest of the transaction of ``cursor``.

    Why: a content query looks up a few thousand rows by id, yet its cost estimate (a
    subquery per row that is never run) makes PostgreSQL compile it, inlined and optimised,
    for every batch of tiles: 66 ms against 21 ms for 4,000 LOD1 blocks, 0.5 s against
    0.17 s for 40,000, most of a city layer's server time."""
    cursor.execute("SELECT set_config('jit', 'off', true)")
