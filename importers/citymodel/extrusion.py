"""LOD1 blocks: a footprint extruded from base to top (:func:`extrude`), and many at once.

Why: extruding one footprint at a time cost ~0.7 ms of Python and numpy overhead per building
(orienting, earcut, walls), for four or five vertices. Most footprints are one polygon without
holes whose ring is strictly convex (every turn the same way, no collinear or repeated vertex):
for those, earcut's answer depends only on the vertex count, so footprints with the same count
are extruded together as one (m, n, 2) array: roof and floor from
:func:`~importers.citymodel.triangulate.convex_pattern`, walls as two triangles per edge.
Everything else (holes, several parts, concave rings) goes through :func:`extrude` one by one.
The triangles, their order and winding are those of ``extrude``, so the stored rows do not
depend on the path.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.polygon import orient

from importers.citymodel.buildings import SurfaceKey
from importers.citymodel.triangulate import (
    CONVEX_MARGIN,
    MAX_FAST_VERTICES,
    MIN_AREA_M2,
    Triangles,
    convex_pattern,
    triangulate_face,
)
from importers.citymodel.writer import SurfaceRows

LOD = "1"
SEMANTICS = ("GroundSurface", "RoofSurface", "WallSurface")
"""Surface rows of a block in the writer's order (sorted by semantic class)."""


def simple_rings(
    footprints: npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Which footprints are one polygon without holes, their exterior's vertex count (without
    the closing vertex) and the coordinates of all of them (closing vertices included)."""
    single = shapely.get_num_geometries(footprints) == 1
    polygons = shapely.get_geometry(footprints, 0)
    single &= shapely.get_num_interior_rings(polygons) == 0
    counts = np.where(single, shapely.get_num_coordinates(polygons) - 1, 0)
    coords = shapely.get_coordinates(shapely.get_exterior_ring(polygons[single]))
    return single, counts, coords


def extrude_simple(
    rings: npt.NDArray[np.float64], base: npt.NDArray[np.float64], top: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.bool_], Triangles]:
    """Blocks of ``m`` rings of ``n`` vertices (shape (m, n, 2), not closed): which rings are
    strictly convex, and for those the triangles of ground, roof and walls, shape
    (m', 2 (n - 2) + 2 n, 3, 3), in that order (the order and winding of ``extrude``)."""
    m, n, _ = rings.shape
    if n < 3 or n > MAX_FAST_VERTICES:
        return np.zeros(m, dtype=bool), np.zeros((0, 4 * n - 4, 3, 3))
    local = rings - rings[:, :1]
    # Shoelace area, then orientation as shapely's orient(sign=1) does: clockwise rings are
    # reversed (their first vertex kept).
    following = np.roll(local, -1, axis=1)
    twice_area = (local[:, :, 0] * following[:, :, 1] - following[:, :, 0] * local[:, :, 1]).sum(1)
    clockwise = twice_area < 0
    oriented = rings.copy()
    oriented[clockwise, 1:] = rings[clockwise, :0:-1]
    local = oriented - oriented[:, :1]
    edges = np.roll(local, -1, axis=1) - local
    turns = (
        edges[:, :, 0] * np.roll(edges, -1, axis=1)[:, :, 1]
        - edges[:, :, 1] * np.roll(edges, -1, axis=1)[:, :, 0]
    )
    size = np.abs(local).max(axis=(1, 2))
    convex = (turns > CONVEX_MARGIN * size[:, None] ** 2).all(axis=1)
    convex &= np.abs(twice_area) / 2 >= 2 * MIN_AREA_M2
    ring = oriented[convex]
    base, top = base[convex], top[convex]
    k = len(ring)
    cap = ring[:, convex_pattern(n)]  # (k, n - 2, 3, 2)
    roof = _level(cap, top, up=True)
    ground = _level(cap, base, up=False)
    after = np.roll(ring, -1, axis=1)
    low = np.broadcast_to(base[:, None, None], (k, n, 1))
    high = np.broadcast_to(top[:, None, None], (k, n, 1))
    a0, b0 = np.concatenate([ring, low], axis=2), np.concatenate([after, low], axis=2)
    a1, b1 = np.concatenate([ring, high], axis=2), np.concatenate([after, high], axis=2)
    walls = np.concatenate([np.stack([a0, b0, b1], axis=2), np.stack([a0, b1, a1], axis=2)], axis=1)
    return convex, np.concatenate([ground, roof, walls], axis=1)


def _level(cap: npt.NDArray[np.float64], z: npt.NDArray[np.float64], *, up: bool) -> Triangles:
    """Cap triangles (k, t, 3, 2) at height ``z`` (k,), wound up or down as ``_facing`` does."""
    k, t = cap.shape[:2]
    placed = np.concatenate([cap, np.broadcast_to(z[:, None, None, None], (k, t, 3, 1))], axis=3)
    a, b, c = placed[:, :, 0, :2], placed[:, :, 1, :2], placed[:, :, 2, :2]
    normal_z = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )
    flip = normal_z < 0 if up else normal_z > 0
    placed[flip] = placed[flip][:, ::-1]
    return placed


