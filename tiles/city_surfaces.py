"""The city-model surfaces of the buildings layer, read in one pass: their index entries (id, 3D
box, triangles) and what the coarse hierarchy (:mod:`tiles.coarse`) needs of their buildings.

Why one pass, and why binary COPY: at a million buildings there are three million surfaces. Two
queries (the index, then the hierarchy's columns) scanned and joined them twice, and reading
each row as a Python tuple cost more client time than the server spent: at 200k buildings the
index and the cut took 9.4 s, of which about 5 s were spent turning rows into Python objects.
Here every column is fixed-width and non-NULL, so each few MB of the COPY stream become numpy
records in one call (:func:`cim.db.copy.read_fixed_rows`). The boxes are the importer's
(``building_surface.min_x`` …, migration 0017) where it wrote them; only older rows have theirs
computed from the triangles (``Box3D``), which parses every surface on the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cim.db.copy import read_fixed_rows
from tiles.subdivide import FeatureIndex, without_jit

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_BOX = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")

# The surfaces of the finest LoD of every building no IFC building supersedes, in ready datasets:
# the negated surface id (as in the index), the building, the box, the triangle count, whether it is
# a roof, whether it lies over its building's footprint (within 0.1 m of the footprint's box, which
# PostGIS keeps in single precision and Box2D reads without parsing the footprint: no eaves beyond
# the walls), the number of points of the building's footprint (0: none, no block is drawn) and the
# base and top its block is drawn between (NaN: its surfaces', see tiles.buildings.BLOCK_SQL). The
# finest LoD is the highest of the building's ``lods``, which the importers fill with the LoDs of
# its surfaces (only a building without ``lods`` has its surfaces searched; one LoD is read without
# unnesting the array): a grouped pass over every surface, joined back, was half the query's time
# and was computed again by each parallel worker. Per building, those values are computed once
# (``OFFSET 0`` keeps the subquery from being flattened into the join, which evaluated them for
# each of its surfaces); it is ordered by id, so its rows come from the primary key in the merge
# join's order (a sort of the buildings, spilled to disk at 1M, and its materialisation took
# ~1.5 s). The ready datasets are named by their ids ({ready}), not joined: a join
# with ``dataset`` made the planner guess a few thousand surfaces. Unordered: sorted here, which
# is cheaper than the server's sort of the whole set.
CITY_SQL = """
    SELECT -s.id, s.building_id,
           coalesce(s.min_x, ST_XMin(x.b), 'NaN'), coalesce(s.min_y, ST_YMin(x.b), 'NaN'),
           coalesce(s.min_z, ST_ZMin(x.b), 'NaN'), coalesce(s.max_x, ST_XMax(x.b), 'NaN'),
           coalesce(s.max_y, ST_YMax(x.b), 'NaN'), coalesce(s.max_z, ST_ZMax(x.b), 'NaN'),
           coalesce(CASE WHEN s.triangle_count > 0 THEN s.triangle_count
                         ELSE ST_NumGeometries(s.geom) END, 0),
           coalesce(s.semantic = 'RoofSurface', false),
           coalesce(s.min_x >= b.x0 - 0.1 AND s.max_x <= b.x1 + 0.1
                    AND s.min_y >= b.y0 - 0.1 AND s.max_y <= b.y1 + 0.1, false),
           b.points, b.base_z, b.top_z
    FROM building_surface s
    JOIN (SELECT b.id, coalesce(CASE WHEN cardinality(b.lods) = 1 THEN b.lods[1]
                                     ELSE (SELECT max(l) FROM unnest(b.lods) AS l) END,
                                (SELECT max(t.lod) FROM building_surface t
                                 WHERE t.building_id = b.id)) AS finest,
                 coalesce(ST_NPoints(b.footprint), 0) AS points,
                 coalesce(b.base_z, 'NaN') AS base_z, coalesce(b.top_z, 'NaN') AS top_z,
                 ST_XMin(f.box) AS x0, ST_YMin(f.box) AS y0,
                 ST_XMax(f.box) AS x1, ST_YMax(f.box) AS y1
          FROM building b, LATERAL (SELECT Box2D(b.footprint) AS box) f
          WHERE b.superseded_by IS NULL ORDER BY b.id OFFSET 0) b
      ON b.id = s.building_id AND b.finest = s.lod,
    LATERAL (SELECT CASE WHEN s.min_x IS NULL THEN Box3D(s.geom) END AS b) x
    WHERE s.dataset_id = ANY ('{{{ready}}}'::int8[])
