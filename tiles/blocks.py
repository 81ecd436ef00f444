"""LOD1 blocks of city-model buildings: a footprint extruded from base to top, roof and walls.

The coarse tiles of the buildings layer (:mod:`tiles.coarse`) draw each building they keep as
this block, its roof coloured as a roof, its walls as walls and its floor as ground (seen from
below, from the pipes underground, a block without a floor would vanish: its roof and walls
face away). Rings are oriented counter-
clockwise first so that roofs face up and walls face out. Walls and the roofs of convex rings
without holes (nearly every footprint) are made in one numpy pass for a whole tile; other
roofs are triangulated with earcut, one polygon at a time. The meshes share their vertices: a
roof's triangles index its ring's points at the top (a rectangle: 4 vertices, not 6), a wall's
two triangles the 4 corners of its face; each footprint point is transformed once, for all its
heights (``lift``).

Examples
--------
>>> import shapely
>>> roofs, walls, floors = block_meshes([shapely.to_wkb(shapely.box(0, 0, 2, 1))], [0.0], [3.0])
>>> roofs.vertices.shape, roofs.triangles.shape, walls.vertices.shape, walls.triangles.shape
((4, 3), (2, 3), (16, 3), (8, 3))
>>> float(roofs.vertices[:, 2].max()), float(walls.vertices[:, 2].min()), roofs.owner.tolist()
(3.0, 0.0, [0, 0, 0, 0])
>>> float(floors.vertices[:, 2].max()), (floors.triangles == roofs.triangles[:, ::-1]).all()
(0.0, np.True_)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mapbox_earcut
import numpy as np
import numpy.typing as npt
import shapely

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class BlockMesh:
    """Triangles (``triangles`` index ``vertices``) and the building each vertex belongs to."""

    vertices: FloatArray  # (n, 3)
    triangles: IntArray  # (m, 3), counter-clockwise seen from outside
    owner: IntArray  # (n,)


def _empty() -> BlockMesh:
    return BlockMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64))


def block_meshes(
    footprints: Sequence[bytes | None],
    bases: Sequence[float],
    tops: Sequence[float],
    lift: Callable[[FloatArray], tuple[FloatArray, FloatArray]] | None = None,
    *,
    walls: bool = True,
) -> tuple[BlockMesh, BlockMesh, BlockMesh]:
    """The roofs (at ``top``), the walls (``base`` to ``top``) and the floors (at ``base``,
    the roofs' triangles turned to face down; walls and floors none unless ``walls``) of the
    buildings whose 2D (multi)polygon footprints are given as WKB (None: no block), their
    corners placed by ``lift`` ((k, 2) storage points to (f, g), the point at height h
    being ``f + h * g`` in tile coordinates, :meth:`tiles.content.TileFrame.lift`; default:
    kept as they are): each footprint point is transformed once for its roof and walls."""
    rings = _simple_rings(footprints)
    if rings is None:
        rings = _rings(footprints)
    closed, counts, ring_polygon, owner, holes = rings
    if owner.size == 0:
        return _empty(), _empty(), _empty()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat, up = _lifted(closed, starts, counts, lift or _kept)
    point_polygon = np.repeat(ring_polygon, counts)
    point_owner = owner[point_polygon].astype(np.int64)
    top = np.asarray(tops, dtype=np.float64)[owner][point_polygon]
    exterior = np.concatenate([[0], np.cumsum(holes + 1)[:-1]])  # each polygon's first ring
    fan = (holes == 0) & _convex(closed, starts[exterior], counts[exterior])
    caps = [_fans(starts[exterior[fan]], counts[exterior[fan]])]
    for polygon in np.flatnonzero(~fan):
        first = int(exterior[polygon])
        ring_points = [
            np.arange(starts[r], starts[r] + counts[r] - 1)
            for r in range(first, first + int(holes[polygon]) + 1)
        ]
        caps.append(_earcut(closed, ring_points))
    cap = np.concatenate(caps)
    used, roof_triangles = np.unique(cap, return_inverse=True)  # the points roofs touch
    roof_points = flat[used] + top[used, None] * up[used]
    roofs = BlockMesh(roof_points, roof_triangles.reshape(-1, 3), point_owner[used])
    if not walls:
        return roofs, _empty(), _empty()
    base = np.asarray(bases, dtype=np.float64)[owner][point_polygon]
    floor_points = flat[used] + base[used, None] * up[used]
    floors = BlockMesh(floor_points, roof_triangles.reshape(-1, 3)[:, ::-1].copy(), roofs.owner)
    high = closed.shape[0]  # corners[high + i] is point i at the top, corners[i] at the base
    corners = np.concatenate([flat + base[:, None] * up, flat + top[:, None] * up])
    faces = _walls(counts, high)  # (e, 4) corners of each wall face
    pattern = np.array([0, 1, 2, 0, 2, 3], dtype=np.int64)  # two triangles a face
    wall_triangles = (4 * np.arange(faces.shape[0])[:, None] + pattern).reshape(-1, 3)
    sides = BlockMesh(
        corners[faces.reshape(-1)], wall_triangles, np.repeat(point_owner[faces[:, 0]], 4)
    )
    return roofs, sides, floors


def _lifted(
    closed: FloatArray,
    starts: IntArray,
    counts: IntArray,
    lift: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
) -> tuple[FloatArray, FloatArray]:
    """``lift`` of every point of the closed rings, each ring's closing point (its first
    again) copied rather than transformed: a rectangle has 4 points to place, not 5."""
    closing = starts + counts - 1
    opened = np.ones(closed.shape[0], dtype=bool)
    opened[closing] = False
    flat, up = lift(closed[opened])
    source = np.cumsum(opened) - 1  # each point's row among the open ones
    source[closing] = source[starts]
    return flat[source], up[source]


def _kept(xy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Storage coordinates as they are: (x, y, 0) + h (0, 0, 1)."""
    flat = np.column_stack([xy, np.zeros(xy.shape[0])])
    return flat, np.tile([0.0, 0.0, 1.0], (xy.shape[0], 1))


