"""Triangulate many faces at once: :func:`triangulate.triangulate_face`'s answers, as arrays.

Why: a LOD2 house has seven faces of four or five vertices, and triangulating them one by one
cost ~0.7 ms of numpy call overhead per face. Faces with one ring are grouped by vertex count
and checked together (Newell normal, area, planarity, convexity in their plane). In its own
plane a ring is counter-clockwise seen along its Newell normal, so earcut's triangles of a
strictly convex ring depend only on its vertex count (:func:`triangulate.convex_pattern`).
Those faces are answered from the arrays; a face that is near a threshold (area, planarity),
not strictly convex, has holes, repeated or out-of-range vertex indices goes through
``triangulate_face`` itself, so each answer is the one ``triangulate_face`` gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from importers.citymodel.triangulate import (
    CONVEX_MARGIN,
    MAX_FAST_VERTICES,
    MIN_AREA_M2,
    PLANARITY_TOLERANCE_M,
    Rejected,
    Triangles,
    convex_pattern,
    triangulate_face,
)

Answer = Triangles | Rejected
NEAR = 0.5
"""Relative distance to a threshold below which a face is left to ``triangulate_face``."""


class BadFace(Exception):
    """Face ``index`` indexes vertices that do not exist (or is not a list of indices)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def triangulate_faces(
    vertex_sets: list[npt.NDArray[np.float64]], faces: list[tuple[int, Any]]
) -> list[Answer]:
    """``triangulate_face(vertex_sets[k], rings)`` for each ``(k, rings)`` of ``faces``, in
    order; :class:`BadFace` for the first face ``triangulate_face`` cannot index."""
    answers: list[Answer | None] = [None] * len(faces)
    by_size: dict[int, list[int]] = {}
    for i, (_, rings) in enumerate(faces):
        if isinstance(rings, list) and len(rings) == 1 and isinstance(rings[0], list):
            by_size.setdefault(len(rings[0]), []).append(i)
    if by_size:
        sizes = np.array([len(v) for v in vertex_sets], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        vertices = np.concatenate(vertex_sets) if vertex_sets else np.zeros((0, 3))
        sets = np.array([k for k, _ in faces], dtype=np.int64)
        for n, members in by_size.items():
            if 3 <= n <= MAX_FAST_VERTICES:
                group = _Group(vertices, sizes, offsets, sets, n)
                group.answer(faces, members, answers)
    for i, answer in enumerate(answers):
        if answer is None:
            k, rings = faces[i]
            try:
                answers[i] = triangulate_face(vertex_sets[k], rings)
            except (IndexError, TypeError, ValueError):
                raise BadFace(i) from None
    return [a for a in answers if a is not None]


class _Group:
    """Faces of one ring of ``n`` vertices, indices into the vertex sets laid end to end."""

    def __init__(
        self,
        vertices: npt.NDArray[np.float64],
        sizes: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
        sets: npt.NDArray[np.int64],
        n: int,
    ) -> None:
        self.vertices, self.sizes, self.offsets, self.sets, self.n = (
            vertices,
            sizes,
            offsets,
            sets,
            n,
        )

    def answer(
        self, faces: list[tuple[int, Any]], members: list[int], answers: list[Answer | None]
    ) -> None:
        """Answer the faces that need no earcut of their own (the others stay None)."""
        try:
            index = np.array([faces[i][1][0] for i in members], dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            return  # not a list of integers: triangulate_face says what is wrong
        if index.shape != (len(members), self.n):
            return
        chosen = self.sets[members]
        inside = (index >= 0) & (index < self.sizes[chosen][:, None])
        _answer_group(
            self.vertices, index + self.offsets[chosen][:, None], inside, members, answers
        )


def _answer_group(
    vertices: npt.NDArray[np.float64],
    index: npt.NDArray[np.int64],
    inside: npt.NDArray[np.bool_],
    members: list[int],
    answers: list[Answer | None],
) -> None:
    """Answer the faces (rows of ``index``, global vertex indices) that need no earcut."""
    n = index.shape[1]
    ok = inside.all(axis=1)
    ok &= (index != np.roll(index, -1, axis=1)).all(axis=1)  # no repeat, no closing vertex
    ordered = np.sort(index, axis=1)
    ok &= (ordered[:, 1:] != ordered[:, :-1]).all(axis=1)  # n distinct vertices
    rows = np.flatnonzero(ok)
    points = vertices[index[rows]]  # (m, n, 3)
    local = points - points.mean(axis=1, keepdims=True)
    following = np.roll(local, -1, axis=1)
    normal = np.cross(local, following).sum(axis=1)  # Newell: twice the area along the normal
    length = np.linalg.norm(normal, axis=1)
    area = length / 2
    degenerate = area < MIN_AREA_M2 * (1 - NEAR)
    sure = degenerate | (area > MIN_AREA_M2 * (1 + NEAR))
    unit = normal / np.where(length > 0, length, 1.0)[:, None]
    distance = np.abs(np.einsum("mnk,mk->mn", local, unit)).max(axis=1)
    non_planar = ~degenerate & (distance > PLANARITY_TOLERANCE_M * (1 + NEAR))
    sure &= degenerate | non_planar | (distance < PLANARITY_TOLERANCE_M * (1 - NEAR))
    edges = following - local
    turns = np.einsum("mnk,mk->mn", np.cross(edges, np.roll(edges, -1, axis=1)), unit)
    size = np.abs(local).max(axis=(1, 2))
    convex = (turns > CONVEX_MARGIN * size[:, None] ** 2).all(axis=1)
    fast = ~degenerate & ~non_planar & convex
    triangles = points[:, convex_pattern(n)]  # (m, n - 2, 3, 3)
    for row, face in enumerate(rows.tolist()):
        if not sure[row]:
            continue
        if degenerate[row]:
            answers[members[face]] = "degenerate"
        elif non_planar[row]:
            answers[members[face]] = "non_planar"
        elif fast[row]:
            answers[members[face]] = triangles[row]