def block_surfaces(
    footprints: npt.NDArray[np.object_], base: npt.NDArray[np.float64], top: npt.NDArray[np.float64]
) -> SurfaceRows:
    """The ``building_surface`` rows of the blocks of ``footprints`` (ground, roof, walls, as
    :func:`extrude` makes them): simple convex footprints as arrays
    (:mod:`importers.citymodel.extrusion`), the others one by one."""
    count = len(footprints)
    single, counts, coords = simple_rings(footprints)
    starts = np.zeros(int(single.sum()), dtype=np.int64)
    if len(starts):
        np.cumsum(counts[single][:-1] + 1, out=starts[1:])
    position = np.full(count, -1, dtype=np.int64)
    position[single] = np.arange(len(starts))
    fast: dict[int, tuple[npt.NDArray[np.int64], Triangles]] = {}
    done = np.zeros(count, dtype=bool)
    for n in np.unique(counts[single]).tolist():
        members = np.flatnonzero(single & (counts == n))
        rings = coords[starts[position[members]][:, None] + np.arange(n)]
        convex, triangles = extrude_simple(rings, base[members], top[members])
        fast[n] = (members[convex], triangles)
        done[members[convex]] = True
    slow = {
        int(i): extrude(footprints[i], float(base[i]), float(top[i])) for i in np.flatnonzero(~done)
    }
    # Rows per building, triangles per row, in building order.
    row_count = np.full(count, 3, dtype=np.int64)
    triangle_count = np.zeros(count, dtype=np.int64)
    for n, (members, _) in fast.items():
        triangle_count[members] = 4 * n - 4
    for i, surfaces in slow.items():
        row_count[i] = len(surfaces)
        triangle_count[i] = sum(len(t) for t in surfaces.values())
    first_row = np.concatenate([[0], np.cumsum(row_count)[:-1]]).astype(np.int64)
    first_triangle = np.concatenate([[0], np.cumsum(triangle_count)[:-1]]).astype(np.int64)
    rows = int(row_count.sum())
    sizes = np.zeros(rows, dtype=np.int64)
    semantic_code = np.zeros(rows, dtype=np.int64)
    triangles = np.empty((int(triangle_count.sum()), 3, 3), dtype=np.float64)
    for n, (members, blocks) in fast.items():
        for k, size in enumerate((n - 2, n - 2, 2 * n)):
            sizes[first_row[members] + k] = size
            semantic_code[first_row[members] + k] = k
        triangles[first_triangle[members][:, None] + np.arange(4 * n - 4)] = blocks
    for i, surfaces in slow.items():
        at, row = int(first_triangle[i]), int(first_row[i])
        for (_, semantic), block in sorted(surfaces.items(), key=lambda item: item[0][1] or ""):
            sizes[row] = len(block)
            semantic_code[row] = SEMANTICS.index(str(semantic))
            triangles[at : at + len(block)] = block
            at += len(block)
            row += 1
    names = np.array(SEMANTICS, dtype=object)
    return SurfaceRows(
        building=np.repeat(np.arange(count, dtype=np.int64), row_count),
        lod=[LOD] * rows,
        semantic=list(names[semantic_code]),
        sizes=sizes,
        triangles=triangles,
    )


def extrude(footprint: shapely.Geometry, base: float, top: float) -> dict[SurfaceKey, Triangles]:
    """LOD1 block of a (multi)polygon: roof (normals up), ground (down), walls (outwards).

    Examples
    --------
    >>> block = extrude(shapely.box(0, 0, 2, 1), 0.0, 3.0)
    >>> [len(block[(LOD, s)]) for s in ("RoofSurface", "GroundSurface", "WallSurface")]
    [2, 2, 8]
    """
    roofs: list[Triangles] = []
    grounds: list[Triangles] = []
    walls: list[Triangles] = []
    for polygon in shapely.get_parts(footprint):
        polygon = orient(polygon, sign=1.0)  # exterior counter-clockwise, holes clockwise
        rings = [np.asarray(polygon.exterior.coords)[:-1, :2]]
        rings += [np.asarray(r.coords)[:-1, :2] for r in polygon.interiors]
        flat = _cap(rings)
        if flat is not None:
            roofs.append(_facing(flat, top, up=True))
            grounds.append(_facing(flat, base, up=False))
        walls.extend(_walls(ring, base, top) for ring in rings)
    found = {"RoofSurface": roofs, "GroundSurface": grounds, "WallSurface": walls}
    return {(LOD, k): np.concatenate(v) for k, v in found.items() if v}


def _cap(rings: list[npt.NDArray[np.float64]]) -> Triangles | None:
    """Triangles (z = 0) of a horizontal face with holes, by ``triangulate_face`` (earcut)."""
    vertices = np.column_stack([np.concatenate(rings), np.zeros(sum(len(r) for r in rings))])
    ends = np.cumsum([0] + [len(r) for r in rings])
    indices = [list(range(int(a), int(b))) for a, b in pairwise(ends)]
    result = triangulate_face(vertices, indices)
    return None if isinstance(result, str) else result


def _facing(triangles: Triangles, z: float, *, up: bool) -> Triangles:
    """``triangles`` at height ``z``, each wound so its normal points up (or down)."""
    placed = triangles.copy()
    placed[:, :, 2] = z
    a, b, c = placed[:, 0, :2], placed[:, 1, :2], placed[:, 2, :2]
    normal_z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = normal_z < 0 if up else normal_z > 0
    placed[flip] = placed[flip][:, ::-1]
    return placed


def _walls(ring: npt.NDArray[np.float64], base: float, top: float) -> Triangles:
    """Two triangles per edge of ``ring`` (a closed ring without its repeated end vertex)."""
    a = ring
    b = np.roll(ring, -1, axis=0)
    keep = np.any(a != b, axis=1)
    a, b = a[keep], b[keep]
    n = len(a)
    a0, b0 = np.column_stack([a, np.full(n, base)]), np.column_stack([b, np.full(n, base)])
    a1, b1 = np.column_stack([a, np.full(n, top)]), np.column_stack([b, np.full(n, top)])
    first = np.stack([a0, b0, b1], axis=1)
    second = np.stack([a0, b1, a1], axis=1)
    return np.concatenate([first, second])
