"""Faces triangulated together (``faces.triangulate_faces``) against one at a time: the oracle is
``triangulate.triangulate_face`` (earcut in each face's plane), which the importer used before
and still uses for the faces the array path leaves to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from importers.citymodel.faces import BadFace, triangulate_faces
from importers.citymodel.triangulate import triangulate_face


def _plane(rng: np.random.Generator) -> np.ndarray:
    """An orthonormal basis (u, v, normal) of a random plane (walls and roofs included)."""
    axes, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return np.asarray(axes.T)


def _vertex_set(rng: np.random.Generator) -> tuple[np.ndarray, list[list[list[int]]]]:
    """Vertices and faces of every kind: convex both ways round, concave, non-planar, tiny,
    with a hole, with repeated and closing vertices."""
    vertices: list[np.ndarray] = []
    faces: list[list[list[int]]] = []

    def add(points: np.ndarray, *holes: np.ndarray) -> None:
        rings = []
        for ring in (points, *holes):
            start = sum(len(v) for v in vertices)
            vertices.append(ring)
            rings.append(list(range(start, start + len(ring))))
        faces.append(rings)

    origin = rng.uniform([80_000, 430_000, 0], [90_000, 440_000, 50])
    for k in range(120):
        u, v, normal = _plane(rng)
        n = 3 + k % 9
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        if k % 2:
            angles = angles[::-1]
        radius = rng.uniform(0.5, 20) * (1 + (k % 3 == 0) * rng.uniform(0, 0.8, n))  # some concave
        flat = np.column_stack([np.cos(angles), np.sin(angles)]) * np.atleast_1d(radius)[:, None]
        points = origin + flat[:, :1] * u + flat[:, 1:] * v
        if k % 11 == 5:
            points = points + normal * rng.uniform(-0.05, 0.05, (n, 1))  # non-planar
        if k % 13 == 7:
            points = origin + (points - origin) * 1e-4  # degenerate
        if k % 17 == 3:
            add(points, origin + 0.2 * (points[:3] - origin)[::-1])  # with a hole
        else:
            add(points)
    faces.append([[0, 1, 1, 2, 0]])  # repeated and closing vertices
    faces.append([[0, 1]])  # too few vertices
    return np.concatenate(vertices), faces


def _same(a: Any, b: Any) -> bool:
    return a == b if isinstance(a, str) or isinstance(b, str) else np.array_equal(a, b)


def test_answers_are_those_of_one_face_at_a_time() -> None:
    rng = np.random.default_rng(3)
    sets = [_vertex_set(rng) for _ in range(3)]
    vertex_sets = [v for v, _ in sets]
    faces = [(k, rings) for k, (_, found) in enumerate(sets) for rings in found]
    answers = triangulate_faces(vertex_sets, faces)
    expected = [triangulate_face(vertex_sets[k], rings) for k, rings in faces]
    assert len(answers) == len(expected)
    assert all(_same(a, b) for a, b in zip(answers, expected, strict=True))
    kinds = {a if isinstance(a, str) else "triangles" for a in answers}
    assert kinds == {"triangles", "degenerate", "non_planar"}


def test_a_face_beyond_its_vertices_is_named() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    faces = [(0, [[0, 1, 2, 3]]), (1, [[0, 1, 2, 3]])]  # set 1 has 3 vertices
    with pytest.raises(BadFace) as raised:
        triangulate_faces([vertices, vertices[:3]], faces)
    assert raised.value.index == 1
