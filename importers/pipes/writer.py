"""COPY a placed network into ``pipe_node`` / ``pipe_segment`` in spatial order.

Why spatial order: rows are written in Morton (Z-order) sequence of their position, so the
GiST index inserts touch neighbouring pages, ids ascend in space (node ids are reserved in that
order, so the foreign-key checks of segments walk the primary key almost sequentially) and
later bbox queries read few heap pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, reserve_ids
from importers.pipes.topology import Placed

NODE_COLUMNS = (
    "id",
    "dataset_id",
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
    "dataset_id",
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
    return [None if np.isnan(v) else int(v) for v in array]


def _texts(series: pd.Series) -> list[Any]:
    return [
        None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        for v in series.tolist()
    ]


def _json(values: Any) -> list[str]:
    return ["{}" if not v else json.dumps(v, ensure_ascii=False, default=str) for v in values]


def write_network(
    session: Session, *, dataset_id: int, srid: int, placed: Placed
) -> tuple[int, int]:
    """Reserve ids, then COPY nodes and segments; returns (nodes, segments) written."""
    nodes = placed.nodes
    segments = placed.segments
    node_order = morton_order(nodes["x"], nodes["y"])
    node_ids = np.empty(len(nodes), dtype=np.int64)
    node_ids[node_order] = reserve_ids(session, table="pipe_node", count=len(nodes))
    points = shapely.points(
        nodes["x"].to_numpy(), nodes["y"].to_numpy(), nodes["node_z"].to_numpy()
    )
    node_rows = _node_rows(nodes, node_ids, points, dataset_id, srid, node_order)
    written_nodes = copy_rows(session, table="pipe_node", columns=NODE_COLUMNS, rows=node_rows)

    first = placed.coords[placed.offsets[:-1]]
    segment_order = morton_order(first[:, 0], first[:, 1])
    segment_ids = reserve_ids(session, table="pipe_segment", count=len(segments))
    written_segments = 0
    for begin in range(0, len(segment_order), CHUNK):
        chunk = segment_order[begin : begin + CHUNK]
        rows = _segment_rows(
            placed, chunk, segment_ids[begin : begin + CHUNK], node_ids, dataset_id, srid
        )
        written_segments += copy_rows(
            session, table="pipe_segment", columns=SEGMENT_COLUMNS, rows=rows
        )
    return written_nodes, written_segments


def _node_rows(
    nodes: pd.DataFrame,
    ids: npt.NDArray[np.int64],
    points: Any,
    dataset_id: int,
    srid: int,
    order: npt.NDArray[np.int64],
) -> Iterator[list[Any]]:
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
    for i in order.tolist():
        yield [columns[0][i], dataset_id, *(column[i] for column in columns[1:])]


def _segment_rows(
    placed: Placed,
    chunk: npt.NDArray[np.int64],
    ids: list[int],
    node_ids: npt.NDArray[np.int64],
    dataset_id: int,
    srid: int,
) -> Iterator[list[Any]]:
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
    for i, segment_id in enumerate(ids):
        yield [segment_id, dataset_id, *(column[i] for column in columns)]
