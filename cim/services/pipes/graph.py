"""The pipe network of one dataset as an in-memory graph (numpy arrays + CSR incidence), cached.

Why in memory: isolation, tracing and profiles walk the graph thousands of times per second;
loading a 100k-segment dataset once (about a second) and walking Python lists afterwards costs
well under a millisecond per valve ring, where a pgRouting or recursive-CTE round trip per
request costs tens of milliseconds (``bench/analysis.py`` measures both; pgRouting is not
installed with the embedded PostGIS). A graph is keyed by (dataset id, ready_at): datasets do
not change once ready - a re-import is a new dataset version - so a cached graph never goes
stale; the cache keeps the last few graphs.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput, NotFound
from cim.services.graph_cache import GraphCache
from cim.services.versions.as_of import as_of

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
CACHE_SIZE = 8
FAILED_VALVE_STATES = frozenset({"broken", "inaccessible"})


@dataclass
class PipeGraph:
    """Nodes and segments of one pipe dataset, indexed 0..n-1, with node -> segment incidence."""

    dataset_id: int
    node_ids: IntArray
    node_codes: list[str]
    node_kind: list[str]
    node_utility: list[str]
    node_valve_state: list[str | None]
    segment_ids: IntArray
    segment_codes: list[str]
    segment_utility: list[str]
    segment_subclass: list[str | None]
    segment_start: IntArray
    segment_end: IntArray
    segment_length: FloatArray
    segment_area: FloatArray
    segment_start_invert: FloatArray
    segment_end_invert: FloatArray
    incidence_ptr: list[int] = field(repr=False)
    incidence_seg: list[int] = field(repr=False)
    _lists: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def node_count(self) -> int:
        return len(self.node_ids)

    @property
    def segment_count(self) -> int:
        return len(self.segment_ids)

    def node_index(self, node_id: int) -> int:
        position = int(np.searchsorted(self.node_ids, node_id))
        if position >= len(self.node_ids) or int(self.node_ids[position]) != node_id:
            raise NotFound(f"pipe node {node_id} is not in dataset {self.dataset_id}")
        return position

    def segment_index(self, segment_id: int) -> int:
        position = int(np.searchsorted(self.segment_ids, segment_id))
        if position >= len(self.segment_ids) or int(self.segment_ids[position]) != segment_id:
            raise NotFound(f"pipe segment {segment_id} is not in dataset {self.dataset_id}")
        return position

    def is_valve(self, node: int) -> bool:
        return self.node_valve_state[node] is not None or self.node_kind[node] == "valve"

    def incident(self, node: int) -> list[int]:
        return self.incidence_seg[self.incidence_ptr[node] : self.incidence_ptr[node + 1]]

    def ends(self) -> tuple[list[int], list[int]]:
        """Start and end node index of every segment as Python lists (fast in loops)."""
        if "ends" not in self._lists:
            self._lists["ends"] = (self.segment_start.tolist(), self.segment_end.tolist())
        ends: tuple[list[int], list[int]] = self._lists["ends"]
        return ends

    def lengths(self) -> list[float]:
        if "lengths" not in self._lists:
            self._lists["lengths"] = self.segment_length.tolist()
        lengths: list[float] = self._lists["lengths"]
        return lengths

    def shortest_path(self, source: int, target: int) -> tuple[list[int], list[int]]:
        """Nodes and segments of the shortest path by length (undirected); InvalidInput if none."""
        starts, ends = self.ends()
        lengths = self.lengths()
        best = {source: 0.0}
        previous: dict[int, tuple[int, int]] = {}
        heap = [(0.0, source)]
        while heap:
            distance, node = heapq.heappop(heap)
            if node == target:
                break
            if len(previous) % bounds.CHECK_EVERY == 0:
                bounds.check_deadline("profile: finding the path")
            if distance > best.get(node, float("inf")):
                continue
            for segment in self.incident(node):
                other = ends[segment] if starts[segment] == node else starts[segment]
                candidate = distance + lengths[segment]
                if candidate < best.get(other, float("inf")):
                    best[other] = candidate
                    previous[other] = (node, segment)
                    heapq.heappush(heap, (candidate, other))
        if target != source and target not in previous:
            raise InvalidInput(
                f"nodes {int(self.node_ids[source])} and {int(self.node_ids[target])} "
                "are not connected by the network"
            )
        nodes = [target]
        segments: list[int] = []
        while nodes[-1] != source:
            node, segment = previous[nodes[-1]]
            nodes.append(node)
            segments.append(segment)
        return nodes[::-1], segments[::-1]


_cache: GraphCache[PipeGraph] = GraphCache(CACHE_SIZE)


def dataset_version(
    session: Session, dataset_id: int
) -> tuple[int, datetime | None, datetime | None]:
    row = session.execute(
        text("SELECT kind, status, ready_at FROM dataset WHERE id = :id"), {"id": dataset_id}
    ).one_or_none()
    if row is None or row.status != "ready":
        raise NotFound(f"dataset {dataset_id} does not exist or is not ready")
    if row.kind != "pipes":
        raise InvalidInput(f"dataset {dataset_id} is a {row.kind} dataset, not pipes")
    return dataset_id, row.ready_at, as_of(session)  # a past network is another graph


def load_graph(session: Session, dataset_id: int) -> PipeGraph:
    """The graph of a ready pipe dataset, from the cache or built from the database (once,
    however many requests ask for it at the same time)."""
    key = dataset_version(session, dataset_id)
    graph, _ = _cache.get_or_build(key, session, lambda: build_graph(session, dataset_id))
    return graph


def clear_cache() -> None:
    _cache.clear()


def build_graph(session: Session, dataset_id: int) -> PipeGraph:
    """Read nodes and segments of one dataset into arrays (two queries)."""
    nodes = session.execute(
        text(
            "SELECT id, code, lower(kind), utility, valve_state FROM pipe_node"
            " WHERE dataset_id = :d ORDER BY id"
        ),
        {"d": dataset_id},
    ).all()
    segments = session.execute(
        text(
            """
            SELECT id, code, utility, subclass, start_node_id, end_node_id,
                   COALESCE(length_m, ST_3DLength(geom)) AS length,
                   CASE WHEN section_shape = 'rectangular' OR diameter_mm IS NULL
                        THEN COALESCE(width_mm * height_mm / 1e6, 0)
                        ELSE pi() * (diameter_mm / 1000.0) ^ 2 / 4 END AS area,
                   start_invert_z, end_invert_z
            FROM pipe_segment WHERE dataset_id = :d ORDER BY id
            """
        ),
        {"d": dataset_id},
    ).all()
    node_ids = np.array([r[0] for r in nodes], dtype=np.int64)
    position = {int(node_id): i for i, node_id in enumerate(node_ids.tolist())}
    try:
        start = np.array([position[r[4]] for r in segments], dtype=np.int64)
        end = np.array([position[r[5]] for r in segments], dtype=np.int64)
    except KeyError as exc:
        raise InvalidInput(
            f"dataset {dataset_id}: a segment references node {exc} of another dataset"
        ) from None
    ends = np.concatenate([start, end])
    owners = np.concatenate([np.arange(len(segments)), np.arange(len(segments))])
    order = np.argsort(ends, kind="stable")
    counts = (
        np.bincount(ends, minlength=len(node_ids))
        if len(ends)
        else np.zeros(len(node_ids), dtype=np.int64)
    )
    pointer = np.concatenate([[0], np.cumsum(counts)])

    def floats(column: int) -> FloatArray:
        return np.array(
            [np.nan if r[column] is None else r[column] for r in segments], dtype=np.float64
        )

    return PipeGraph(
        dataset_id=dataset_id,
        node_ids=node_ids,
        node_codes=[r[1] for r in nodes],
        node_kind=[r[2] or "" for r in nodes],
        node_utility=[r[3] for r in nodes],
        node_valve_state=[r[4] for r in nodes],
        segment_ids=np.array([r[0] for r in segments], dtype=np.int64),
        segment_codes=[r[1] for r in segments],
        segment_utility=[r[2] for r in segments],
        segment_subclass=[r[3] for r in segments],
        segment_start=start,
        segment_end=end,
        segment_length=np.nan_to_num(floats(6)),
        segment_area=np.nan_to_num(floats(7)),
        segment_start_invert=floats(8),
        segment_end_invert=floats(9),
        incidence_ptr=pointer.astype(np.int64).tolist(),
        incidence_seg=owners[order].astype(np.int64).tolist(),
    )


def dataset_of_segment(session: Session, segment_id: int) -> int:
    found = session.execute(
        text("SELECT dataset_id FROM pipe_segment WHERE id = :id"), {"id": segment_id}
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"pipe segment {segment_id} does not exist")
    return int(found)


def dataset_of_node(session: Session, node_id: int) -> int:
    found = session.execute(
        text("SELECT dataset_id FROM pipe_node WHERE id = :id"), {"id": node_id}
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"pipe node {node_id} does not exist")
    return int(found)


def nearest_segment(
    session: Session,
    *,
    x: float,
    y: float,
    srid: int,
    dataset_ids: list[int],
    utilities: list[str] | None,
    tolerance_m: float,
) -> int:
    """Id of the segment nearest to (x, y) within ``tolerance_m`` (GiST KNN), else InvalidInput."""
    found = session.execute(
        text(
            """
            SELECT s.id FROM pipe_segment s
            WHERE s.dataset_id = ANY(:ds)
              AND (CAST(:utilities AS text[]) IS NULL OR s.utility = ANY(:utilities))
              AND ST_DWithin(s.geom, ST_SetSRID(ST_MakePoint(:x, :y), :srid), :tol)
            ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint(:x, :y), :srid)
            LIMIT 1
            """
        ),
        {
            "ds": dataset_ids,
            "utilities": utilities,
            "x": x,
            "y": y,
            "srid": srid,
            "tol": tolerance_m,
        },
    ).scalar_one_or_none()
    if found is None:
        raise InvalidInput(f"no pipe segment within {tolerance_m:g} m of ({x:.3f}, {y:.3f})")
    return int(found)
