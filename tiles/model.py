"""tileset.json as typed dictionaries (3D Tiles 1.1 / 1.0); no tiler logic lives here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NotRequired, TypedDict

import orjson

Refine = Literal["ADD", "REPLACE"]


class Asset(TypedDict):
    version: str
    generator: NotRequired[str]
    tilesetVersion: NotRequired[str]


class BoundingVolume(TypedDict, total=False):
    region: list[float]
    box: list[float]
    sphere: list[float]


class Content(TypedDict):
    uri: str


class Tile(TypedDict):
    boundingVolume: BoundingVolume
    geometricError: float
    refine: NotRequired[Refine]
    transform: NotRequired[list[float]]
    content: NotRequired[Content]
    children: NotRequired[list[Tile]]


class Tileset(TypedDict):
    asset: Asset
    geometricError: float
    root: Tile
    extras: NotRequired[dict[str, object]]


def to_dict(tileset: Tileset) -> dict[str, object]:
    """Plain JSON-ready dict (TypedDicts are dicts; this documents the boundary)."""
    return dict(tileset)


def write_tileset(tileset: Tileset, path: Path) -> None:
    """Write ``tileset.json`` compactly (it is fetched by every viewer on load).

    orjson, not :mod:`json`: a city layer's tileset (thousands of tiles, 16 numbers of
    transform and 12 of box each) encodes ~15x faster, which an incremental refresh, that
    rewrites the whole file for a few changed tiles, feels most."""
    path.write_bytes(orjson.dumps(to_dict(tileset), option=orjson.OPT_SERIALIZE_NUMPY))


def walk(tile: Tile, depth: int = 0) -> list[tuple[int, Tile]]:
    """Every tile under ``tile`` (inclusive) with its depth, parents first."""
    out = [(depth, tile)]
    for child in tile.get("children", []):
        out.extend(walk(child, depth + 1))
    return out
