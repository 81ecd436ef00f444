"""Rendering content tiles: what a renderer is given and returns, and the steps every renderer
shares (the tile's frame, meshing in a fixed order, batches of tiles per content query)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from tiles.content import MeshParts, TileFrame
from tiles.gltf import FeatureTable
from tiles.layers import LayerSource
from tiles.subdivide import FeatureIndex, TileNode

BATCH_TRIANGLES = 40_000  # per content query: a few tiles, memory stays a few MB

Progress = Callable[[int, int], None]
"""Called with (features done, features total) as tiles are written."""

T = TypeVar("T")


@dataclass
class TileOutput:
    """What writing one tile's content produced (the build sums these; sha256 makes the tag)."""

    key: str
    features: int
    triangles: int
    bytes: int
    sha256: str


@dataclass
class RenderJob:
    """The content tiles of one build, for a renderer other than the local loop."""

    layer: str
    index: FeatureIndex
    nodes: list[TileNode]
    folder: Path
    spec: str
    srid: int
    extension: str
    engine: Engine
    compress: bool = False
    """Content meshopt-encoded with quantized normals (:mod:`tiles.compression`)."""


Renderer = Callable[[RenderJob, Progress | None], list[TileOutput]]
"""Writes every ``nodes`` tile as ``folder/content/<key>.<extension>`` (e.g. on dask workers,
:mod:`tiles.distributed`); must produce the bytes the local loop of :mod:`tiles.build` does."""


def frame_of(node: TileNode, srid: int) -> TileFrame:
    """The ENU frame a tile's content is meshed in: at the centre of its box."""
    centre = (node.box[:3] + node.box[3:]) / 2
    return TileFrame.at(srid, *map(float, centre))


def mesh_node(
    source: LayerSource,
    rows: dict[int, tuple[Any, ...]],
    ids: npt.NDArray[np.int64],
    frame: TileFrame,
    *,
    leaf: bool,
) -> tuple[MeshParts, FeatureTable]:
    """Mesh one tile from its fetched rows, features in a fixed order (so bytes are stable):
    elements by id, then surfaces and blocks by absolute id."""
    keys = ids[np.lexsort((np.abs(ids), ids < 0))].tolist()
    keyed = [(k, row) for k in keys if (row := rows.get(k)) is not None]  # gone: left out
    return source.mesh_tile(keyed, frame, leaf=leaf)


def batches(items: Sequence[T], weights: Sequence[int], max_weight: int) -> list[list[T]]:
    """Consecutive ``items`` grouped so that each group weighs about ``max_weight``.

    Examples
    --------
    >>> batches("abcd", [3, 3, 5, 1], 6)
    [['a', 'b'], ['c', 'd']]
    """
    groups: list[list[T]] = []
    current: list[T] = []
    weight = 0
    for item, item_weight in zip(items, weights, strict=True):
        if current and weight + item_weight > max_weight:
            groups.append(current)
            current, weight = [], 0
        current.append(item)
        weight += item_weight
    if current:
        groups.append(current)
    return groups
