"""The pipes layer: segments as solids, wells as cylinders, appurtenances as markers.

Circular sections become tubes whose side count follows the diameter (6 to 16 sides; at most
8 in coarse tiles, which are seen from afar), rectangular sections become boxes, nodes with a
known depth (ground above well bottom: manholes, inspection wells, storage) become cylinders of
that real depth, and other non-junction nodes (valves, hydrants, tees, pumps...) become small
cubes at the depth of the pipe they sit on. Colours are the CJJ 61 Appendix B class colours.
Each solid is built in the tile's ENU frame around exactly transformed centreline points.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from psycopg import Connection

from cim.errors import InvalidInput
from cim.services.pipes.sections import section_label
from cim.utilities import colour_of
from tiles.content import MeshParts, TileFrame, rgba_bytes
from tiles.gltf import FeatureTable, PropertyColumn
from tiles.subdivide import FeatureIndex, fetch_index, without_jit

DATASET_KINDS: tuple[str, ...] = ("pipes",)
CLASS_NAME = "pipe_feature"
WELL_RADIUS = 0.5  # m: a 1 m manhole shaft when the source gives no size
MARKER_SIZE = 0.5  # m: edge of the cube drawn for a valve or other appurtenance
DEFAULT_DIAMETER_MM = 200.0
UNKNOWN_COLOUR = (128, 128, 128)

# A node is a feature when it has a real depth (a well) or is more than a plain junction.
NODE_FEATURES = """
    SELECT n.id, n.dataset_id, n.code, n.utility, n.subclass, n.kind, n.appurtenance,
           ST_X(n.geom) AS x, ST_Y(n.geom) AS y, ST_Z(n.geom) AS z, n.ground_z, n.bottom_z,
           (n.bottom_z IS NOT NULL AND coalesce(n.ground_z, ST_Z(n.geom)) > n.bottom_z) AS well,
           coalesce((SELECT ST_Z(ST_StartPoint(s.geom)) FROM pipe_segment s
                     WHERE s.start_node_id = n.id LIMIT 1),
                    (SELECT ST_Z(ST_EndPoint(s.geom)) FROM pipe_segment s
                     WHERE s.end_node_id = n.id LIMIT 1),
                    ST_Z(n.geom) - %(half)s) AS pipe_z
    FROM pipe_node n JOIN dataset d ON d.id = n.dataset_id AND d.status = 'ready'
    WHERE (n.bottom_z IS NOT NULL AND coalesce(n.ground_z, ST_Z(n.geom)) > n.bottom_z)
       OR n.kind <> 'junction' OR n.appurtenance IS NOT NULL
"""
RADIUS_SQL = "coalesce(s.diameter_mm, sqrt(s.width_mm ^ 2 + s.height_mm ^ 2), %(default)s) / 2000.0"


def utility_condition(column: str, sensitive: frozenset[str], *, restricted: bool) -> str:
    """SQL condition keeping the public classes (or, ``restricted``, only the sensitive ones)."""
    codes = sorted(code.upper() for code in sensitive)
    if any(not re.fullmatch(r"[A-Z0-9]{1,8}", code) for code in codes):
        raise InvalidInput(f"sensitive utility classes must be codes like RQ, DL: {codes}")
    if not codes:
        return "false" if restricted else "true"
    listed = ", ".join(f"'{code}'" for code in codes)
    return f"upper({column}) {'IN' if restricted else 'NOT IN'} ({listed})"


def load_index(
    connection: Connection[Any],
    *,
    sensitive: frozenset[str] = frozenset(),
    restricted: bool = False,
    include_spaces: bool = False,
) -> FeatureIndex:
    """Segments (positive ids) and node features (negative ids) of every ready pipes dataset.

    Classes in ``sensitive`` (gas, power by default) are left out, or, with ``restricted``,
    are the only ones kept: they form a separate layer that is served only with an API key.
    (``include_spaces`` concerns buildings only.)
    """
    del include_spaces
    return fetch_index(connection, _index_sql(sensitive, restricted, None))


def load_index_of(
    connection: Connection[Any],
    ids: npt.NDArray[np.int64],
    *,
    sensitive: frozenset[str] = frozenset(),
    restricted: bool = False,
) -> FeatureIndex:
    """The index rows of only the features ``ids`` (same ids and rules as :func:`load_index`);
    ids that are no feature of the layer (gone, a plain junction, another class) are absent.

    An incremental refresh (:mod:`tiles.incremental`) re-reads just the features a new version
    touched, so the rows must come from the very SQL of the full index.
    """
    if ids.size == 0:
        return FeatureIndex(np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros(0, np.int64))
    return fetch_index(connection, _index_sql(sensitive, restricted, ids))


def _id_filter(column: str, ids: npt.NDArray[np.int64]) -> str:
    """``AND column = ANY(ARRAY[...])`` for integer ids (inlined: named cursors take no
    parameters here; integers cannot carry SQL)."""
    listed = ",".join(str(int(i)) for i in ids)
    return f"AND {column} = ANY(ARRAY[{listed}]::bigint[])" if listed else "AND false"


def _index_sql(
    sensitive: frozenset[str], restricted: bool, ids: npt.NDArray[np.int64] | None
) -> str:
    """The index query, for every feature (``ids`` None) or only for ``ids``."""
    segments = "" if ids is None else _id_filter("s.id", ids[ids > 0])
    nodes = "" if ids is None else _id_filter("f.id", -ids[ids < 0])
    sql = f"""
        SELECT s.id, ST_XMin(b) - r, ST_YMin(b) - r, ST_ZMin(b) - r,
               ST_XMax(b) + r, ST_YMax(b) + r, ST_ZMax(b) + r, (ST_NPoints(s.geom) - 1) * 48
        FROM pipe_segment s JOIN dataset d ON d.id = s.dataset_id AND d.status = 'ready',
        LATERAL (SELECT Box3D(s.geom) AS b, {RADIUS_SQL} AS r) x
        WHERE {utility_condition("s.utility", sensitive, restricted=restricted)} {segments}
        UNION ALL
        SELECT -f.id,
               f.x - w, f.y - w, CASE WHEN f.well THEN f.bottom_z ELSE f.pipe_z - w END,
               f.x + w, f.y + w,
               CASE WHEN f.well THEN coalesce(f.ground_z, f.z) ELSE f.pipe_z + w END, 48
        FROM ({NODE_FEATURES}) f,
        LATERAL (SELECT CASE WHEN f.well THEN {WELL_RADIUS} ELSE {MARKER_SIZE / 2} END AS w) x
        WHERE {utility_condition("f.utility", sensitive, restricted=restricted)} {nodes}
    """
    return _inline(sql, {"default": DEFAULT_DIAMETER_MM, "half": MARKER_SIZE / 2})


def _inline(sql: str, params: dict[str, float]) -> str:
    """Named cursors cannot take parameters in a UNION here; the values are our constants."""
    for key, value in params.items():
        sql = sql.replace(f"%({key})s", repr(float(value)))
    return sql


# Scalar subqueries (index lookups) rather than joins: a per-tile hash join would scan every
# pipe_node for every tile, which makes the whole build quadratic in the layer size.
SEGMENT_SQL = """
    SELECT s.id, ST_AsBinary(s.geom), s.code, s.utility, s.subclass, s.link_type,
           s.section_shape, s.diameter_mm, s.width_mm, s.height_mm, s.material, s.year,
           (SELECT coalesce(n.ground_z, ST_Z(n.geom)) FROM pipe_node n
            WHERE n.id = s.start_node_id)
           - coalesce(s.start_top_z, ST_Z(ST_StartPoint(s.geom))
                      + coalesce(s.height_mm, s.diameter_mm, %(default)s) / 2000.0) AS depth,
           (SELECT d.name FROM dataset d WHERE d.id = s.dataset_id)
    FROM pipe_segment s
    WHERE s.id = ANY(%(ids)s) ORDER BY s.id
"""
NODE_SQL = f"""
    SELECT f.*, (SELECT d.name FROM dataset d WHERE d.id = f.dataset_id)
    FROM ({NODE_FEATURES}) f
    WHERE f.id = ANY(%(ids)s) ORDER BY f.id
