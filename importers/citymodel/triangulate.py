"""Triangulate one planar face (outer ring + holes) with earcut in the face's own plane.

Why the plane: earcut works in 2D, and a wall projected on the ground is a line. Each face is
projected onto its best-fit plane (Newell normal), triangulated there, and the triangles take
the original 3D vertices back. Faces that are degenerate (no area, fewer than three distinct
vertices) or non-planar (a vertex farther than :data:`PLANARITY_TOLERANCE_M` from the plane,
val3dity's default) are not stored; the caller counts them for the QC report.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import mapbox_earcut
import numpy as np
import numpy.typing as npt

PLANARITY_TOLERANCE_M = 0.01
"""Largest distance of a vertex from its face's plane (m) before the face is non-planar."""
MIN_AREA_M2 = 1e-6
Triangles = npt.NDArray[np.float64]
"""Triangles as an array of shape (n, 3, 3): triangle, corner, xyz."""
Rejected = Literal["degenerate", "non_planar"]


MAX_FAST_VERTICES = 64
"""Rings with more vertices are left to earcut (which switches to z-order hashing at 80)."""
CONVEX_MARGIN = 1e-9
"""A turn counts as convex when its cross product exceeds this share of the ring's squared size
(well above rounding, so earcut sees the same strictly convex ring)."""


@cache
def convex_pattern(n: int) -> npt.NDArray[np.int64]:
    """Earcut's triangles (vertex indices, shape (n - 2, 3)) of a strictly convex
    counter-clockwise ring of ``n`` vertices: they depend on ``n`` only, so rings of the same
    size are triangulated together (:mod:`importers.citymodel.extrusion`,
    :mod:`importers.citymodel.faces`).

    Examples
    --------
    >>> convex_pattern(4).tolist()
    [[2, 3, 0], [2, 0, 1]]
    """
    angles = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ring = np.column_stack([np.cos(angles), np.sin(angles)])
    indices = mapbox_earcut.triangulate_float64(ring, np.array([n], dtype=np.uint32))
    return np.asarray(indices, dtype=np.int64).reshape(-1, 3)


def clean_ring(ring: list[int]) -> list[int]:
    """Vertex indices without consecutive repeats nor a closing repeat of the first vertex.

    Examples
    --------
    >>> clean_ring([1, 2, 2, 3, 1])
    [1, 2, 3]
    """
    cleaned = [index for i, index in enumerate(ring) if i == 0 or index != ring[i - 1]]
    while len(cleaned) > 1 and cleaned[-1] == cleaned[0]:
        cleaned.pop()
    return cleaned


def newell_normal(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The (unnormalised) Newell normal of a ring; its length is twice the ring's area."""
    # Written out: np.cross costs more than the rest of a small face's triangulation.
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    nx, ny, nz = np.roll(x, -1), np.roll(y, -1), np.roll(z, -1)
    return np.array(
        [
            float(np.dot(y, nz) - np.dot(z, ny)),
            float(np.dot(z, nx) - np.dot(x, nz)),
            float(np.dot(x, ny) - np.dot(y, nx)),
        ]
    )


def triangulate_face(
    vertices: npt.NDArray[np.float64], rings: list[list[int]]
) -> Triangles | Rejected:
    """Triangles of the face ``rings`` (indices into ``vertices``), or why it was rejected.

    Examples
    --------
    >>> square = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1.0]])  # a vertical wall
    >>> triangulate_face(square, [[0, 1, 2, 3]]).shape
    (2, 3, 3)
    >>> triangulate_face(square, [[0, 1, 1]])
    'degenerate'
    """
    outer = clean_ring(rings[0]) if rings else []
    if len(set(outer)) < 3:
        return "degenerate"
    kept = [outer] + [r for r in (clean_ring(hole) for hole in rings[1:]) if len(set(r)) >= 3]
    points = vertices[np.concatenate([np.asarray(r, dtype=np.int64) for r in kept])]
    centre = points[: len(outer)].mean(axis=0)
    normal = newell_normal(points[: len(outer)] - centre)
    length = float(np.linalg.norm(normal))
    if length / 2 < MIN_AREA_M2:
        return "degenerate"
    normal /= length
    if float(np.abs((points - centre) @ normal).max()) > PLANARITY_TOLERANCE_M:
        return "non_planar"
    # Two axes in the plane: the world axis least along the normal, made perpendicular.
    axis = np.zeros(3)
    axis[int(np.argmin(np.abs(normal)))] = 1.0
    u = _cross(normal, axis)
    u /= np.linalg.norm(u)
    v = _cross(normal, u)
    flat = (points - centre) @ np.column_stack([u, v])
    ends = np.cumsum([len(r) for r in kept]).astype(np.uint32)
    indices = mapbox_earcut.triangulate_float64(flat, ends)
    if len(indices) == 0:
        return "degenerate"
    return np.asarray(points[indices.reshape(-1, 3)], dtype=np.float64)


def _cross(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The cross product of two 3-vectors (np.cross is slow on one pair)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )
