"""COPY a placed network into ``pipe_node`` / ``pipe_segment`` in spatial or code order.

Why bulk mode: the four foreign keys (dataset, start and end node) cost a trigger call and an
index probe per row, more than all ten indexes together. Their targets are created by this
very transaction (ids reserved up front), so when the role may (superuser) and the tables carry
no user triggers that would be skipped too, the per-row checks are switched off for the COPY
(``session_replication_role = replica``, as ``pg_restore --disable-triggers`` does) and replaced
by one set-based check afterwards; any dangling reference fails the import.

Why spatial order: rows are written in Morton (Z-order) sequence of their position, so the
GiST index inserts touch neighbouring pages, ids ascend in space (node ids are reserved in that
order, so the foreign-key checks of segments walk the primary key almost sequentially) and
later bbox queries read few heap pages.

Why indexes built afterwards, in code order: when a table holds fewer rows than the import
adds (a new city's first network), its secondary indexes are dropped inside the transaction and
created after the COPY (``cim.db.copy.defer_indexes``): the index builds cost less than
maintaining them row by row (300k segments, no load: index maintenance 6.2 s of a 9.1 s
import). Those rows go in code order instead: two of the indexes lead with ``code`` and the
collation's comparisons dominate their builds, which run ~5x faster on presorted input (the
sort checks for it); the point GiST build sorts by itself. Heap order is then code order, which
follows the networks' naming of streets and areas rather than space.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.copy import (
    copy_binary,
    defer_indexes,
    rebuild_indexes,
    refresh_statistics,
    reserve_id_array,
    restore_row_triggers,
    skip_row_triggers,
)
from cim.errors import ImportFailed
from cim.nominal_sizes import nominal_dn_array
from importers.pipes.binary_columns import (
    Bytes,
    Column,
    bigints,
    floats,
    integers,
    jsonb,
    linestring_z_ewkb,
    point_z_ewkb,
    texts,
    tuples,
)
from importers.pipes.topology import Placed

T = TypeVar("T")

NODE_COLUMNS = (
    "id",
    "code",
    "utility",
    "subclass",
    "kind",
    "feature",
    "appurtenance",
    "geom",
    "ground_z",
    "bottom_z",
    "valve_state",
    "attrs",
)
SEGMENT_COLUMNS = (
    "id",
    "code",
    "utility",
    "subclass",
    "link_type",
    "start_node_id",
    "end_node_id",
    "geom",
    "start_invert_z",
    "end_invert_z",
    "start_top_z",
    "end_top_z",
    "section_shape",
    "diameter_mm",
    "nominal_dn",
    "width_mm",
    "height_mm",
    "material",
    "pressure",
    "voltage",
    "cable_count",
    "hole_total",
    "hole_used",
    "burial",
    "owner",
    "year",
    "length_m",
    "attrs",
)
REQUIRED = {"id", "code", "utility", "kind", "geom", "start_node_id", "end_node_id"}


def morton_order(x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices that sort points along a Z-order curve over their bounding box (16 bits/axis)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.size == 0:
        return np.zeros(0, dtype=np.int64)
    span = max(float(np.ptp(xs)), float(np.ptp(ys)), 1e-9)
    ix = ((xs - xs.min()) / span * 65535).astype(np.uint64)
    iy = ((ys - ys.min()) / span * 65535).astype(np.uint64)
    return np.argsort(_spread(ix) | (_spread(iy) << np.uint64(1)), kind="stable")


def code_order(codes: pd.Series) -> npt.NDArray[np.int64]:
    """Indices that sort ``codes`` by code point (the order of a C or C.UTF-8 collation).

    Python's sort (timsort on the strings, runs in the source kept) beat numpy's argsort of
    the same codes as a fixed-width array 0.24 s to 1.2 s (conversion included) at 1M.
    """
    values = codes.to_numpy()
    return np.fromiter(
        sorted(range(len(values)), key=values.__getitem__), dtype=np.int64, count=len(values)
    )


def _spread(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
    return (v | (v << np.uint64(1))) & np.uint64(0x55555555)


def write_network(
    session: Session,
    *,
    dataset_id: int,
    srid: int,
    placed: Placed,
    tables: tuple[str, str] = ("pipe_node", "pipe_segment"),
    ids: tuple[list[int], list[int]] | None = None,
    code_order_rows: bool | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[int, int]:
    """Reserve ids, then COPY nodes and segments; returns (nodes, segments) written.

    ``tables``, ``ids`` and ``code_order_rows`` exist for the bench, which writes the very
    same rows in the very same order into bare tables (no sequences) to compare with a raw
    COPY (None: code order when the indexes are deferred, else Morton order); ``timings``
    (seconds by stage) for the bench's breakdown, where ``rows_in_code_order`` is recorded
    (as 0 s) when the rows went in code order.
    """
    clock = Stopwatch(timings)
    nodes = placed.nodes
    segments = placed.segments
    bulk = ids is None and skip_row_triggers(session, tables)
    deferred: tuple[list[str], list[str]] = ([], [])
    if bulk:
        with clock("defer_indexes"):
            deferred = (
                defer_indexes(session, tables[0], new_rows=len(nodes)),
                defer_indexes(session, tables[1], new_rows=len(segments)),
            )

    by_code = (
        (bool(deferred[0]), bool(deferred[1]))
        if code_order_rows is None
        else (code_order_rows, code_order_rows)
    )
    if any(by_code):
        clock.add("rows_in_code_order", 0.0)

    def orders() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        xy = (nodes["x"], nodes["y"])
        node_order = code_order(nodes["code"]) if by_code[0] else morton_order(*xy)
        if by_code[1]:
            return node_order, code_order(segments["code"])
        first = placed.coords[placed.offsets[:-1]]
        return node_order, morton_order(first[:, 0], first[:, 1])

    # The orders are computed while the server draws the ids (it releases the GIL meanwhile).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipe-order") as sorter:
        ordering = sorter.submit(orders)
        with clock("reserve_ids"):
            reserved = (
                (np.asarray(ids[0], dtype=np.int64), np.asarray(ids[1], dtype=np.int64))
                if ids
                else (
                    reserve_id_array(session, table=tables[0], count=len(nodes)),
                    reserve_id_array(session, table=tables[1], count=len(segments)),
                )
            )
        node_order, segment_order = ordering.result()
    node_ids = np.empty(len(nodes), dtype=np.int64)
    node_ids[node_order] = reserved[0]
    segment_ids = reserved[1]
    node_names = _present(NODE_COLUMNS, nodes, NODE_SOURCES)
    segment_names = _present(SEGMENT_COLUMNS, segments, SEGMENT_SOURCES)
    tasks = [
        partial(_node_chunk, placed, node_order[b : b + CHUNK], node_ids, srid, node_names)
        for b in range(0, len(nodes), CHUNK)
    ] + [
        partial(
            _segment_chunk,
            placed,
            segment_order[b : b + CHUNK],
            segment_ids[b : b + CHUNK],
            node_ids,
            srid,
            segment_names,
        )
        for b in range(0, len(segments), CHUNK)
    ]
    node_chunks = -(-len(nodes) // CHUNK)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipe-encoder") as encoder:
        stream = _ahead(encoder, [clock.wrap("encoding", task) for task in tasks])
        with clock("copy_nodes"):
            copy_binary(
                session,
                table=tables[0],
                columns=["dataset_id", *node_names],
                chunks=_with_dataset(islice(stream, node_chunks), dataset_id),
            )
        with clock("copy_segments"):
            copy_binary(
                session,
                table=tables[1],
                columns=["dataset_id", *segment_names],
                chunks=_with_dataset(stream, dataset_id),
            )
    with clock("index_build"):
        rebuild_indexes(session, deferred[0] + deferred[1])
    if bulk:
        with clock("fk_check"):
            _leave_bulk_mode(session, dataset_id)
    if ids is None:  # an import (the bench's raw-COPY baseline gives ids and skips this too)
        with clock("statistics"):
            refresh_statistics(
                session, {tables[0]: len(nodes), tables[1]: len(segments)}, STATISTICS_COLUMNS
            )
    return len(nodes), len(segments)


STATISTICS_COLUMNS = {
    "pipe_node": ("dataset_id", "valid_from", "code", "utility", "kind", "valve_state", "geom"),
    "pipe_segment": (
        "dataset_id", "valid_from", "code", "utility", "start_node_id", "end_node_id", "geom",
    ),
}  # fmt: skip
"""The columns queries filter and join the pipe tables on: the statistics an import gathers
(the thirty descriptive columns wait for autovacuum)."""
CHUNK = 50_000
"""Rows encoded at a time: the first chunk's encoding is the only one nothing overlaps."""
AHEAD = 2
"""Chunks encoded ahead of the COPY (bounded, so a slow server does not let memory grow)."""


