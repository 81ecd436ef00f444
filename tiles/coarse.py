"""City-scale tile tree of the buildings layer: LOD1 blocks on coarse tiles, detail on leaves.

Why: the plain quadtree (:mod:`tiles.subdivide`, ADD) puts every feature in one tile, so from
afar a city shows a few big buildings and close up everything. Here city-model buildings are
cut into a quadtree over their centres whose *leaves* hold every surface of their buildings
(the full detail, as before) and whose *inner* tiles hold one LOD1 block per building
(:mod:`tiles.blocks`: footprint extruded base -> top) with REPLACE refinement:

* a building whose block *is* its detail (a LOD1 prism: flat roof at the block's top, floor
  at its base, the footprint's triangle count; every building imported from footprints) is
  not drawn twice: a tile whose buildings are all such prisms and fit twice the budget is a
  leaf of blocks (roof, walls and floor) with no finer tile under it. On a city of LOD1
  blocks this halves the features written: every surface leaf was as heavy as the blocks
  above it;
* an inner tile keeps the block of every building of its leaf children of surfaces (so each
  building is drawn, with its id, in the coarse tile just above its leaf), then, up to the
  triangle budget,
  the largest building of each cell of a grid over the tile, then the second largest, ...
  (the silhouette of the whole tile, not only of its tallest towers); tiles higher up (no leaf
  child) draw the blocks' roofs alone, seen from far above: a rectangle's roof is 2 triangles
  against 12 with its walls and floor, so six times as many buildings fit the budget, which
  more than pays for the walls' height added to the error;
* its geometric error bounds the distance from any point of the detail under it to what it
  draws: a kept building's block differs from its detail by its roof's relief (a flat roof
  at the top; by its height for a roof alone; plus how far the building row's base and top,
  which the block is drawn between, lie from its surfaces'), and a building left out lies
  within (distance of its box centre to a kept block's box centre + half its box diagonal,
  + half the kept building's height for a roof alone) of a kept block; at least
  ``MIN_ERROR`` (the roof shapes are gone), and never less than a child's, so
  errors shrink down the tree.

A block is a feature of the layer's index of its own (an id below ``-BLOCK_ID_BASE``, or
``-ROOF_ID_BASE`` for a roof alone; the box of its building), so rendering, the manifest and
``tileset.json`` handle it as any feature. It is named after one surface of its building:
picking it shows that surface's building. IFC elements keep their ADD quadtree (they are few
and have no block); when a layer has both, the root holds no content and has the element tree
and the city tree as children.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from tiles.city_surfaces import CitySurfaces
from tiles.subdivide import MAX_DEPTH, FeatureIndex, TileNode, subdivide

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

BLOCK_ID_BASE = 1 << 40
"""A block's feature id is ``-(BLOCK_ID_BASE + s)`` for the surface ``s`` it is named after."""
ROOF_ID_BASE = 2 << 40
"""A block drawn as its roof alone has the feature id ``-(ROOF_ID_BASE + s)``."""
MIN_ERROR = 1.0
"""Error of a coarse tile that draws every building under it as a block (m)."""
EXACT_M = 1e-6
"""A building whose block lies this close to its detail (flat roof at the block's top, floor at
its base, as many triangles as the footprint's prism) is drawn as its block on its leaf."""
PRISM_LEAF_SHARE = 2
"""A leaf of blocks holds up to twice the triangle budget (about 2 MB of glb). A quadtree
quarters its tiles, so with the budget alone such leaves held a quarter to all of it, as few
as 244 blocks each on the 1M-building bench city, each under a tile drawing their roofs again
(4,096 leaves; 1,024 with this factor, of 976 blocks, and a level of roof tiles fewer)."""
LEAF_SHARE = 2
"""Leaves of surfaces hold up to half the triangle budget: the blocks of a tile's leaf children
(no more triangles than their detail) then fill about its budget (at worst twice it). A quarter
kept them within it but, on the 1M-building bench city, cut 16,384 leaves of 61 buildings
(21,845 tiles, 10.6 MB of tileset.json)."""


