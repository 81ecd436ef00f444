"""The manifest of a built mesh layer: which tile every feature went to, so a new dataset version
can rewrite only the tiles it touches (:mod:`tiles.incremental`).

It is one ``manifest.npz`` in the layer folder, written into the staged folder with the tiles,
so it is swapped in atomically with them and always describes the files beside it. It holds:

* the feature index the tree was cut from (ids, 3D boxes, triangle estimates, sorted by id), so
  a refresh re-reads only the features a version changed and cuts the same tree a full rebuild
  would;
* every tile's box and geometric error, so a refresh takes the subtrees whose features are
  all unchanged as they are instead of cutting them again (:mod:`tiles.reuse`);
* per content tile: its key, its feature ids, box, geometric error, whether it is a leaf, its
  ENU frame, region and ``tileset.json`` transform (so unchanged tiles cost no projection or
  matrix work), and what its file held (sha256, features, triangles, bytes);
* the build's settings (spec, options, triangle budget) and its *stamp*: the database time and
  the version number of every dataset read, taken before the index was read, so a version that
  commits during the build is seen again by the next refresh rather than missed.

About 64 bytes a feature (64 MB for a million pipes), read and written in well under a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tiles.content import TileFrame
from tiles.render import TileOutput
from tiles.subdivide import FeatureIndex, TileNode

MANIFEST_NAME = "manifest.npz"
FORMAT = 5
IDENTITY = np.identity(4)


@dataclass(frozen=True)
class Stamp:
    """Which version of each dataset a build read (no clock time: two builds of one state
    write the same bytes)."""

    versions: dict[str, int]


@dataclass
class TileRecord:
    """One content tile as the manifest keeps it."""

    key: str
    ids: npt.NDArray[np.int64]  # sorted feature ids
    box: npt.NDArray[np.float64]
    geometric_error: float
    leaf: bool
    output: TileOutput
    matrix: npt.NDArray[np.float64]  # the tile's ENU frame (4x4, frame metres -> ECEF)
    region: npt.NDArray[np.float64]  # the region of ``box`` before it is widened to children
    transform: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(16))
    """Its ``tileset.json`` transform (column-major, relative to its content ancestor's frame)."""

    def same_place(self, node: TileNode, ids: npt.NDArray[np.int64]) -> bool:
        """Would ``node`` (holding the sorted ``ids``) be written to exactly this file's bytes,
        its features unchanged? Same key, same features, same box (so the same ENU frame)
        and the same leaf flag (coarse tiles draw fewer tube sides)."""
        return (
            node.key == self.key
            and self.leaf == (not node.children)
            and np.array_equal(self.ids, ids)
            and np.array_equal(self.box, node.box)
        )


@dataclass
class Manifest:
    """Everything a refresh needs to know about the layer on disk."""

    layer: str
    spec: str
    settings: dict[str, str]
    max_triangles: int
    stamp: Stamp
    index: FeatureIndex
    tiles: dict[str, TileRecord] = field(default_factory=dict)
    tree: dict[str, tuple[npt.NDArray[np.float64], float]] = field(default_factory=dict)
    """Every tile of the tree (content or not): its box and geometric error, by key."""


def sorted_index(index: FeatureIndex) -> FeatureIndex:
    """``index`` ordered by feature id: the one order both full and incremental builds cut the
    tree from (subdivide breaks ties between equal-sized features by position)."""
    if (index.ids[1:] > index.ids[:-1]).all():
        return index  # already (the buildings layer reads it sorted): no copy of the boxes
    order = np.argsort(index.ids, kind="stable")
    return FeatureIndex(
        index.ids[order], index.boxes[order], index.triangles[order], city=index.city
    )


def tile_records(
    root: TileNode,
    index: FeatureIndex,
    outputs: dict[str, TileOutput],
    frames: dict[str, TileFrame],
    regions: dict[bytes, list[float]],
    transforms: dict[bytes, list[float]],
    known_ids: dict[str, npt.NDArray[np.int64]] | None = None,
) -> dict[str, TileRecord]:
    """The records of the content tiles under ``root``: what writing each produced, its frame,
    region and transform (``regions`` by box bytes, ``transforms`` by parent and own matrix
    bytes, as :func:`tiles.tileset.tileset_json` fills them). ``known_ids``: the sorted
    feature ids of tiles known to hold the same features as before (not sorted again)."""
    known = {} if known_ids is None else known_ids
    records: dict[str, TileRecord] = {}
    for node, parent in _content_tiles(root, frames, IDENTITY):
        matrix = frames[node.key].matrix
        ids = known.get(node.key)
        records[node.key] = TileRecord(
            node.key,
            np.sort(index.ids[node.rows]) if ids is None else ids,
            node.box.copy(),
            float(node.geometric_error),
            not node.children,
            outputs[node.key],
            matrix,
            np.array(regions[node.box.tobytes()], dtype=np.float64),
            np.array(transforms[parent.tobytes() + matrix.tobytes()], dtype=np.float64),
        )
    return records


def _content_tiles(
    node: TileNode, frames: dict[str, TileFrame], parent: npt.NDArray[np.float64]
) -> list[tuple[TileNode, npt.NDArray[np.float64]]]:
    """The content tiles under ``node`` (parents first, as :meth:`TileNode.walk`), each with
    the world matrix its transform is relative to (its nearest content ancestor's frame)."""
    frame = frames.get(node.key) if node.rows.size else None
    out = [] if frame is None else [(node, parent)]
    world = parent if frame is None else frame.matrix
    for child in node.children:
        out.extend(_content_tiles(child, frames, world))
    return out


def known_transforms(tiles: dict[str, TileRecord]) -> dict[bytes, list[float]]:
    """The transforms of a previous build as :func:`tiles.tileset.tileset_json` memoises them
    (by the bytes of the parent's world matrix, then the tile's own)."""
    known: dict[bytes, list[float]] = {}
    for key, record in tiles.items():
        parent = IDENTITY
        for end in range(len(key) - 1, 0, -1):  # nearest content ancestor: its frame
            ancestor = tiles.get(key[:end])
            if ancestor is not None:
                parent = ancestor.matrix
                break
        known[parent.tobytes() + record.matrix.tobytes()] = record.transform.tolist()
    return known


def tree_of(root: TileNode) -> dict[str, tuple[npt.NDArray[np.float64], float]]:
    """Box and geometric error of every tile under ``root``, by key."""
    return {node.key: (node.box.copy(), float(node.geometric_error)) for node in root.walk()}


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``manifest.npz`` into the (staged) layer ``folder``."""
    records = list(manifest.tiles.values())
    tree = list(manifest.tree.items())
    counts = np.array([r.ids.size for r in records], dtype=np.int64)
    meta = {
        "format": FORMAT,
        "layer": manifest.layer,
        "spec": manifest.spec,
        "settings": manifest.settings,
        "max_triangles": manifest.max_triangles,
        "versions": manifest.stamp.versions,
        "keys": [r.key for r in records],
        "sha256": [r.output.sha256 for r in records],
        "tree": [key for key, _ in tree],
    }
    with open(folder / MANIFEST_NAME, "wb") as handle:
        np.savez(
            handle,
            meta=np.array(json.dumps(meta)),
            ids=manifest.index.ids,
            boxes=manifest.index.boxes,
            triangles=manifest.index.triangles,
            tile_counts=counts,
            tile_ids=np.concatenate([r.ids for r in records]) if records else np.zeros(0, np.int64),
            tile_boxes=np.array([r.box for r in records]).reshape(-1, 6),
            tile_errors=np.array([r.geometric_error for r in records], dtype=np.float64),
            tile_leaf=np.array([r.leaf for r in records], dtype=bool),
            tile_matrices=np.array([r.matrix for r in records]).reshape(-1, 4, 4),
            tile_transforms=np.array([r.transform for r in records]).reshape(-1, 16),
            tile_regions=np.array([r.region for r in records]).reshape(-1, 6),
            tree_boxes=np.array([box for _, (box, _) in tree]).reshape(-1, 6),
            tree_errors=np.array([error for _, (_, error) in tree], dtype=np.float64),
            tile_stats=np.array(
                [[r.output.features, r.output.triangles, r.output.bytes] for r in records],
                dtype=np.int64,
            ).reshape(-1, 3),
        )


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of the layer in ``folder``; None if there is none or it cannot be read
    (a layer built before manifests existed, another format): the caller rebuilds in full."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta: dict[str, Any] = json.loads(str(arrays["meta"]))
        if meta.get("format") != FORMAT:
            return None
        return _from_arrays(meta, arrays)
    except (OSError, ValueError, KeyError):  # a damaged file: never trust half of it
        return None


@dataclass(frozen=True)
class ManifestHead:
    """What a manifest says about the build, without its arrays (a refresh decides from it
    whether it can start, and which datasets changed, while the arrays are still read)."""

    spec: str
    settings: dict[str, str]
    max_triangles: int
    stamp: Stamp


def read_manifest_head(folder: Path) -> ManifestHead | None:
    """The head of the manifest in ``folder`` (None as :func:`read_manifest`); reads only
    its small ``meta`` member."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta: dict[str, Any] = json.loads(str(data["meta"]))
        return _head(meta) if meta.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError):
        return None


