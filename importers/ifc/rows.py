"""Mesh arrays -> PostGIS values: MULTIPOLYGONZ EWKB, 2D footprint, BOX3D, JSON-safe psets."""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

_EWKB_MULTIPOLYGON_Z_SRID = 0x80000000 | 0x20000000 | 6
_WKB_POLYGON_Z = 0x80000000 | 3
_TRIANGLE = np.dtype(
    [
        ("byte_order", "u1"),
        ("kind", "<u4"),
        ("rings", "<u4"),
        ("points", "<u4"),
        ("xyz", "<f8", (4, 3)),
    ]
)


def mesh_ewkb(vertices: npt.NDArray[np.float64], faces: npt.NDArray[np.int64], srid: int) -> str:
    """Triangles as a hex EWKB MULTIPOLYGON Z (one closed 4-point ring per triangle).

    Built with numpy rather than shapely objects: ISSUE_021 has ~200k triangles.

    Examples
    --------
    >>> v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    >>> shapely.from_wkb(mesh_ewkb(v, np.array([[0, 1, 2]]), 4547)).area
    0.5
    """
    header = struct.pack("<BIII", 1, _EWKB_MULTIPOLYGON_Z_SRID, srid, len(faces))
    triangles = np.zeros(len(faces), dtype=_TRIANGLE)
    triangles["byte_order"] = 1
    triangles["kind"] = _WKB_POLYGON_Z
    triangles["rings"] = 1
    triangles["points"] = 4
    corners = vertices[faces] if len(faces) else np.empty((0, 3, 3))
    triangles["xyz"][:, :3] = corners
    triangles["xyz"][:, 3] = corners[:, 0] if len(faces) else np.empty((0, 3))
    return (header + triangles.tobytes()).hex()


def footprint(
    vertices: npt.NDArray[np.float64], faces: npt.NDArray[np.int64]
) -> shapely.MultiPolygon | None:
    """The 2D union of the triangles seen from above (None when nothing has a plan area).

    A closed, consistently oriented mesh is covered from above by its upward-facing triangles
    and again by its downward-facing ones (a vertical line through it enters and leaves), so
    only the smaller of the two sets is unioned: about half the GEOS work. Open or
    inconsistently oriented meshes union every triangle.
    """
    if not len(faces):
        return None
    corners = vertices[faces][:, :, :2]
    signed = (corners[:, 1, 0] - corners[:, 0, 0]) * (corners[:, 2, 1] - corners[:, 0, 1]) - (
        corners[:, 2, 0] - corners[:, 0, 0]
    ) * (corners[:, 1, 1] - corners[:, 0, 1])
    keep = np.abs(signed) > 1e-10
    if closed_and_oriented(faces):
        up = signed > 1e-10
        down = signed < -1e-10
        keep = up if np.count_nonzero(up) <= np.count_nonzero(down) else down
    corners = corners[keep]
    if not len(corners):
        return None
    rings = np.concatenate([corners, corners[:, :1]], axis=1)
    polygons = shapely.polygons(rings)
    try:
        union = shapely.union_all(polygons)
    except shapely.errors.GEOSException:
        # Nearly coincident edges can defeat floating-point overlay; snap to 0.1 mm then.
        union = shapely.union_all(polygons, grid_size=1e-4)
    return as_multipolygon(union)


class FootprintCache:
    """:func:`footprint` of meshes that are translated copies of one another, computed once.

    A model repeats its windows, doors, columns and fittings: the same mesh placed at another
    spot. The plan outline is a GEOS union of triangles (most of an element's encoding time),
    and a translated copy's outline is the shape's outline moved by the same vector. The key is
    the faces and the vertices relative to the first vertex, to the micrometre, so only exact
    copies share an outline (a rotated copy is a different key). Bounded: cleared when full.

    The outline is always computed from the key's own relative vertices and moved by the
    mesh's first vertex, so a mesh gets the same bytes whether or not another copy came first
    (workers meet copies in any order; a re-import must store identical rows — versions
    compare geometries byte for byte).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._known: dict[bytes, shapely.MultiPolygon | None] = {}
        self.hits = 0

    def __call__(
        self, vertices: npt.NDArray[np.float64], faces: npt.NDArray[np.int64]
    ) -> shapely.MultiPolygon | None:
        if not len(faces):
            return None
        origin = vertices[0]
        shape = np.round(vertices - origin, 6) + 0.0  # + 0.0: -0.0 and 0.0 hash alike
        key = hashlib.blake2b(
            np.ascontiguousarray(faces).tobytes() + shape.tobytes(), digest_size=16
        ).digest()
        if key in self._known:
            self.hits += 1
            outline = self._known[key]
        else:
            outline = footprint(shape, faces)
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[key] = outline
        if outline is None:
            return None
        shift = origin[:2].copy()
        moved: shapely.MultiPolygon = shapely.transform(outline, lambda xy: xy + shift)
        return moved


def closed_and_oriented(faces: npt.NDArray[np.int64]) -> bool:
    """True when every directed edge is used once and its reverse once (a closed surface,
    consistently oriented; vertices welded, as the iterator gives them).

    Examples
    --------
    >>> tetrahedron = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    >>> closed_and_oriented(tetrahedron), closed_and_oriented(tetrahedron[:3])
    (True, False)
    """
    if not len(faces):
        return False
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
    size = int(edges.max()) + 1
    forward = np.sort(edges[:, 0] * size + edges[:, 1])
    if np.any(forward[1:] == forward[:-1]):
        return False
    backward = np.sort(edges[:, 1] * size + edges[:, 0])
    return bool(np.array_equal(forward, backward))


def as_multipolygon(geometry: Any) -> shapely.MultiPolygon | None:
    """Polygonal parts of ``geometry`` as a MultiPolygon (None if there are none)."""
    if geometry is None or geometry.is_empty:
        return None
    parts = [
        part
        for part in shapely.get_parts(geometry)
        if isinstance(part, shapely.Polygon) and not part.is_empty
    ]
    if not parts:
        nested = [p for g in shapely.get_parts(geometry) for p in shapely.get_parts(g)]
        parts = [p for p in nested if isinstance(p, shapely.Polygon) and not p.is_empty]
    return shapely.MultiPolygon(parts) if parts else None


def ewkb(geometry: Any, srid: int) -> str | None:
    """Hex EWKB of a shapely geometry with ``srid`` (None passes through)."""
    if geometry is None:
        return None
    return str(shapely.to_wkb(shapely.set_srid(geometry, srid), hex=True, include_srid=True))


def box3d(points: npt.NDArray[np.float64]) -> str | None:
    """``BOX3D(xmin ymin zmin,xmax ymax zmax)`` text for PostGIS."""
    if not len(points):
        return None
    low = points.min(axis=0)
    high = points.max(axis=0)
    return "BOX3D({} {} {},{} {} {})".format(*(repr(float(v)) for v in (*low, *high)))


def json_safe(value: Any) -> Any:
    """Property values as JSON: tuples -> lists, NaN/inf -> None, entities -> their text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def psets_without_ids(psets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``get_psets`` output without the STEP ``id`` entries (meaningless outside the file)."""
    return {
        name: json_safe({k: v for k, v in values.items() if k != "id"})
        for name, values in psets.items()
    }