Rings = tuple[FloatArray, IntArray, IntArray, IntArray, IntArray]
"""Closed rings' points one after another, each ring's point count and polygon, each polygon's
footprint and number of holes; exteriors counter-clockwise, holes clockwise."""


def _rings(footprints: Sequence[bytes | None]) -> Rings:
    """The rings of the footprints' polygons, through shapely (any polygon or multipolygon)."""
    geometries = shapely.from_wkb(np.array(list(footprints), dtype=object))
    polygons, owner = shapely.get_parts(geometries, return_index=True)
    polygons = shapely.orient_polygons(polygons)  # exteriors counter-clockwise, holes not
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    closed = shapely.get_coordinates(rings)
    counts = shapely.get_num_coordinates(rings).astype(np.int64)
    holes = shapely.get_num_interior_rings(polygons).astype(np.int64)
    return closed, counts, ring_polygon.astype(np.int64), owner.astype(np.int64), holes


POLYGON_HEADER, MULTIPOLYGON_HEADER = 13, 22  # bytes before a lone ring's first point


def _simple_rings(footprints: Sequence[bytes | None]) -> Rings | None:
    """:func:`_rings` read with numpy when every footprint is one ring alone (little-endian
    2D WKB Polygon, or MultiPolygon of one such polygon: what PostGIS gives for nearly every
    building) -- shapely's parse, parts, rings and orientation took 4 s of a 200k-building
    layer; None otherwise."""
    present = [k for k, blob in enumerate(footprints) if blob is not None]
    blobs = [blob for blob in footprints if blob is not None]
    if not blobs:
        return None
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if (lengths < POLYGON_HEADER + 64).any():
        return None
    words = data[starts[:, None] + np.arange(1, 22)]  # everything after the first byte order
    multi = words[:, :4].copy().view("<u4")[:, 0] == 6
    polygon_head = np.where(multi, 9, 0)  # where the (only) polygon starts
    head = np.take_along_axis(words, polygon_head[:, None] + np.arange(12), axis=1)
    fields = head.copy().view("<u4")  # type, rings, points of the polygon (after its order)
    order = data[starts + polygon_head]
    header = np.where(multi, MULTIPOLYGON_HEADER, POLYGON_HEADER)
    counts = fields[:, 2].astype(np.int64)
    if (
        (data[starts] != 1).any()
        or (order != 1).any()
        or (multi & (words[:, 4:8].copy().view("<u4")[:, 0] != 1)).any()
        or (fields[:, 0] != 3).any()
        or (fields[:, 1] != 1).any()
        or (lengths != header + 16 * counts).any()
    ):
        return None
    keep = np.ones(data.size, dtype=bool)
    skipped = np.repeat(starts, header) + (
        np.arange(int(header.sum())) - np.repeat(np.cumsum(header) - header, header)
    )
    keep[skipped] = False
    closed = data[keep].view("<f8").reshape(-1, 2)
    ring_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ring = np.repeat(np.arange(counts.size), counts)
    origin = closed[np.repeat(ring_starts, counts)]  # shifted: no cancellation in metres
    x, y = closed[:, 0] - origin[:, 0], closed[:, 1] - origin[:, 1]
    following = np.arange(x.size) + 1
    following[np.cumsum(counts) - 1] -= 1  # the closing point pairs with itself
    twice_area = np.bincount(
        ring, x * y[following] - x[following] * y, minlength=counts.size
    )  # shoelace
    clockwise = np.repeat(twice_area < 0, counts)
    local = np.arange(x.size) - np.repeat(ring_starts, counts)
    mirrored = np.repeat(ring_starts + counts - 1, counts) - local
    closed = closed[np.where(clockwise, mirrored, np.arange(x.size))]
    polygons = np.arange(counts.size, dtype=np.int64)
    owner = np.asarray(present, dtype=np.int64)
    return closed, counts, polygons, owner, np.zeros(counts.size, np.int64)