def _head(meta: dict[str, Any]) -> ManifestHead:
    return ManifestHead(
        spec=meta["spec"],
        settings={str(k): str(v) for k, v in meta["settings"].items()},
        max_triangles=int(meta["max_triangles"]),
        stamp=Stamp({str(k): int(v) for k, v in meta["versions"].items()}),
    )


def _output(key: str, stats: list[int], sha256: str) -> TileOutput:
    features, triangles, size = stats
    return TileOutput(key, features, triangles, size, sha256)


def _from_arrays(meta: dict[str, Any], arrays: dict[str, Any]) -> Manifest:
    """The manifest of the arrays read (per-tile values taken out in bulk, not one by one)."""
    index = FeatureIndex(arrays["ids"], arrays["boxes"], arrays["triangles"])
    ids = np.split(arrays["tile_ids"], np.cumsum(arrays["tile_counts"])[:-1])
    columns = zip(
        meta["keys"],
        ids if len(meta["keys"]) else [],
        list(arrays["tile_boxes"]),
        arrays["tile_errors"].tolist(),
        arrays["tile_leaf"].tolist(),
        arrays["tile_stats"].tolist(),
        meta["sha256"],
        list(arrays["tile_matrices"]),
        list(arrays["tile_regions"]),
        list(arrays["tile_transforms"]),
        strict=True,
    )
    tiles = {
        key: TileRecord(
            key, held, box, error, leaf, _output(key, stats, sha256), matrix, region, relative
        )
        for key, held, box, error, leaf, stats, sha256, matrix, region, relative in columns
    }
    head = _head(meta)
    return Manifest(
        layer=meta["layer"],
        spec=head.spec,
        settings=head.settings,
        max_triangles=head.max_triangles,
        stamp=head.stamp,
        index=index,
        tiles=tiles,
        tree=dict(
            zip(
                meta["tree"],
                zip(list(arrays["tree_boxes"]), arrays["tree_errors"].tolist(), strict=True),
                strict=True,
            )
        ),
    )
