"""The 3D Tiles layers cim builds: which module meshes each one and where it is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from psycopg import Connection

from cim.errors import InvalidInput
from tiles import buildings, pipes
from tiles.coarse import hierarchy
from tiles.content import MeshParts, TileFrame
from tiles.gltf import FeatureTable
from tiles.subdivide import FeatureIndex, TileNode, subdivide

SPECS = ("1.1", "1.0")
DEFAULT_SENSITIVE = frozenset({"RQ", "DL"})
"""Gas and power, as ``CIM_SENSITIVE_UTILITIES`` defaults to."""


class LayerSource(Protocol):
    """What a 3D Tiles layer module provides (see :mod:`tiles.buildings`, :mod:`tiles.pipes`)."""

    DATASET_KINDS: tuple[str, ...]

    def load_index(
        self,
        connection: Connection[Any],
        *,
        sensitive: frozenset[str],
        restricted: bool,
        include_spaces: bool,
    ) -> FeatureIndex: ...

    def fetch_rows(
        self, connection: Connection[Any], ids: npt.NDArray[np.int64]
    ) -> dict[int, tuple[Any, ...]]: ...

    def mesh_tile(
        self, keyed_rows: list[tuple[int, tuple[Any, ...]]], frame: TileFrame, *, leaf: bool
    ) -> tuple[MeshParts, FeatureTable]: ...


@dataclass(frozen=True)
class MeshLayer:
    """A layer: its source module, its folder under the tiles dir, and whether it holds only
    the sensitive utility classes (``restricted/`` is served only to callers with a key)."""

    source: LayerSource
    folder: str
    restricted: bool = False

    def options(self, sensitive: frozenset[str], include_spaces: bool) -> dict[str, str]:
        """The build options that change this layer's output, recorded with its datasets."""
        options: dict[str, str] = {}
        if self.source is pipes:  # the split between the public and the restricted layer
            options["sensitive_utilities"] = ",".join(sorted(c.upper() for c in sensitive))
        if self.source is buildings and include_spaces:
            options["include_spaces"] = "yes"
        return options


MESH_LAYERS: dict[str, MeshLayer] = {
    "buildings": MeshLayer(buildings, "buildings"),
    "pipes": MeshLayer(pipes, "pipes"),
    "pipes_restricted": MeshLayer(pipes, "restricted/pipes", restricted=True),
}


def mesh_layer(layer: str, spec: str) -> MeshLayer:
    """The layer called ``layer``, after checking it and the 3D Tiles version ``spec`` exist."""
    if layer not in MESH_LAYERS:
        raise InvalidInput(f"unknown 3D Tiles layer {layer!r} ({', '.join(MESH_LAYERS)})")
    if spec not in SPECS:
        raise InvalidInput(f"unknown 3D Tiles version {spec!r} (1.1 or 1.0)")
    return MESH_LAYERS[layer]


def cut_tree(
    layer: MeshLayer, index: FeatureIndex, max_triangles: int
) -> tuple[FeatureIndex, TileNode]:
    """The tile tree of ``layer`` over ``index`` and the index its rows point into: the plain
    quadtree (:mod:`tiles.subdivide`), or for buildings with city-model surfaces the hierarchy
    of LOD1 blocks over detail leaves (:mod:`tiles.coarse`, which adds the blocks)."""
    if layer.source is buildings:
        return hierarchy(index, max_triangles=max_triangles)
    return index, subdivide(index, max_triangles=max_triangles)