class Stopwatch:
    """Adds elapsed seconds to ``timings[stage]`` (nothing when ``timings`` is None)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        if self.timings is not None:
            with self.lock:
                self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def wrap(self, stage: str, task: Callable[[], T]) -> Callable[[], T]:
        def timed() -> T:
            with self(stage):
                return task()

        return timed


def _ahead(executor: ThreadPoolExecutor, tasks: list[Callable[[], T]]) -> Iterator[T]:
    """Results of ``tasks`` in order, with up to :data:`AHEAD` of them running in advance."""
    pending: deque[Future[T]] = deque()
    try:
        for task in tasks:
            pending.append(executor.submit(task))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _with_dataset(chunks: Iterator[Encoded], dataset_id: int) -> Iterator[Bytes]:
    for chunk in chunks:
        yield tuples([bigints(np.full(chunk.rows, dataset_id)), *chunk.columns])


@dataclass(frozen=True)
class Encoded:
    """A chunk's columns in binary COPY form (the dataset id is added when it is sent)."""

    rows: int
    columns: list[Column]


def _leave_bulk_mode(session: Session, dataset_id: int) -> None:
    """Triggers back on, then the foreign keys checked for the whole dataset at once.

    First by ranges, which needs no join: when the dataset's node ids are contiguous (count
    = max - min + 1; they are unless another session drew from the sequence meanwhile), every
    id between them is one of its nodes, so a segment end inside that range resolves. Two
    aggregates instead of a join of every end with every node (1.8 s at 1M segments).

    Otherwise the join, with nested loops off: the rows it joins were written by this very
    transaction, so the statistics may still say the tables are empty (they are, for the
    planner, after a dataset was deleted and the tables analysed), and the planner then picks
    a nested-loop anti join over a materialised scan, quadratic in the rows (a 300k-segment
    import spent over ten minutes here). Hash or merge joins are linear whatever the estimate.
    """
    restore_row_triggers(session)
    resolved = session.execute(
        text(
            "WITH n AS (SELECT min(id) AS lo, max(id) AS hi, count(*) AS rows"
            "  FROM pipe_node WHERE dataset_id = :d),"
            " s AS (SELECT min(least(start_node_id, end_node_id)) AS lo,"
            "  max(greatest(start_node_id, end_node_id)) AS hi"
            "  FROM pipe_segment WHERE dataset_id = :d)"
            " SELECT EXISTS (SELECT 1 FROM dataset WHERE id = :d)"
            "  AND (s.lo IS NULL OR (n.hi - n.lo + 1 = n.rows AND s.lo >= n.lo AND s.hi <= n.hi))"
            " FROM n, s"
        ),
        {"d": dataset_id},
    ).scalar()
    if resolved:
        return
    nestloop = session.execute(text("SELECT current_setting('enable_nestloop')")).scalar()
    session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    missing = session.execute(
        text(
            "WITH ends AS (SELECT start_node_id AS id FROM pipe_segment WHERE dataset_id = :d"
            " UNION SELECT end_node_id FROM pipe_segment WHERE dataset_id = :d)"
            " SELECT (SELECT count(*) FROM ends LEFT JOIN pipe_node n ON n.id = ends.id"
            "  AND n.dataset_id = :d WHERE n.id IS NULL)"
            " + (SELECT count(*) FROM dataset WHERE id = :d) - 1"
        ),
        {"d": dataset_id},
    ).scalar()
    session.execute(text("SELECT set_config('enable_nestloop', :v, true)"), {"v": nestloop})
    if missing:
        raise ImportFailed(f"internal error: {missing} dangling reference(s) after COPY")


