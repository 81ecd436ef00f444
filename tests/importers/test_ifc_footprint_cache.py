"""Repeated shapes get their plan outline once (importers.ifc.rows.FootprintCache)."""

from __future__ import annotations

import numpy as np
import shapely

from importers.ifc.rows import FootprintCache, footprint

# An L-shaped prism (not closed at the top: every triangle is unioned), 2 m high.
PLAN = np.array([[0, 0], [3, 0], [3, 1], [1, 1], [1, 2], [0, 2]], dtype=np.float64)


def _prism(shift: tuple[float, float], turn: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(turn), np.sin(turn)
    plan = PLAN @ np.array([[c, s], [-s, c]]) + np.array(shift)
    bottom = np.column_stack([plan, np.zeros(len(plan))])
    top = np.column_stack([plan, np.full(len(plan), 2.0)])
    vertices = np.vstack([bottom, top]) + np.array([684_000.0, 4_190_000.0, 260.0])
    n = len(plan)
    walls = []
    for i in range(n):
        j = (i + 1) % n
        walls += [[i, j, n + j], [i, n + j, n + i]]
    roof = [[n, n + 1, n + 2], [n, n + 2, n + 3], [n, n + 3, n + 4], [n, n + 4, n + 5]]
    return vertices, np.array(walls + roof, dtype=np.int64)


def test_a_translated_copy_gets_the_first_outline_moved() -> None:
    cache = FootprintCache()
    first = cache(*_prism((0.0, 0.0)))
    copy_vertices, copy_faces = _prism((37.25, -12.5))
    moved = cache(copy_vertices, copy_faces)
    assert cache.hits == 1
    direct = footprint(copy_vertices, copy_faces)
    assert first is not None and moved is not None and direct is not None
    assert shapely.equals_exact(shapely.normalize(moved), shapely.normalize(direct), 1e-9)
    assert abs(moved.area - 4.0) < 1e-9  # the L: 3 x 1 + 1 x 1


def test_a_rotated_copy_is_computed_again() -> None:
    cache = FootprintCache()
    cache(*_prism((0.0, 0.0)))
    vertices, faces = _prism((5.0, 5.0), turn=np.pi / 2)
    turned = cache(vertices, faces)
    assert cache.hits == 0
    direct = footprint(vertices, faces)
    assert turned is not None and direct is not None
    assert shapely.equals_exact(shapely.normalize(turned), shapely.normalize(direct), 1e-9)
