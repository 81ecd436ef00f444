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


# Two glazing panes of the IfcOpenHouse as the importer placed them (storage CRS, turned 30°):
# 5 mm thick boxes, translated copies of one another. Both are written out: the second pane
# computed as the first plus an offset has other last bits and no longer shows the defect.
PANE = np.array(
    [
        [499998.8976477372, 2999999.369330127, 10.49],
        [499998.8976477372, 2999999.369330127, 11.91],
        [499998.9026477372, 2999999.360669873, 10.49],
        [499998.9026477372, 2999999.360669873, 11.91],
        [500000.35257041553, 3000000.209330127, 10.49],
        [500000.35257041553, 3000000.209330127, 11.91],
        [500000.35757041554, 3000000.200669873, 10.49],
        [500000.35757041554, 3000000.200669873, 11.91],
    ]
)
PANE_FACES = np.array(
    [
        [2, 0, 4],
        [3, 2, 6],
        [7, 6, 4],
        [5, 4, 0],
        [1, 0, 2],
        [1, 3, 7],
        [4, 6, 2],
        [6, 7, 3],
        [4, 5, 7],
        [0, 1, 5],
        [2, 3, 1],
        [7, 5, 1],
    ]
)
OTHER_PANE = np.array(
    [
        [500001.8681148722, 3000001.084330127, 10.49],
        [500001.8681148722, 3000001.084330127, 11.91],
        [500001.8731148722, 3000001.075669873, 10.49],
        [500001.8731148722, 3000001.075669873, 11.91],
        [500003.32303755055, 3000001.924330127, 10.49],
        [500003.32303755055, 3000001.924330127, 11.91],
        [500003.32803755056, 3000001.915669873, 10.49],
        [500003.32803755056, 3000001.915669873, 11.91],
    ]
)


def test_a_copy_gets_the_same_bytes_whichever_copy_came_first() -> None:
    """Workers meet copies in any order, and a re-import must store identical rows (versions
    compare geometries byte for byte): the second pane's outline may not depend on whether
    the first pane was seen before (it did, at the last bit, before the fix)."""
    after_first = FootprintCache()
    after_first(PANE, PANE_FACES)
    moved = after_first(OTHER_PANE, PANE_FACES)
    alone = FootprintCache()(OTHER_PANE, PANE_FACES)
    assert after_first.hits == 1
    assert moved is not None and alone is not None
    assert shapely.to_wkb(moved) == shapely.to_wkb(alone)