NODE_SOURCES: dict[str, str | None] = {"geom": None}
SEGMENT_SOURCES: dict[str, str | None] = {
    "start_invert_z": "start_invert",
    "end_invert_z": "end_invert",
    "start_top_z": "start_top",
    "end_top_z": "end_top",
    "nominal_dn": "diameter_mm",
    "geom": None,
    "start_node_id": None,
    "end_node_id": None,
}


def _present(
    names: tuple[str, ...], frame: pd.DataFrame, sources: dict[str, str | None]
) -> list[str]:
    """Leave out columns that are NULL (or an empty attrs) in every row: the server default
    gives the same value, and fewer columns are less to encode, send and parse."""
    kept = []
    for name in names:
        source = sources.get(name, name)
        if name in REQUIRED or source is None:
            kept.append(name)
        elif name == "attrs":
            if any(bool(v) for v in frame["attrs"]):
                kept.append(name)
        elif frame[source].notna().any():
            kept.append(name)
    return kept


def _node_chunk(
    placed: Placed,
    rows: npt.NDArray[np.int64],
    node_ids: npt.NDArray[np.int64],
    srid: int,
    names: list[str],
) -> Encoded:
    nodes = placed.nodes.iloc[rows]
    builders: dict[str, Callable[[], Column]] = {
        "id": lambda: bigints(node_ids[rows]),
        "geom": lambda: point_z_ewkb(
            nodes["x"].to_numpy(dtype=np.float64),
            nodes["y"].to_numpy(dtype=np.float64),
            nodes["node_z"].to_numpy(dtype=np.float64),
            srid,
        ),
        "ground_z": lambda: floats(nodes["ground_z"]),
        "bottom_z": lambda: floats(nodes["bottom_z"]),
        "attrs": lambda: jsonb(nodes["attrs"].tolist()),
    }
    return Encoded(len(rows), [builders.get(n, partial(texts, nodes.get(n)))() for n in names])


