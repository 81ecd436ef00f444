"""Reusing unchanged subtrees (tiles/reuse.py) cuts the very tree subdivide cuts from scratch.

Oracle: :func:`tiles.subdivide.subdivide` without reuse on the same changed index; compared
tile by tile (key, feature ids, box, geometric error, children).
"""

from __future__ import annotations

import numpy as np
import pytest

from tiles.manifest import Manifest, Stamp, TileRecord, sorted_index, tree_of
from tiles.render import TileOutput
from tiles.reuse import PreviousTree
from tiles.subdivide import FeatureIndex, TileNode, subdivide

BUDGET = 2_000


def _index(count: int, seed: int) -> FeatureIndex:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 5_000, (count, 2))
    extent = rng.choice([2.0, 8.0, 40.0, 300.0], size=(count, 2))  # ties in size on purpose
    boxes = np.column_stack([corner, np.zeros(count), corner + extent, np.full(count, 3.0)])
    ids = rng.permutation(np.arange(1, count + 1)) * rng.choice([-1, 1], count)
    return sorted_index(FeatureIndex(ids.astype(np.int64), boxes, np.full(count, 96)))


def _manifest(root: TileNode, index: FeatureIndex) -> Manifest:
    tiles = {
        node.key: TileRecord(
            node.key,
            np.sort(index.ids[node.rows]),
            node.box,
            node.geometric_error,
            not node.children,
            TileOutput(node.key, int(node.rows.size), 0, 0, ""),
            np.identity(4),
            np.zeros(6),
        )
        for node in root.walk()
        if node.rows.size
    }
    return Manifest("pipes", "1.1", {}, BUDGET, Stamp({}), index, tiles, tree_of(root))


def _shape(root: TileNode, index: FeatureIndex) -> list[tuple[object, ...]]:
    return [
        (
            n.key,
            tuple(np.sort(index.ids[n.rows])),
            tuple(n.box),
            n.geometric_error,
            tuple(c.key for c in n.children),
        )
        for n in root.walk()
    ]


@pytest.mark.parametrize("moved", [1, 30, 400])
def test_reused_subtrees_equal_a_fresh_cut(moved: int) -> None:
    before = _index(20_000, seed=moved)
    previous = _manifest(subdivide(before, max_triangles=BUDGET), before)
    rng = np.random.default_rng(99)
    touched = rng.choice(before.ids, moved, replace=False)
    boxes = before.boxes.copy()
    pick = np.isin(before.ids, touched)
    boxes[pick, :2] += 25.0  # moved 25 m: centres cross split lines now and then
    boxes[pick, 3:5] += 25.0
    after = FeatureIndex(before.ids, boxes, before.triangles)

    reuse = PreviousTree(previous, after, pick)
    calls: list[bool] = []

    def counting(key: str, rows: np.ndarray) -> TileNode | None:
        found = reuse(key, rows)
        calls.append(found is not None)
        return found

    fresh = subdivide(after, max_triangles=BUDGET)
    reused = subdivide(after, max_triangles=BUDGET, reuse=counting)
    assert _shape(reused, after) == _shape(fresh, after)
    assert any(calls)  # unchanged subtrees were taken, not cut again
    assert sum(calls) < len(fresh.walk())


def test_nothing_is_reused_when_a_tile_got_other_features() -> None:
    index = _index(5_000, seed=3)
    previous = _manifest(subdivide(index, max_triangles=BUDGET), index)
    reuse = PreviousTree(previous, index, np.zeros(len(index), dtype=bool))
    root = subdivide(index, max_triangles=BUDGET)
    child = root.children[0]
    given = np.concatenate([node.rows for node in child.walk()])  # all features cut below it
    assert reuse(child.key, given) is not None
    assert reuse(child.key, given[1:]) is None  # one feature fewer
    assert reuse(child.key + "9", given) is None  # no such tile