"""

FIELDS = (
    ("id", ">i8"),
    ("building", ">i8"),
    *((name, ">f8") for name in _BOX),
    ("triangles", ">i4"),
    ("roof", "?"),
    ("within", "?"),
    ("points", ">i4"),
    ("base", ">f8"),
    ("top", ">f8"),
)


@dataclass
class CitySurfaces:
    """Per surface of the index (``ids`` sorted, negated as in the index): its building,
    whether it is a roof, whether it lies over its building's footprint, its building's
    footprint point count and the base and top of its block (NaN where those are its
    surfaces')."""

    ids: IntArray
    buildings: IntArray
    roof: npt.NDArray[np.bool_]
    within: npt.NDArray[np.bool_]
    points: IntArray
    heights: FloatArray  # (n, 2)

    @staticmethod
    def empty() -> CitySurfaces:
        return CitySurfaces(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool),
            np.zeros(0, bool), np.zeros(0, np.int64), np.zeros((0, 2)),
        )  # fmt: skip


def read_city_surfaces(connection: Any) -> tuple[FeatureIndex, CitySurfaces]:
    """The surfaces' index entries and their :class:`CitySurfaces`, both sorted by id."""
    chunks = [
        (
            records["id"].astype(np.int64),
            records["building"].astype(np.int64),
            np.column_stack([records[name] for name in _BOX]).astype(np.float64),
            records["triangles"].astype(np.int64),
            records["roof"].astype(bool),
            records["within"].astype(bool),
            records["points"].astype(np.int64),
            np.column_stack([records["base"], records["top"]]).astype(np.float64),
        )
        for records in _read(connection)
    ]
    if not chunks:
        return _empty_index(), CitySurfaces.empty()
    ids, buildings, boxes, triangles, roof, within, points, heights = (
        np.concatenate(column) for column in zip(*chunks, strict=True)
    )
    del chunks
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    index = FeatureIndex(ids, boxes[order], triangles[order])
    return index, CitySurfaces(
        ids, buildings[order], roof[order], within[order], points[order], heights[order]
    )


def _read(connection: Any) -> Iterator[npt.NDArray[Any]]:
    """The records of :data:`CITY_SQL`, joined by a merge join on the building id: no nested
    loops (with no statistics gathered yet the planner joined the demo's 33k surfaces to its
    11k buildings by one: 18.5 s instead of 0.2 s) and no hash join (at 1M buildings it hashed
    the 3M surfaces into 16 batches written to disk: 13.3 s under ``EXPLAIN ANALYZE``, 5.1 s
    merged, the surfaces read in their building order through their index, the order the
    importers write them in). ``work_mem`` has room to sort the buildings, and no JIT (the
    per-building subquery's estimate made PostgreSQL compile the query: 0.7 s of a 2.1 s run
    at 200k)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', '64MB', true)")
        cursor.execute("SELECT set_config('enable_nestloop', 'off', true)")
        cursor.execute("SELECT set_config('enable_hashjoin', 'off', true)")
        without_jit(cursor)
        cursor.execute("SELECT id FROM dataset WHERE status = 'ready' ORDER BY id")
        ready = ",".join(str(int(row[0])) for row in cursor.fetchall())
    yield from read_fixed_rows(connection, CITY_SQL.format(ready=ready), FIELDS)


def _empty_index() -> FeatureIndex:
    return FeatureIndex(np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros(0, np.int64))
