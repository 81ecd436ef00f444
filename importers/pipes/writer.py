"""COPY a placed network into ``pipe_node`` / ``pipe_segment`` in spatial order.

Why bulk mode: the four foreign keys (dataset, start and end node) cost a trigger call and an
index probe per row, more than all twelve indexes together. Their targets are created by this
very transaction (ids reserved up front), so when the role may (superuser) and the tables carry
no user triggers that would be skipped too, the per-row checks are switched off for the COPY
(``session_replication_role = replica``, as ``pg_restore --disable-triggers`` does) and replaced
by one set-based check afterwards; any dangling reference fails the import.

Why spatial order: rows are written in Morton (Z-order) sequence of their position, so the
GiST index inserts touch neighbouring pages, ids ascend in space (node ids are reserved in that
order, so the foreign-key checks of segments walk the primary key almost sequentially) and
later bbox queries read few heap pages.
"""

from __future__ import annotations

import json
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, reserve_ids
from cim.errors import ImportFailed
from cim.nominal_sizes import nominal_dn_array
from importers.pipes.topology import Placed

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
CHUNK = 200_000
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


def _spread(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
    return (v | (v << np.uint64(1))) & np.uint64(0x55555555)


def _nullable(values: Any) -> list[Any]:
    """Floats with NaN -> None (COPY would store NaN, not NULL)."""
    array = np.asarray(values, dtype=np.float64)
    out: list[Any] = array.tolist()
    if np.isnan(array).any():
        for i in np.flatnonzero(np.isnan(array)):
            out[i] = None
    return out


def _ints(values: Any) -> list[Any]:
    array = np.asarray(values, dtype=np.float64)
    missing = np.isnan(array)
    if missing.all():
        return [None] * len(array)
    out: list[Any] = np.where(missing, 0, array).astype(np.int64).tolist()
    for i in np.flatnonzero(missing):
        out[i] = None
    return out


def _texts(series: pd.Series) -> list[Any]:
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values)
    if missing.all():
        return [None] * len(values)
    out: list[Any] = values.tolist()
    for i in np.flatnonzero(missing):
        out[i] = None
    return out


def _json(values: Any) -> list[str]:
    return ["{}" if not v else json.dumps(v, ensure_ascii=False, default=str) for v in values]


def write_network(
    session: Session,
    *,
    dataset_id: int,
    srid: int,
    placed: Placed,
    tables: tuple[str, str] = ("pipe_node", "pipe_segment"),
    ids: tuple[list[int], list[int]] | None = None,
) -> tuple[int, int]:
    """Reserve ids, then COPY nodes and segments; returns (nodes, segments) written.

    ``tables`` and ``ids`` exist for the bench, which writes the very same rows into bare
    tables (no sequences) to compare with a raw COPY.
    """
    nodes = placed.nodes
    segments = placed.segments
    bulk = ids is None and _enter_bulk_mode(session, tables)
    node_order = morton_order(nodes["x"], nodes["y"])
    node_ids = np.empty(len(nodes), dtype=np.int64)
    node_ids[node_order] = (
        ids[0] if ids else reserve_ids(session, table=tables[0], count=len(nodes))
    )
    points = shapely.points(
        nodes["x"].to_numpy(), nodes["y"].to_numpy(), nodes["node_z"].to_numpy()
    )
    names, columns = _present(NODE_COLUMNS, _node_columns(nodes, node_ids, points, srid))
    ordered = [[column[i] for i in node_order.tolist()] for column in columns]
    written_nodes = copy_rows(
        session,
        table=tables[0],
        columns=["dataset_id", *names],
        rows=zip(repeat(dataset_id), *ordered, strict=False),
    )

    first = placed.coords[placed.offsets[:-1]]
    segment_order = morton_order(first[:, 0], first[:, 1])
    segment_ids = ids[1] if ids else reserve_ids(session, table=tables[1], count=len(segments))
    written_segments = 0
    for begin in range(0, len(segment_order), CHUNK):
        chunk = segment_order[begin : begin + CHUNK]
        names, columns = _present(
            SEGMENT_COLUMNS,
            _segment_columns(placed, chunk, segment_ids[begin : begin + CHUNK], node_ids, srid),
        )
        written_segments += copy_rows(
            session,
            table=tables[1],
            columns=["dataset_id", *names],
            rows=zip(repeat(dataset_id), *columns, strict=False),
        )
    if bulk:
        _leave_bulk_mode(session, dataset_id)
    return written_nodes, written_segments