"""


def sides_for(diameter_mm: float, *, leaf: bool) -> int:
    """Tube sides: more for big pipes, at most 8 in coarse (far-away) tiles."""
    sides = 6 if diameter_mm < 150 else 8 if diameter_mm < 400 else 12 if diameter_mm < 1000 else 16
    return sides if leaf else min(sides, 8)


def prisms(
    start: npt.NDArray[np.float64],
    end: npt.NDArray[np.float64],
    half_width: npt.NDArray[np.float64],
    half_height: npt.NDArray[np.float64],
    sides: int,
) -> npt.NDArray[np.float64]:
    """Closed prisms (tubes, or boxes when ``sides`` is 4) around ``start``->``end`` (k, 3).

    Returns (k, 4 * sides - 4, 3, 3) outward-wound triangles in the same frame.
    """
    axis = end - start
    length = np.linalg.norm(axis, axis=1, keepdims=True)
    direction = axis / np.where(length > 0, length, 1.0)
    reference = np.where(
        np.abs(direction[:, 2:3]) > 0.99, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])
    )
    across = np.cross(direction, reference)
    across /= np.linalg.norm(across, axis=1, keepdims=True)
    up = np.cross(across, direction)
    angle = 2 * np.pi * (np.arange(sides) + (0.5 if sides == 4 else 0.0)) / sides
    cos, sin = np.cos(angle), np.sin(angle)
    if sides == 4:  # a box: corners at the section's half width/height, not on a circle
        cos, sin = np.sign(cos), np.sign(sin)
    offsets = (
        half_width[:, None, None] * cos[None, :, None] * across[:, None, :]
        + half_height[:, None, None] * sin[None, :, None] * up[:, None, :]
    )
    ring_a = start[:, None, :] + offsets
    ring_b = end[:, None, :] + offsets
    nxt = np.roll(np.arange(sides), -1)
    side1 = np.stack([ring_a, ring_b, ring_b[:, nxt]], axis=2)
    side2 = np.stack([ring_a, ring_b[:, nxt], ring_a[:, nxt]], axis=2)
    fan = np.arange(1, sides - 1)
    cap_a = np.stack([ring_a[:, [0] * fan.size], ring_a[:, fan], ring_a[:, fan + 1]], axis=2)
    cap_b = np.stack([ring_b[:, [0] * fan.size], ring_b[:, fan + 1], ring_b[:, fan]], axis=2)
    return np.concatenate([side1, side2, cap_a, cap_b], axis=1)


@lru_cache(maxsize=256)
def class_colour(utility: str | None, subclass: str | None) -> npt.NDArray[np.uint8]:
    """CJJ 61 colour of the sub-class (or class) as linear RGBA bytes; grey if unknown."""
    rgb: tuple[int, int, int] = UNKNOWN_COLOUR
    for code in (subclass, utility):
        if code:
            try:
                rgb = colour_of(code)
                break
            except (InvalidInput, KeyError):
                continue
    return rgba_bytes([c / 255 for c in rgb] + [1.0])


Row = tuple[Any, ...]


def fetch_rows(connection: Connection[Any], ids: npt.NDArray[np.int64]) -> dict[int, Row]:
    """Content rows of segments (ids > 0) and node features (ids < 0), keyed by index id."""
    out: dict[int, Row] = {}
    with connection.cursor(binary=True) as cursor:
        without_jit(cursor)
        cursor.execute(SEGMENT_SQL, {"ids": ids[ids > 0].tolist(), "default": DEFAULT_DIAMETER_MM})
        out.update((int(row[0]), row) for row in cursor.fetchall())
        cursor.execute(NODE_SQL, {"ids": (-ids[ids < 0]).tolist(), "half": MARKER_SIZE / 2})
        out.update((-int(row[0]), row) for row in cursor.fetchall())
    return out


def tile_content(
    connection: Connection[Any], ids: npt.NDArray[np.int64], frame: TileFrame, *, leaf: bool
) -> tuple[MeshParts, FeatureTable]:
    """Solids and the property table of segments (ids > 0) and node features (ids < 0)."""
    found = fetch_rows(connection, ids)
    keys = sorted((int(i) for i in ids if int(i) in found), key=lambda k: (k < 0, abs(k)))
    return mesh_tile([(k, found[k]) for k in keys], frame, leaf=leaf)


def mesh_tile(
    keyed_rows: list[tuple[int, Row]], frame: TileFrame, *, leaf: bool
) -> tuple[MeshParts, FeatureTable]:
    """Solids and the property table of one tile: segments first, then node features."""
    segments = [row for key, row in keyed_rows if key > 0]
    nodes = [row for key, row in keyed_rows if key < 0]
    parts = MeshParts()
    _segment_solids(parts, segments, frame, leaf)
    _node_solids(parts, nodes, frame, first_id=len(segments))
    seg_sections = [section_label(r[6], r[7], r[8], r[9]) for r in segments]
    columns = [
        PropertyColumn("code", "STRING", [r[2] for r in segments] + [r[2] for r in nodes]),
        PropertyColumn(
            "feature", "STRING", [r[5] for r in segments] + [r[6] or r[5] for r in nodes]
        ),
        PropertyColumn("utility", "STRING", [r[3] for r in segments] + [r[3] for r in nodes]),
        PropertyColumn("subclass", "STRING", [r[4] for r in segments] + [r[4] for r in nodes]),
        PropertyColumn("material", "STRING", [r[10] for r in segments] + [None] * len(nodes)),
        PropertyColumn("section", "STRING", seg_sections + [None] * len(nodes)),
        PropertyColumn(
            "diameter",
            "FLOAT32",
            [r[7] for r in segments] + [None] * len(nodes),
            "exact inner diameter (mm); the section label gives its nominal DN",
        ),
        PropertyColumn(
            "depth",
            "FLOAT32",
            [r[12] for r in segments] + [_node_depth(r) for r in nodes],
            "m below ground: pipe top (segments), well bottom or device (nodes)",
        ),
        PropertyColumn("year", "UINT16", [r[11] for r in segments] + [None] * len(nodes)),
        PropertyColumn("dataset", "STRING", [r[13] for r in segments] + [r[-1] for r in nodes]),
        PropertyColumn(
            "table_id",
            "INT32",
            [int(r[0]) for r in segments] + [-int(r[0]) for r in nodes],
            "pipe_segment.id, or minus pipe_node.id",
        ),
    ]
    return parts, FeatureTable("cim_pipes", CLASS_NAME, len(segments) + len(nodes), columns)


def _node_depth(row: tuple[Any, ...]) -> float | None:
    ground = row[10] if row[10] is not None else row[9]
    if row[12]:
        return float(ground - row[11])
    return None if ground is None or row[13] is None else float(ground - row[13])


def _usable_axes(
    start: npt.NDArray[np.float64], end: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Which start->end axes are finite and longer than 1 mm (a solid can be built around)."""
    finite = np.asarray(np.isfinite(start).all(axis=1) & np.isfinite(end).all(axis=1))
    axis = np.where(finite.reshape(-1, 1), end - start, 0.0)
    long_enough: npt.NDArray[np.bool_] = np.linalg.norm(axis, axis=1) > 1e-3
    return finite & long_enough


