"""Import a road network (a line layer) for along-road distances in shelter planning.

A GeoJSON, GeoPackage or Shapefile of LineStrings / MultiLineStrings is read with the shared
vector machinery (``importers.vector_table``: CRS, ``--mapping`` of ``name`` and ``kind``, every
other field kept in ``attrs``), then **noded** so that roads meet only at segment ends and the
graph is connected where the roads are:

* ``intersections`` (default): every line is cut wherever it touches or crosses another one
  (GEOS noding; overlapping duplicates are dissolved). Right for survey / GIS centre lines,
  which often cross without a shared vertex; it also joins a bridge to the street it passes
  over.
* ``vertices``: lines are cut only at vertices they share with another line (OpenStreetMap
  style, where a bridge over a street has no common node and must stay apart).

Each stored ``road_segment`` keeps its source row (``attrs.feature``); the import reports the
graph's components, dead ends and length so a badly noded layer shows at once.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import Engine

from cim.errors import InvalidInput
from cim.services.roads.graph import NODE_PRECISION_M, graph_from_lines
from importers.base import ImportResult, WriteOutcome
from importers.vector_table import TableRows, VectorImport, VectorTable, is_missing

Noding = Literal["intersections", "vertices"]
NODING: tuple[Noding, ...] = ("intersections", "vertices")
ROAD_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("名称", "道路名称", "road_name", "street", "st_name", "fullname"),
    "kind": ("highway", "fclass", "class", "type", "类型", "道路等级"),
}
Objects = npt.NDArray[np.object_]


def import_roads(
    engine: Engine,
    path: Path,
    *,
    mapping: Path | None = None,
    crs: str | None = None,
    name: str | None = None,
    replace: bool = False,
    noding: str = "intersections",
) -> ImportResult:
    """Import a road line layer, noded (``intersections`` or ``vertices``), as road segments."""
    if noding not in NODING:
        raise InvalidInput(f"unknown noding {noding!r}; one of {', '.join(NODING)}")
    chosen: Noding = "vertices" if noding == "vertices" else "intersections"
    roads = VectorImport("roads", partial(_build_roads, noding=chosen), {"noding": noding})
    return roads(engine, path, mapping=mapping, crs=crs, name=name, replace=replace)


def _build_roads(table: VectorTable, srid: int, noding: Noding) -> TableRows:
    types = shapely.get_type_id(table.geoms)
    bad = np.flatnonzero(~np.isin(types, [1, 5]))  # LineString, MultiLineString
    if len(bad):
        row = int(bad[0])
        raise InvalidInput(
            f"row {row + 1}: a road must be a LineString or MultiLineString, not "
            f"{table.geoms[row].geom_type}"
        )
    names = table.column("name", ROAD_FIELDS["name"])
    kinds = table.column("kind", ROAD_FIELDS["kind"])
    attrs = table.attrs(table.used_fields(ROAD_FIELDS))
    parts, owner = shapely.get_parts(table.geoms, return_index=True)
    parts = shapely.remove_repeated_points(parts)
    valid = shapely.length(parts) > 0
    degenerate = int((~valid).sum())
    parts, owner = parts[valid], owner[valid].astype(np.int64)
    if len(parts) == 0:
        raise InvalidInput("no road line has a length (every line is a single point)")
    pieces, piece_owner = node_lines(parts, owner, noding)
    graph = graph_from_lines(pieces)
    summary = graph.summary()
    # Name, kind and attrs belong to the source row: worked out once per row, not per piece.
    row_name = [None if is_missing(n) else str(n) for n in names]
    row_kind = [None if is_missing(k) else str(k).strip() for k in kinds]
    row_attrs = [
        json.dumps({**a, "feature": i + 1}, ensure_ascii=False) for i, a in enumerate(attrs)
    ]
    wkb = shapely.to_wkb(shapely.set_srid(pieces, srid), hex=True, include_srid=True)
    owners = piece_owner.tolist()
    rows = [
        [row_name[row], row_kind[row], str(hexwkb), float(length), row_attrs[row]]
        for row, hexwkb, length in zip(owners, wkb, graph.segment_length.tolist(), strict=True)
    ]
    by_kind = Counter(row_kind[row] or "(none)" for row in owners)
    warnings = []
    if summary.components > 1:
        warnings.append(
            f"the network falls into {summary.components} separate parts (the largest holds "
            f"{summary.largest_component_share:.1%} of the length): people near a small part "
            "reach only shelters on it; check the noding (--noding) and gaps in the data"
        )
    if degenerate:
        warnings.append(f"{degenerate} line(s) of zero length left out")
    outcome = WriteOutcome(
        counts={
            "features": len(table),
            "segments": summary.segments,
            "nodes": summary.nodes,
            "length_km": summary.length_km,
            "by_kind": dict(by_kind),
        },
        qc={
            "noding": noding,
            "components": summary.components,
            "largest_component_share": summary.largest_component_share,
            "dead_ends": summary.dead_ends,
            "zero_length_lines": degenerate,
        },
        warnings=warnings,
    )
    return "road_segment", ["name", "kind", "geom", "length", "attrs"], rows, outcome


def node_lines(
    parts: Objects, owner: npt.NDArray[np.int64], noding: Noding
) -> tuple[Objects, npt.NDArray[np.int64]]:
    """Cut ``parts`` (LineStrings) into segments that meet only at their ends; source row of each.

    Examples
    --------
    >>> cross = np.array([shapely.LineString([(0, 5), (10, 5)]),
    ...                   shapely.LineString([(5, 0), (5, 10)])])
    >>> len(node_lines(cross, np.array([0, 1]), "intersections")[0])
    4
    >>> len(node_lines(cross, np.array([0, 1]), "vertices")[0])  # no shared vertex: no cut
    2
    """
    if noding == "vertices":
        return _split_at_shared_vertices(parts, owner)
    try:
        noded = shapely.node(shapely.multilinestrings(parts))
    except shapely.errors.GEOSException:
        # Near-coincident lines can defeat floating-point noding; snap to the node grid first.
        noded = shapely.node(
            shapely.multilinestrings(shapely.set_precision(parts, NODE_PRECISION_M))
        )
    pieces = shapely.get_parts(noded)
    pieces = pieces[shapely.length(pieces) > 0]
    # Noding forgets where a piece came from: its midpoint lies on its source line (to within
    # rounding; a nearest-line search is the fallback, slow among long overlapping envelopes).
    middle = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    tree = shapely.STRtree(parts)
    on_line = tree.query(middle, predicate="dwithin", distance=NODE_PRECISION_M)
    source = np.full(len(pieces), -1, dtype=np.int64)
    piece, first = np.unique(on_line[0], return_index=True)  # the first match of each piece
    source[piece] = owner[on_line[1][first]]
    lost = np.flatnonzero(source < 0)
    if len(lost):
        found = tree.query_nearest(middle[lost], all_matches=False)
        source[lost[found[0]]] = owner[found[1]]
    return np.asarray(pieces, dtype=object), source


def _split_at_shared_vertices(
    parts: Objects, owner: npt.NDArray[np.int64]
) -> tuple[Objects, npt.NDArray[np.int64]]:
    coords, part = shapely.get_coordinates(parts, return_index=True)
    keys = np.round(coords / NODE_PRECISION_M).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.reshape(-1)] > 1
    first = np.ones(len(part), dtype=bool)
    first[1:] = part[1:] != part[:-1]
    last = np.ones(len(part), dtype=bool)
    last[:-1] = part[1:] != part[:-1]
    cut = shared & ~first & ~last
    # A cut vertex ends one piece and starts the next: write it twice.
    repeat = 1 + cut.astype(np.int64)
    expanded = np.repeat(coords, repeat, axis=0)
    starts = np.repeat(first, repeat)
    second_copy = np.zeros(len(expanded), dtype=bool)
    second_copy[np.cumsum(repeat)[cut] - 1] = True
    piece = np.cumsum(starts | second_copy) - 1
    pieces = shapely.linestrings(expanded, indices=piece)
    source = owner[np.repeat(part, repeat)[np.flatnonzero(starts | second_copy)]]
    return np.asarray(pieces, dtype=object), source.astype(np.int64)