def _enter_bulk_mode(session: Session, tables: tuple[str, str]) -> bool:
    """Switch per-row FK triggers off for this transaction when that is safe (see module)."""
    allowed = session.execute(
        text(
            "SELECT r.rolsuper AND NOT EXISTS (SELECT 1 FROM pg_trigger t"
            "  WHERE t.tgrelid IN (CAST(:a AS regclass), CAST(:b AS regclass))"
            "  AND NOT t.tgisinternal)"
            " FROM pg_roles r WHERE r.rolname = current_user"
        ),
        {"a": tables[0], "b": tables[1]},
    ).scalar()
    if allowed:
        session.execute(text("SET LOCAL session_replication_role = replica"))
    return bool(allowed)


def _leave_bulk_mode(session: Session, dataset_id: int) -> None:
    """Triggers back on, then the foreign keys checked for the whole dataset at once.

    The check runs with nested loops off: the rows it joins were written by this very
    transaction, so the statistics may still say the tables are empty (they are, for the
    planner, after a dataset was deleted and the tables analysed), and the planner then picks
    a nested-loop anti join over a materialised scan, quadratic in the rows (a 300k-segment
    import spent over ten minutes here). Hash or merge joins are linear whatever the estimate.
    """
    session.execute(text("SET LOCAL session_replication_role = origin"))
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


def _present(names: tuple[str, ...], columns: list[list[Any]]) -> tuple[list[str], list[Any]]:
    """Leave out columns that are NULL (or an empty attrs) in every row: the server default
    gives the same value, and fewer columns are less to format, send and parse."""
    kept_names, kept = [], []
    for name, column in zip(names, columns, strict=True):
        empty = "{}" if name == "attrs" else None
        if name in REQUIRED or any(value != empty for value in column):
            kept_names.append(name)
            kept.append(column)
    return kept_names, kept


def _node_columns(
    nodes: pd.DataFrame, ids: npt.NDArray[np.int64], points: Any, srid: int
) -> list[list[Any]]:
    geoms = shapely.to_wkb(shapely.set_srid(points, srid), hex=True, include_srid=True)
    columns = [
        ids.tolist(),
        _texts(nodes["code"]),
        _texts(nodes["utility"]),
        _texts(nodes["subclass"]),
        _texts(nodes["kind"]),
        _texts(nodes["feature"]),
        _texts(nodes["appurtenance"]),
        geoms.tolist(),
        _nullable(nodes["ground_z"]),
        _nullable(nodes["bottom_z"]),
        _texts(nodes["valve_state"]),
        _json(nodes["attrs"].tolist()),
    ]
    return columns


def _segment_columns(
    placed: Placed,
    chunk: npt.NDArray[np.int64],
    ids: list[int],
    node_ids: npt.NDArray[np.int64],
    srid: int,
) -> list[list[Any]]:
    segments = placed.segments.iloc[chunk]
    offsets = placed.offsets
    starts, stops = offsets[chunk], offsets[chunk + 1]
    sizes = stops - starts
    take = np.repeat(starts - np.cumsum(np.concatenate([[0], sizes[:-1]])), sizes) + np.arange(
        int(sizes.sum())
    )
    owner = np.repeat(np.arange(len(chunk)), sizes)
    lines = shapely.linestrings(placed.coords[take], indices=owner)
    geoms = shapely.to_wkb(shapely.set_srid(lines, srid), hex=True, include_srid=True).tolist()
    start_ids = node_ids[segments["start_index"].to_numpy()].tolist()
    end_ids = node_ids[segments["end_index"].to_numpy()].tolist()
    columns = [
        ids,
        _texts(segments["code"]),
        _texts(segments["utility"]),
        _texts(segments["subclass"]),
        _texts(segments["link_type"]),
        start_ids,
        end_ids,
        geoms,
        _nullable(segments["start_invert"]),
        _nullable(segments["end_invert"]),
        _nullable(segments["start_top"]),
        _nullable(segments["end_top"]),
        _texts(segments["section_shape"]),
        _nullable(segments["diameter_mm"]),
        _ints(nominal_dn_array(segments["diameter_mm"])),
        _nullable(segments["width_mm"]),
        _nullable(segments["height_mm"]),
        _texts(segments["material"]),
        _texts(segments["pressure"]),
        _texts(segments["voltage"]),
        _ints(segments["cable_count"]),
        _ints(segments["hole_total"]),
        _ints(segments["hole_used"]),
        _texts(segments["burial"]),
        _texts(segments["owner"]),
        _ints(segments["year"]),
        _nullable(segments["length_m"]),
        _json(segments["attrs"].tolist()),
    ]
    return columns
