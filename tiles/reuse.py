"""Subtrees of the previous tile tree that a refresh can take as they are (no cutting again).

:func:`tiles.subdivide.subdivide` cuts a tile from the features given to it and nothing else
(always ordered by size, then id), so a tile that receives exactly the features it had last
time, none of them touched by the new versions, gets exactly the subtree it had. The manifest
keeps every tile's box and error and every content tile's features, which is all a
:class:`TileNode` subtree is; :class:`PreviousTree` rebuilds it with rows pointing into the new
index. Only the tiles on the paths to touched features are cut again, which makes cutting the
tree of a refresh proportional to the change rather than to the layer.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import numpy.typing as npt

from tiles.manifest import Manifest
from tiles.subdivide import FeatureIndex, TileNode

IntArray = npt.NDArray[np.int64]
BEYOND_KEYS = "~"  # sorts after every key character ("r" and the quadrant digits)


class PreviousTree:
    """A ``reuse`` callback for :func:`tiles.subdivide.subdivide` over the previous build."""

    def __init__(self, previous: Manifest, index: FeatureIndex, touched: npt.NDArray[np.bool_]):
        """``index``: the new (id-sorted) index; ``touched``: per row of it, whether the new
        versions touched that feature."""
        self.previous = previous
        self.index = index
        self.touched = touched
        self.keys = sorted(previous.tree)
        counts = [previous.tiles[k].ids.size if k in previous.tiles else 0 for k in self.keys]
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        parts = [previous.tiles[k].ids for k in self.keys if k in previous.tiles]
        self.ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        self.reused: set[str] = set()
        """Keys of the tiles taken from the previous build (same features, box, error)."""

    def __call__(self, key: str, rows: IntArray) -> TileNode | None:
        """The previous subtree of ``key`` if it held exactly the features ``rows``, untouched."""
        if self.touched[rows].any():
            return None
        first = bisect_left(self.keys, key)
        if first == len(self.keys) or self.keys[first] != key:
            return None
        last = bisect_left(self.keys, key + BEYOND_KEYS)  # the keys of key's subtree follow it
        held = self.ids[self.offsets[first] : self.offsets[last]]
        if held.size != rows.size or not np.array_equal(
            np.sort(held), np.sort(self.index.ids[rows])
        ):
            return None
        return self._subtree(self.keys[first:last])

    def _subtree(self, keys: list[str]) -> TileNode:
        """The nodes of ``keys`` (one subtree, parents before children) linked as a tree."""
        nodes: dict[str, TileNode] = {}
        for key in keys:
            box, error = self.previous.tree[key]
            record = self.previous.tiles.get(key)
            rows = (
                np.searchsorted(self.index.ids, record.ids)
                if record is not None
                else np.zeros(0, np.int64)
            )
            node = TileNode(key, rows.astype(np.int64), box, error)
            nodes[key] = node
            self.reused.add(key)
            if key[:-1] in nodes:
                nodes[key[:-1]].children.append(node)
        return nodes[keys[0]]