@dataclass
class Buildings:
    """The city-model buildings of an index: per building its surface rows and measures."""

    members: IntArray  # index rows of the surfaces, building after building
    offsets: IntArray  # (m + 1,): building k's rows are members[offsets[k]:offsets[k + 1]]
    names: IntArray  # the surface (id) each building's block is named after
    boxes: FloatArray  # (m, 6) union of its surfaces' boxes
    detail: IntArray  # triangles of its surfaces
    relief: FloatArray  # how far its block's flat top may lie from its roof (m)
    block_triangles: IntArray  # of its block (roof, walls and floor)
    roof_triangles: IntArray  # of its block's roof alone
    exact: npt.NDArray[np.bool_]  # its block draws its detail (see city_index)

    def __len__(self) -> int:
        return int(self.names.size)

    def rows(self, buildings: IntArray) -> IntArray:
        """The surface rows of ``buildings`` (positions), sorted."""
        starts, ends = self.offsets[buildings], self.offsets[buildings + 1]
        lengths = ends - starts
        run = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return np.sort(self.members[np.repeat(starts, lengths) + run])


def hierarchy(index: FeatureIndex, *, max_triangles: int) -> tuple[FeatureIndex, TileNode]:
    """The index with the blocks added (sorted by id) and the tile tree of the layer, cut with
    the surfaces' columns that came with the index (``index.city``).

    An index without city-model surfaces gets the plain quadtree of :func:`subdivide`.
    """
    if not (index.ids < 0).any():
        return index, subdivide(index, max_triangles=max_triangles)
    city = index.city
    if not isinstance(city, CitySurfaces):
        raise ValueError("a city index comes from tiles.buildings.load_index, with its surfaces")
    return city_index(
        index, city.ids, city.buildings, city.roof, city.points, max_triangles, city.heights,
        city.within,
    )  # fmt: skip


def city_index(
    index: FeatureIndex,
    surface_ids: IntArray,
    building_ids: IntArray,
    roof: npt.NDArray[np.bool_],
    points: IntArray,
    max_triangles: int,
    heights: FloatArray | None = None,
    within: npt.NDArray[np.bool_] | None = None,
) -> tuple[FeatureIndex, TileNode]:
    """:func:`hierarchy` from the surfaces' buildings (``surface_ids`` sorted, negated as in
    the index, with each one's building id, roof flag, footprint point count and the base and
    top of its block, NaN or None where those are its surfaces', and whether it lies over its
    building's footprint; None: none does, no building is drawn as its block at a leaf)."""
    if surface_ids.size == 0:
        return index, subdivide(index, max_triangles=max_triangles)
    at = np.minimum(np.searchsorted(surface_ids, index.ids), surface_ids.size - 1)
    is_surface = surface_ids[at] == index.ids
    rows = np.flatnonzero(is_surface)
    owner = building_ids[at[rows]]
    order = np.lexsort((index.ids[rows], owner))
    rows, owner = rows[order], owner[order]
    first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    offsets = np.r_[first, rows.size].astype(np.int64)
    boxes = index.boxes[rows]
    lo = np.minimum.reduceat(boxes[:, :3], first)
    hi = np.maximum.reduceat(boxes[:, 3:], first)
    building_boxes = np.column_stack([lo, hi])
    detail = np.add.reduceat(index.triangles[rows], first)
    relief = _relief(boxes, roof[at[rows]], first, building_boxes)
    del boxes  # 48 bytes a surface, not needed while the tree is cut
    if heights is not None:  # a block drawn from the building row's base and top
        drawn = heights[at[rows[first]]]
        shift = np.abs(drawn - building_boxes[:, [2, 5]]).max(axis=1)
        relief = np.maximum(relief, np.nan_to_num(shift, nan=0.0))
    footprint_points = points[at[rows[first]]]
    prism = 4 * footprint_points - 8  # roof, floor (points - 3 each) and walls of one polygon
    over_footprint = (
        np.logical_and.reduceat(within[at[rows]], first)
        if within is not None
        else np.zeros(first.size, dtype=bool)
    )
    buildings = Buildings(
        rows, offsets, -index.ids[rows[first]], building_boxes, detail, relief,
        np.maximum(prism, 2).astype(np.int64),
        np.maximum(footprint_points - 3, 1).astype(np.int64),
        (footprint_points > 0) & (detail == prism) & (relief <= EXACT_M) & over_footprint,
    )  # fmt: skip
    cut = CityCut(buildings, max_triangles)
    city = cut.root("r")
    merged = _sorted(index, *cut.drawn_blocks())
    moved = np.searchsorted(merged.ids, index.ids)  # rows of the old index in the merged one
    cut.point_rows(city, merged, moved)
    elements = np.flatnonzero(~is_surface)
    if elements.size == 0:
        return merged, city
    return merged, _with_elements(merged, moved[elements], city, max_triangles)