def _segment_chunk(
    placed: Placed,
    rows: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int64],
    node_ids: npt.NDArray[np.int64],
    srid: int,
    names: list[str],
) -> Encoded:
    segments = placed.segments.iloc[rows]
    offsets = placed.offsets
    starts, stops = offsets[rows], offsets[rows + 1]
    sizes = stops - starts
    take = np.repeat(starts - np.cumsum(np.concatenate([[0], sizes[:-1]])), sizes) + np.arange(
        int(sizes.sum())
    )
    builders: dict[str, Callable[[], Column]] = {
        "id": lambda: bigints(ids),
        "start_node_id": lambda: bigints(node_ids[segments["start_index"].to_numpy()]),
        "end_node_id": lambda: bigints(node_ids[segments["end_index"].to_numpy()]),
        "geom": lambda: linestring_z_ewkb(placed.coords[take], sizes, srid),
        "nominal_dn": lambda: integers(nominal_dn_array(segments["diameter_mm"])),
        "attrs": lambda: jsonb(segments["attrs"].tolist()),
    }
    for name, source in SEGMENT_SOURCES.items():
        if source is not None and name not in builders:
            builders[name] = partial(floats, segments[source])
    for name in ("diameter_mm", "width_mm", "height_mm", "length_m"):
        builders[name] = partial(floats, segments[name])
    for name in ("cable_count", "hole_total", "hole_used", "year"):
        builders[name] = partial(integers, segments[name])
    return Encoded(len(rows), [builders.get(n, partial(texts, segments.get(n)))() for n in names])
