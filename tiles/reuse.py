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
    """A ``reuse`` callback for :func:`tiles.subdivide.subdivide` over the previous build.

    Each row of the new index is labelled with the previous tile that held it (tiles numbered
    in key order, so a subtree is one range of numbers), or -1 when the feature is new or
    touched. A tile's rows are then exactly its previous subtree's features, untouched, when
    there are as many of them as the subtree held and every label lies in its range (features
    are distinct and each was in one tile): one pass over the rows, no sort.
    """

    def __init__(self, previous: Manifest, index: FeatureIndex, touched: npt.NDArray[np.bool_]):
        """``index``: the new (id-sorted) index; ``touched``: per row of it, whether the new
        versions touched that feature."""
        self.previous = previous
        self.keys = sorted(previous.tree)
        empty = np.zeros(0, np.int64)
        parts = [previous.tiles[k].ids if k in previous.tiles else empty for k in self.keys]
        counts = np.array([part.size for part in parts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        held = np.concatenate(parts) if parts else empty
        self.rows = np.searchsorted(index.ids, held).astype(np.int64)
        """Per previously held id (tiles in key order), its row in the new index."""
        found = self.rows < len(index)
        found[found] = index.ids[self.rows[found]] == held[found]
        self.tile_of_row = np.full(len(index), -1, dtype=np.int64)
        tile_numbers = np.repeat(np.arange(len(self.keys), dtype=np.int64), counts)
        self.tile_of_row[self.rows[found]] = tile_numbers[found]
        self.tile_of_row[touched] = -1
        self.reused: set[str] = set()
        """Keys of the tiles taken from the previous build (same features, box, error)."""

    def __call__(self, key: str, rows: IntArray) -> TileNode | None:
        """The previous subtree of ``key`` if it held exactly the features ``rows``, untouched."""
        first = bisect_left(self.keys, key)
        if first == len(self.keys) or self.keys[first] != key:
            return None
        last = bisect_left(self.keys, key + BEYOND_KEYS)  # the keys of key's subtree follow it
        if int(self.offsets[last] - self.offsets[first]) != rows.size:
            return None
        labels = self.tile_of_row[rows]
        if not np.all((labels >= first) & (labels < last)):
            return None
        return self._subtree(first, last)

    def _subtree(self, first: int, last: int) -> TileNode:
        """The nodes of keys ``first:last`` (one subtree, parents before children) as a tree."""
        nodes: dict[str, TileNode] = {}
        for position in range(first, last):
            key = self.keys[position]
            box, error = self.previous.tree[key]
            rows = self.rows[self.offsets[position] : self.offsets[position + 1]]
            node = TileNode(key, rows, box, error)
            nodes[key] = node
            self.reused.add(key)
            if key[:-1] in nodes:
                nodes[key[:-1]].children.append(node)
        return nodes[self.keys[first]]