def _relief(
    boxes: FloatArray, roof: npt.NDArray[np.bool_], first: IntArray, building: FloatArray
) -> FloatArray:
    """Per building, the height range of its roof surfaces (of the whole building when it has
    none: then the block's top may lie that far above what the detail draws)."""
    span = np.where(roof, boxes[:, 5] - boxes[:, 2], 0.0)
    has_roof = np.logical_or.reduceat(roof, first)
    return np.where(
        has_roof, np.maximum.reduceat(span, first), building[:, 5] - building[:, 2]
    ).astype(np.float64)


def _sorted(*parts: FeatureIndex) -> FeatureIndex:
    """``parts`` merged and sorted by id, each column scattered straight into its place (no
    concatenated copy of the boxes to index afterwards: ~170 MB at a million buildings)."""
    ids = np.concatenate([part.ids for part in parts])
    order = np.argsort(ids, kind="stable")
    place = np.empty_like(order)
    place[order] = np.arange(order.size)
    boxes = np.empty((ids.size, 6))
    triangles = np.empty(ids.size, dtype=np.int64)
    start = 0
    for part in parts:
        where = place[start : start + part.ids.size]
        boxes[where] = part.boxes
        triangles[where] = part.triangles
        start += part.ids.size
    return FeatureIndex(ids[order], boxes, triangles)


def _with_elements(
    index: FeatureIndex, element_rows: IntArray, city: TileNode, max_triangles: int
) -> TileNode:
    """A content-less ADD root over the IFC elements' quadtree ("re...") and the city tree
    ("rc..."); its error is the layer's extent (drawing nothing leaves out everything)."""
    part = FeatureIndex(
        index.ids[element_rows], index.boxes[element_rows], index.triangles[element_rows]
    )
    elements = subdivide(part, max_triangles=max_triangles)
    for node in elements.walk():
        node.key = "re" + node.key[1:]
        node.rows = element_rows[node.rows]
    for node in city.walk():
        node.key = "rc" + node.key[1:]
    box = np.concatenate(
        [np.minimum(elements.box[:3], city.box[:3]), np.maximum(elements.box[3:], city.box[3:])]
    )
    extent = float(np.linalg.norm(box[3:] - box[:3]))
    error = max(extent, elements.geometric_error, city.geometric_error)
    return TileNode("r", np.zeros(0, np.int64), box, error, [elements, city], refine="ADD")