def _segment_solids(
    parts: MeshParts, rows: list[tuple[Any, ...]], frame: TileFrame, leaf: bool
) -> None:
    if not rows:
        return
    lines = shapely.from_wkb(np.array([r[1] for r in rows], dtype=object))
    coords, owner = shapely.get_coordinates(lines, include_z=True, return_index=True)
    local = frame.to_local(coords)
    same = owner[1:] == owner[:-1]  # consecutive points of one line form a piece
    start, end, piece_owner = local[:-1][same], local[1:][same], owner[:-1][same]
    # Zero-length pieces (coincident pump inlet/outlet, repeated vertices) have no axis to build
    # a solid around: leave them out rather than write NaN positions.
    usable = _usable_axes(start, end)
    start, end, piece_owner = start[usable], end[usable], piece_owner[usable]
    half_w = np.empty(len(rows))
    half_h = np.empty(len(rows))
    sides = np.empty(len(rows), dtype=np.int64)
    for k, row in enumerate(rows):
        if row[6] == "rectangular" and row[8] and row[9]:
            half_w[k], half_h[k], sides[k] = row[8] / 2000, row[9] / 2000, 4
        else:
            diameter = row[7] or DEFAULT_DIAMETER_MM
            half_w[k] = half_h[k] = diameter / 2000
            sides[k] = sides_for(diameter, leaf=leaf)
    colours = np.array([class_colour(r[3], r[4]) for r in rows], dtype=np.uint8)
    for count in np.unique(sides[piece_owner]):
        pick = sides[piece_owner] == count
        who = piece_owner[pick]
        solids = prisms(start[pick], end[pick], half_w[who], half_h[who], int(count))
        per = solids.shape[1]
        parts.triangles.append(solids.reshape(-1, 3, 3))
        parts.colors.append(np.repeat(colours[who], per, axis=0))
        parts.feature_ids.append(np.repeat(who, per).astype(np.float32))


def _node_solids(
    parts: MeshParts, rows: list[tuple[Any, ...]], frame: TileFrame, *, first_id: int
) -> None:
    if not rows:
        return
    well = np.array([bool(r[12]) for r in rows])
    x = np.array([r[7] for r in rows], dtype=np.float64)
    y = np.array([r[8] for r in rows], dtype=np.float64)
    ground = np.array([r[10] if r[10] is not None else r[9] for r in rows], dtype=np.float64)
    bottom = np.array([r[11] if r[12] else np.nan for r in rows], dtype=np.float64)
    centre = np.array([r[13] for r in rows], dtype=np.float64)
    half = MARKER_SIZE / 2
    low = np.where(well, bottom, centre - half)
    high = np.where(well, ground, centre + half)
    ends = frame.to_local(
        np.concatenate([np.column_stack([x, y, low]), np.column_stack([x, y, high])])
    ).reshape(2, len(rows), 3)
    colours = np.array([class_colour(r[3], r[4]) for r in rows], dtype=np.uint8)
    usable = _usable_axes(ends[0], ends[1])  # nodes without heights, wells of zero depth
    for is_well, radius, sides in ((True, WELL_RADIUS, 12), (False, half, 4)):
        pick = np.flatnonzero((well == is_well) & usable)
        if pick.size == 0:
            continue
        size = np.full(pick.size, radius)
        solids = prisms(ends[0, pick], ends[1, pick], size, size, sides)
        per = solids.shape[1]
        parts.triangles.append(solids.reshape(-1, 3, 3))
        parts.colors.append(np.repeat(colours[pick], per, axis=0))
        parts.feature_ids.append(np.repeat(first_id + pick, per).astype(np.float32))