def _walls(counts: IntArray, high: int) -> IntArray:
    """The 4 corners of the wall face on each edge of every ring (closed rings one after
    another, base corners at i, top corners at ``high + i``), in the order that makes the
    triangles (0, 1, 2) and (0, 2, 3) face out of a counter-clockwise exterior and into the
    courtyard of a clockwise hole."""
    edge = np.ones(int(counts.sum()), dtype=bool)
    edge[np.cumsum(counts) - 1] = False  # the closing point starts no edge
    a = np.flatnonzero(edge)
    b = a + 1
    return np.column_stack([a, b, b + high, a + high])


def _convex(closed: FloatArray, starts: IntArray, counts: IntArray) -> npt.NDArray[np.bool_]:
    """Whether each counter-clockwise ring (closed, at ``starts``) never turns right."""
    distinct = np.maximum(counts - 1, 1)
    owner = np.repeat(np.arange(starts.size), distinct)
    local = np.arange(owner.size) - np.repeat(np.cumsum(distinct) - distinct, distinct)
    size = distinct[owner]
    here = starts[owner] + local
    following = starts[owner] + (local + 1) % size
    after = starts[owner] + (local + 2) % size
    edge = closed[following] - closed[here]
    next_edge = closed[after] - closed[following]
    turn = edge[:, 0] * next_edge[:, 1] - edge[:, 1] * next_edge[:, 0]
    scale = np.maximum(np.abs(edge).max(axis=1), 1.0) ** 2  # metres: a relative tolerance
    right = np.zeros(starts.size, dtype=bool)
    np.logical_or.at(right, owner, turn < -1e-9 * scale)
    return ~right & (counts >= 4)


def _fans(starts: IntArray, counts: IntArray) -> IntArray:
    """Point indices of the fan triangles of convex counter-clockwise closed rings."""
    fans = np.maximum(counts - 3, 0)  # n distinct points: n - 2 triangles
    apex = np.repeat(starts, fans)
    step = np.arange(int(fans.sum())) - np.repeat(np.cumsum(fans) - fans, fans) + 1
    return np.stack([apex, apex + step, apex + step + 1], axis=1)


def _earcut(closed: FloatArray, rings: list[IntArray]) -> IntArray:
    """Point indices of the triangles (counter-clockwise seen from above) of a face whose
    rings are the points ``rings`` of ``closed``."""
    if rings[0].size < 3:
        return np.zeros((0, 3), dtype=np.int64)
    points = np.concatenate(rings)
    ends = np.cumsum([r.size for r in rings]).astype(np.uint32)
    found = mapbox_earcut.triangulate_float64(closed[points], ends)
    triangles = points[np.asarray(found, dtype=np.int64).reshape(-1, 3)]
    flat = closed[triangles]
    e1, e2 = flat[:, 1] - flat[:, 0], flat[:, 2] - flat[:, 0]
    clockwise = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
    triangles[clockwise] = triangles[clockwise][:, ::-1]  # earcut's winding follows no rule
    return triangles
