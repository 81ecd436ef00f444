"""The imported road network as an undirected weighted graph (scipy CSR), cached per version.

Why this shape: ``road_segment`` rows are already cut at every junction by the importer, so a
segment's two end points are its only graph nodes; ends closer than ``NODE_PRECISION_M`` are one
node (which also joins the ends of two road datasets). The weight of an edge is the segment's
2D length in the storage CRS; roads are walked both ways (one-way rules do not bind people on
foot). Parallel segments between the same two nodes keep the shorter length - a sparse matrix
would otherwise add them up. Datasets never change once ready (a re-import is a new dataset), so
a graph keyed by the (id, ready_at) of its datasets never goes stale; the last few are cached in
memory like ``cim.services.pipes.graph`` does for pipes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.graph_cache import GraphCache
from cim.services.roads.models import RoadNetworkSummary

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
NODE_PRECISION_M = 1e-3
CACHE_SIZE = 4
DatasetVersions = tuple[tuple[int, datetime | None], ...]


@dataclass
class RoadGraph:
    """Segments (edges) with their end nodes and lengths, and the symmetric adjacency matrix."""

    segments: npt.NDArray[np.object_]
    segment_start: IntArray
    segment_end: IntArray
    segment_length: FloatArray
    node_xy: FloatArray
    adjacency: Any  # scipy.sparse.csr_array, node x node, shortest parallel edge
    datasets: DatasetVersions = ()
    _tree: Any = field(default=None, repr=False)

    @property
    def node_count(self) -> int:
        return len(self.node_xy)

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    @property
    def tree(self) -> Any:
        """An STRtree over the segments (built on first use) for nearest-road look-ups."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.segments)
        return self._tree

    def summary(self) -> RoadNetworkSummary:
        """Counts a user can check the network with: components, dead ends, total length."""
        from scipy.sparse.csgraph import connected_components

        count, label = connected_components(self.adjacency, directed=False)
        length_by_component = np.bincount(
            label[self.segment_start], weights=self.segment_length, minlength=count
        )
        total = float(self.segment_length.sum())
        degree = np.bincount(
            np.concatenate([self.segment_start, self.segment_end]), minlength=self.node_count
        )
        return RoadNetworkSummary(
            segments=self.segment_count,
            nodes=self.node_count,
            length_km=round(total / 1000.0, 3),
            components=int(count),
            largest_component_share=round(float(length_by_component.max()) / total, 4)
            if total > 0
            else None,
            dead_ends=int((degree == 1).sum()),
        )


def graph_from_lines(
    lines: npt.NDArray[np.object_], *, datasets: DatasetVersions = ()
) -> RoadGraph:
    """The graph of noded road lines: end points are nodes, lines are edges (pure, no database).

    Examples
    --------
    >>> import shapely
    >>> g = graph_from_lines(np.array([shapely.LineString([(0, 0), (3, 4)]),
    ...                                shapely.LineString([(3, 4), (3, 10)])]))
    >>> g.node_count, g.segment_count, float(g.segment_length.sum())
    (3, 2, 11.0)
    """
    from scipy.sparse import csr_array

    lines = np.asarray(lines, dtype=object)
    m = len(lines)
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    last = np.flatnonzero(np.diff(owner, append=m)) if m else np.zeros(0, dtype=np.int64)
    first_vertex = np.concatenate([[0], last[:-1] + 1]) if m else last
    ends = np.vstack([coords[first_vertex], coords[last]]).reshape(-1, 2)
    first, inverse = unique_points(ends)
    start, end = inverse[:m], inverse[m:]
    length = np.asarray(shapely.length(lines), dtype=np.float64).reshape(m)
    n = len(first)
    rows, cols, weights = min_edges(
        np.concatenate([start, end]), np.concatenate([end, start]), np.tile(length, 2)
    )
    loops = rows == cols  # a loop never shortens a path
    adjacency = csr_array(
        (weights[~loops], (rows[~loops], cols[~loops])), shape=(n, n), dtype=np.float64
    )
    return RoadGraph(
        segments=lines,
        segment_start=start,
        segment_end=end,
        segment_length=length,
        node_xy=ends[first],
        adjacency=adjacency,
        datasets=datasets,
    )


def unique_points(xy: FloatArray) -> tuple[IntArray, IntArray]:
    """Points equal to ``NODE_PRECISION_M``: index of each distinct one, and each point's rank.

    A lexsort of the rounded coordinates (``np.unique(axis=0)`` sorts row bytes, several times
    slower on 10^5 points).
    """
    keys = np.round(xy / NODE_PRECISION_M).astype(np.int64)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(keys[order], axis=0) != 0).any(axis=1)
    rank = np.cumsum(new) - 1
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = rank
    first: IntArray = order[new].astype(np.int64)
    return first, inverse


def min_edges(
    rows: IntArray, cols: IntArray, weights: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """One edge per (row, col) with the smallest weight (a sparse matrix would sum duplicates)."""
    order = np.lexsort((weights, cols, rows))
    rows, cols, weights = rows[order], cols[order], weights[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return rows[first], cols[first], weights[first]


def road_datasets(session: Session, ids: list[int] | None) -> DatasetVersions:
    """(id, ready_at) of the ready road datasets to use: ``ids``, or every one.

    NotFound for an id that is not a ready roads dataset; InvalidInput when there are none at all.
    """
    bind: dict[str, Any] = {}
    where = "kind = 'roads' AND status = 'ready'"
    if ids is not None:
        where += " AND id = ANY(:ids)"
        bind["ids"] = list(ids)
    rows = session.execute(
        text(f"SELECT id, ready_at FROM dataset WHERE {where} ORDER BY id"), bind
    ).all()
    if ids is not None:
        missing = sorted(set(ids) - {int(r[0]) for r in rows})
        if missing:
            raise NotFound(f"no roads dataset with id {', '.join(map(str, missing))}")
    if not rows:
        raise InvalidInput(
            "distance 'network' needs a road network: import one with `cim import roads FILE` "
            "(or use distance 'euclidean')"
        )
    return tuple((int(r[0]), r[1]) for r in rows)


_cache: GraphCache[RoadGraph] = GraphCache(CACHE_SIZE)


def load_road_graph(session: Session, ids: list[int] | None) -> tuple[RoadGraph, bool]:
    """The graph of the chosen road datasets and whether it came from the cache."""
    key = road_datasets(session, ids)

    def build() -> RoadGraph:
        wkb = (
            session.execute(
                text(
                    "SELECT ST_AsBinary(geom) FROM road_segment WHERE dataset_id = ANY(:ids) "
                    "ORDER BY id"
                ),
                {"ids": [k[0] for k in key]},
            )
            .scalars()
            .all()
        )
        if not wkb:
            raise InvalidInput("the road datasets hold no segments")
        lines = np.asarray(shapely.from_wkb([bytes(b) for b in wkb]), dtype=object)
        return graph_from_lines(lines, datasets=key)

    return _cache.get_or_build(key, session, build)


def clear_cache() -> None:
    _cache.clear()
