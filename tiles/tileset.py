"""``tileset.json`` of a built layer: the quadtree as tiles with regions, transforms and content
URIs tagged by a hash of every tile's bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from cim.crs import transformer
from tiles.content import TileFrame
from tiles.model import Tile, Tileset
from tiles.subdivide import FeatureIndex, TileNode

REGION_MARGIN_RAD = 2e-9  # ~1 cm: regions are padded so that float rounding never clips a vertex
HEIGHT_MARGIN_M = 0.01


def content_tag(digests: dict[str, str]) -> str:
    """A tag of the whole build from each tile's sha256.

    Content URLs carry it so servers can mark them immutable and caches never mix tiles of two
    builds (file names are tile keys and repeat from build to build). It hashes the content,
    so equal builds (local or on dask) are equal bytes.
    """
    signature = "".join(f"{key}:{digests[key]}\n" for key in sorted(digests))
    return hashlib.sha256(signature.encode()).hexdigest()[:12]


def tileset_json(
    root: TileNode,
    index: FeatureIndex,
    frames: dict[str, TileFrame],
    *,
    spec: str,
    srid: int,
    extension: str,
    tag: str,
    regions: dict[bytes, list[float]] | None = None,
    transforms: dict[bytes, list[float]] | None = None,
) -> Tileset:
    """The tileset of the tree under ``root``; ``frames`` are those of the content tiles.

    ``regions`` memoises each box's region (by the box's bytes): an incremental refresh passes
    those of the previous build, which spares recomputing thousands of unchanged regions, and
    gets the new ones back in it for its manifest. ``transforms`` memoises each content tile's
    transform the same way, by the bytes of its parent's world matrix and then its own.
    """
    known = {} if regions is None else regions
    relatives = {} if transforms is None else transforms
    to_lonlat = transformer(srid, 4326)
    tileset: Tileset = {
        "asset": {"version": spec, "generator": "cim tiles build"},
        "geometricError": float(max(index.size.max(), root.geometric_error)),
        "root": _tile_json(
            root,
            np.identity(4),
            frames,
            _Regions(to_lonlat, known),
            f"{extension}?v={tag}",
            relatives,
        ),
    }
    tileset["root"].setdefault("refine", "ADD")
    if root.refine is not None:  # a coarse hierarchy: not drawing it misses the whole layer
        tileset["geometricError"] = max(tileset["geometricError"], _extent(root.box))
    return tileset


def _extent(box: npt.NDArray[np.float64]) -> float:
    return float(np.linalg.norm(box[3:] - box[:3]))


class _Regions:
    """Region of a box in the storage CRS (radians, padded), memoised by the box's bytes."""

    def __init__(self, to_lonlat: Transformer, known: dict[bytes, list[float]]) -> None:
        self.to_lonlat = to_lonlat
        self.known = known

    def __call__(self, box: npt.NDArray[np.float64]) -> list[float]:
        key = box.tobytes()
        if key not in self.known:
            self.known[key] = _region(box, self.to_lonlat)
        return list(self.known[key])


def _region(box: npt.NDArray[np.float64], to_lonlat: Transformer) -> list[float]:
    west, south, east, north = to_lonlat.transform_bounds(
        float(box[0]), float(box[1]), float(box[3]), float(box[4]), densify_pts=21
    )
    return [
        float(np.radians(west)) - REGION_MARGIN_RAD,
        float(np.radians(south)) - REGION_MARGIN_RAD,
        float(np.radians(east)) + REGION_MARGIN_RAD,
        float(np.radians(north)) + REGION_MARGIN_RAD,
        float(box[2]) - HEIGHT_MARGIN_M,
        float(box[5]) + HEIGHT_MARGIN_M,
    ]


def _tile_json(
    node: TileNode,
    parent_world: npt.NDArray[np.float64],
    frames: dict[str, TileFrame],
    regions: _Regions,
    extension: str,
    transforms: dict[bytes, list[float]],
) -> Tile:
    """The tile of ``node``; transforms are relative to the parent's (3D Tiles composes them)."""
    frame = frames.get(node.key)
    world = parent_world if frame is None else frame.matrix
    children = [_tile_json(c, world, frames, regions, extension, transforms) for c in node.children]
    region = regions(node.box)
    for child in children:  # a parent region always covers its children's, rounding included
        child_region = child["boundingVolume"]["region"]
        region[0] = min(region[0], child_region[0])  # plain floats: as np.minimum, faster
        region[1] = min(region[1], child_region[1])
        region[2] = max(region[2], child_region[2])
        region[3] = max(region[3], child_region[3])
        region[4] = min(region[4], child_region[4])
        region[5] = max(region[5], child_region[5])
    tile: Tile = {"boundingVolume": {"region": region}, "geometricError": node.geometric_error}
    if node.refine is not None:
        tile["refine"] = "REPLACE" if node.refine == "REPLACE" else "ADD"
    if frame is not None:
        pair = parent_world.tobytes() + frame.matrix.tobytes()
        if pair not in transforms:
            relative = np.linalg.solve(parent_world, frame.matrix)
            transforms[pair] = [float(v) for v in relative.T.reshape(-1)]  # column-major
        tile["transform"] = transforms[pair]
        tile["content"] = {"uri": f"content/{node.key}.{extension}"}
    if children:
        tile["children"] = children
    return tile