class CityCut:
    """The quadtree of the city-model buildings (positions into :class:`Buildings`).

    While cutting, a coarse tile's rows are the positions of the buildings it draws (``kinds``
    says as whole blocks or as roofs); :meth:`point_rows` turns them into index rows once the
    blocks drawn are in the index."""

    def __init__(self, buildings: Buildings, max_triangles: int) -> None:
        self.buildings = buildings
        self.budget = max_triangles
        self.leaf_budget = max(max_triangles // LEAF_SHARE, 1)
        boxes = buildings.boxes
        self.centres = (boxes[:, :3] + boxes[:, 3:]) / 2
        self.radius = np.linalg.norm(boxes[:, 3:] - boxes[:, :3], axis=1) / 2
        self.height = boxes[:, 5] - boxes[:, 2]
        self.kinds: dict[str, int] = {}  # coarse tile key -> BLOCK_ID_BASE or ROOF_ID_BASE
        self.coarse: list[TileNode] = []

    def root(self, key: str) -> TileNode:
        node = self._cut(key, np.arange(len(self.buildings), dtype=np.int64), 0)
        node.refine = "REPLACE"
        return node

    def _cut(self, key: str, members: IntArray, depth: int) -> TileNode:
        box = _union(self.buildings.boxes[members])
        centres = self.centres[members, :2]
        lo, hi = centres.min(axis=0), centres.max(axis=0)
        detail = int(self.buildings.detail[members].sum())
        if detail <= PRISM_LEAF_SHARE * self.budget and self.buildings.exact[members].all():
            node = TileNode(key, np.sort(members), box)  # a leaf of blocks: the detail itself
            self.kinds[key] = BLOCK_ID_BASE
            self.coarse.append(node)
            return node
        if detail <= self.leaf_budget or depth >= MAX_DEPTH or float((hi - lo).max()) < 0.5:
            return TileNode(key, self.buildings.rows(members), box)
        middle = (lo + hi) / 2
        quadrant = (centres[:, 0] >= middle[0]).astype(np.int64) + 2 * (
            centres[:, 1] >= middle[1]
        ).astype(np.int64)
        children = [
            self._cut(key + str(q), members[quadrant == q], depth + 1)
            for q in range(4)
            if (quadrant == q).any()
        ]
        leaves = self._leaf_members(children, members, quadrant)
        if leaves:  # just above leaves: whole blocks, every building of the leaves among them
            must = np.concatenate([part for _, part in leaves])
            kept = self._select(members, must, box, self.buildings.block_triangles)
            own = self._error(members, kept, roofs=False)
            self.kinds[key] = BLOCK_ID_BASE
        else:  # higher up: roofs alone, five times as many buildings for the same triangles
            kept = self._select(members, members[:0], box, self.buildings.roof_triangles)
            own = self._error(members, kept, roofs=True)
            self.kinds[key] = ROOF_ID_BASE
        error = max(own, MIN_ERROR, max(child.geometric_error for child in children))
        node = TileNode(key, kept, box, error, children)
        self.coarse.append(node)
        return node

    def drawn_blocks(self) -> tuple[FeatureIndex, FeatureIndex]:
        """The blocks and the roofs the coarse tiles draw, as index features."""
        return self._features(BLOCK_ID_BASE), self._features(ROOF_ID_BASE)

    def _features(self, base: int) -> FeatureIndex:
        drawn = np.zeros(len(self.buildings), dtype=bool)  # a mask, not np.unique of ~2M rows
        for node in self.coarse:
            if self.kinds[node.key] == base:
                drawn[node.rows] = True
        used = np.flatnonzero(drawn).astype(np.int64)
        boxes = self.buildings.boxes[used].copy()
        if base == ROOF_ID_BASE:
            boxes[:, 2] = boxes[:, 5]  # a roof lies at its building's top
            triangles = self.buildings.roof_triangles[used]
        else:
            triangles = self.buildings.block_triangles[used]
        return FeatureIndex(-(base + self.buildings.names[used]), boxes, triangles)

    def point_rows(self, root: TileNode, merged: FeatureIndex, moved: IntArray) -> None:
        """Make the rows of the tree under ``root`` rows of ``merged``: leaves' from the old
        index's (``moved``), coarse tiles' from the ids of the blocks they draw."""
        for node in root.walk():
            kind = self.kinds.get(node.key)
            if kind is None:
                node.rows = moved[node.rows]
            else:
                ids = -(kind + self.buildings.names[node.rows])
                node.rows = np.sort(np.searchsorted(merged.ids, ids))

    def _leaf_members(
        self, children: list[TileNode], members: IntArray, quadrant: IntArray
    ) -> list[tuple[TileNode, IntArray]]:
        """The leaf children of surfaces with their buildings (whose blocks this tile must
        draw; a leaf of blocks draws them already)."""
        present = [q for q in range(4) if (quadrant == q).any()]
        return [
            (child, members[quadrant == q])
            for child, q in zip(children, present, strict=True)
            if not child.children and child.key not in self.kinds
        ]

    def _select(
        self, members: IntArray, must: IntArray, box: FloatArray, triangles: IntArray
    ) -> IntArray:
        """``must`` and, within the rest of the budget (``triangles`` a building), the largest
        building of each grid cell, then the second largest, ... (positions, sorted)."""
        rest = np.setdiff1d(members, must, assume_unique=True)  # ascends, as members do
        room = self.budget - int(triangles[must].sum())
        if rest.size == 0 or room <= 0:
            return np.sort(must)
        weights = triangles[rest]
        if int(weights.sum()) <= room:
            return np.sort(np.concatenate([must, rest]))
        side = max(int(np.sqrt(room / max(float(weights.mean()), 1.0))), 1)
        width = max(float(box[3] - box[0]), float(box[4] - box[1]), 1e-9)
        cell_xy = np.minimum(((self.centres[rest, :2] - box[:2]) / width * side), side - 1)
        cell = cell_xy[:, 0].astype(np.int64) + side * cell_xy[:, 1].astype(np.int64)
        size = self.radius[rest]
        # Stable sorts on top of one by size: the orders of ``np.lexsort((rest, -size, cell))``
        # and ``((rest, -size, rank))`` (``rest`` ascends) at half the sorting
        by_size = np.argsort(-size, kind="stable")
        by_cell = by_size[np.argsort(cell[by_size], kind="stable")]  # cells in turn, largest first
        sorted_cell = cell[by_cell]
        first = np.r_[True, sorted_cell[1:] != sorted_cell[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(by_cell.size), 0))
        rank = np.empty(rest.size, dtype=np.int64)
        rank[by_cell] = np.arange(by_cell.size) - start
        order = by_size[np.argsort(rank[by_size], kind="stable")]  # each cell's largest, then ...
        fits = np.cumsum(weights[order]) <= room
        count = int(np.argmin(fits)) if not fits.all() else order.size
        return np.sort(np.concatenate([must, rest[order[:count]]]))

    def _error(self, members: IntArray, kept: IntArray, *, roofs: bool) -> float:
        """The largest distance from the detail of ``members`` to the blocks of ``kept`` (or
        their roofs alone: a wall's foot lies its building's height below the roof)."""
        if not kept.size:
            return 0.0
        deviation = self.height[kept] if roofs else self.buildings.relief[kept]
        error = float(deviation.max())
        left = np.setdiff1d(members, kept, assume_unique=True)
        if left.size:
            tree = cKDTree(self.centres[kept])
            distance, nearest = tree.query(self.centres[left], workers=-1)  # the server is idle
            reach = self.height[kept][nearest] / 2 if roofs else 0.0  # centre -> roof
            error = max(error, float((distance + self.radius[left] + reach).max()))
        return error


def _union(boxes: FloatArray) -> FloatArray:
    return np.concatenate([boxes[:, :3].min(axis=0), boxes[:, 3:].max(axis=0)])


def stale_ancestors(root: TileNode, changed: set[str]) -> set[str]:
    """Keys of the content tiles drawn from their descendants (those of a REPLACE subtree: the
    blocks of the buildings under them) that have a tile of ``changed`` below them: a refresh
    must write them again too, even when their own features look untouched.

    Examples
    --------
    >>> leaf = TileNode("r00", np.array([1]), np.zeros(6))
    >>> inner = TileNode("r0", np.array([0]), np.zeros(6), 1.0, [leaf])
    >>> city = TileNode("r", np.array([2]), np.zeros(6), 9.0, [inner], refine="REPLACE")
    >>> sorted(stale_ancestors(city, {"r00"}))
    ['r', 'r0']
    >>> city.refine = "ADD"
    >>> stale_ancestors(city, {"r00"})
    set()
    """
    stale: set[str] = set()

    def visit(node: TileNode, derived: bool) -> bool:
        derived = node.refine == "REPLACE" if node.refine is not None else derived
        below = False
        for child in node.children:
            below = visit(child, derived) or below
        if below and derived and node.rows.size:
            stale.add(node.key)
        return below or node.key in changed

    visit(root, False)
    return stale
