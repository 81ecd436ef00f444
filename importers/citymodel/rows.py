"""Buildings in the storage CRS and the facts of their rows: footprint, base/top, height…

Footprint choice (documented in the README): the union, projected to 2D, of the GroundSurface
faces of the building's lowest LoD; when that LoD has no ground faces, the union of all its faces
projected to 2D (walls project to nothing, roofs cover the ground plan). Triangles of one face
share their vertices exactly, so a plain GEOS union closes them (snapping to a grid was slower
and left slivers and false holes on the Zürich sample). A parent Building without geometry
of its own takes the union of its parts' footprints, their lowest base and highest top.
``height`` is the ``measuredHeight`` attribute when given, else top - base.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS

from importers.citymodel.buildings import CityBuilding, SurfaceKey
from importers.citymodel.placement import triangles_to_storage
from importers.citymodel.triangulate import Triangles

MIN_FOOTPRINT_TRIANGLE_M2 = 1e-6


@dataclass
class PlacedBuilding:
    """A building with its triangles in the storage CRS and the facts derived from them."""

    source: CityBuilding
    surfaces: dict[SurfaceKey, Triangles]
    footprint: shapely.Geometry | None = None
    base_z: float | None = None
    top_z: float | None = None
    lods: set[str] = field(default_factory=set)


def place_buildings(buildings: list[CityBuilding], crs: CRS, srid: int) -> list[PlacedBuilding]:
    """Move every triangle of ``buildings`` to the storage CRS (one pyproj call) and sum up."""
    keys = [(i, key) for i, b in enumerate(buildings) for key in b.surfaces]
    blocks = [np.concatenate(buildings[i].surfaces[key]) for i, key in keys]
    sizes = [len(block) for block in blocks]
    placed = [PlacedBuilding(source=b, surfaces={}) for b in buildings]
    if blocks:
        moved = triangles_to_storage(crs, srid, np.concatenate(blocks))
        for (i, key), part in zip(keys, np.split(moved, np.cumsum(sizes)[:-1]), strict=True):
            placed[i].surfaces[key] = part
        _summarise(placed, moved, keys, sizes)
    _parents_from_parts(placed)
    return placed


def _summarise(
    placed: list[PlacedBuilding],
    moved: Triangles,
    keys: list[tuple[int, SurfaceKey]],
    sizes: list[int],
) -> None:
    """LoDs, base, top and footprint of every building with surfaces, a batch at a time:
    ``moved`` holds the triangles of ``keys`` (building, surface) back to back."""
    owners = np.array([i for i, _ in keys], dtype=np.int64)
    counts = np.bincount(owners, weights=np.asarray(sizes), minlength=len(placed)).astype(int)
    have = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[have] * 9
    z = np.ascontiguousarray(moved[:, :, 2]).reshape(-1)
    low, high = np.minimum.reduceat(z, starts // 3), np.maximum.reduceat(z, starts // 3)
    grounds: list[Triangles] = []
    for number, i in enumerate(have.tolist()):
        building = placed[i]
        building.lods = {lod for lod, _ in building.surfaces}
        building.base_z, building.top_z = float(low[number]), float(high[number])
        lowest = min(building.lods, key=_lod_order)
        ground = [
            t
            for (lod, sem), t in building.surfaces.items()
            if lod == lowest and sem and "Ground" in sem
        ]
        if not ground:
            ground = [t for (lod, _), t in building.surfaces.items() if lod == lowest]
        grounds.append(np.concatenate(ground))
    for i, footprint in zip(have.tolist(), _unions_2d(grounds), strict=True):
        placed[i].footprint = footprint


def _unions_2d(groups: list[Triangles]) -> list[shapely.Geometry | None]:
    """Per group of triangles, the union of their 2D projections (those with an area) as a
    MultiPolygon, None when nothing is left: groups of the same size are unioned in one
    ``union_all`` along an axis, which unions each row as the one-dimensional call does."""
    if not groups:
        return []
    polygons = shapely.polygons(np.ascontiguousarray(np.concatenate(groups)[:, :, :2]))
    polygons[shapely.area(polygons) <= MIN_FOOTPRINT_TRIANGLE_M2] = None
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    unions = np.full(len(groups), None, dtype=object)
    for size in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == size)
        table = polygons[starts[rows][:, None] + np.arange(size)]
        unions[rows] = shapely.union_all(table, axis=1)
    return list(_multipolygons(unions))


def _multipolygons(geometries: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """:func:`_multipolygon` of each geometry (None stays None), in a few vectorised calls."""
    parts, index = shapely.get_parts(geometries, return_index=True)
    polygon = shapely.get_type_id(parts) == 3
    found: npt.NDArray[np.object_] = np.full(len(geometries), None, dtype=object)
    if polygon.any():
        shapely.multipolygons(parts[polygon], indices=index[polygon], out=found)
    return found


def _lod_order(lod: str) -> float:
    try:
        return float(lod)
    except ValueError:
        return float("inf")


def _multipolygon(geometry: shapely.Geometry) -> shapely.Geometry | None:
    parts = shapely.get_parts(geometry)
    parts = parts[shapely.get_type_id(parts) == 3]  # Polygon
    return shapely.multipolygons(parts) if len(parts) else None


def _parents_from_parts(placed: list[PlacedBuilding]) -> None:
    """A parent without geometry takes its parts' footprint union, base, top and LoDs."""
    parts: dict[str, list[PlacedBuilding]] = {}
    for building in placed:
        if building.source.parent is not None:
            parts.setdefault(building.source.parent, []).append(building)
    for building in placed:
        children = [c for c in parts.get(building.source.source_id, []) if c.top_z is not None]
        if building.surfaces or not children:
            continue
        building.base_z = min(c.base_z for c in children if c.base_z is not None)
        building.top_z = max(c.top_z for c in children if c.top_z is not None)
        building.lods = set().union(*(c.lods for c in children))
        footprints = [c.footprint for c in children if c.footprint is not None]
        if footprints:
            union = shapely.union_all(footprints)
            building.footprint = _multipolygon(union)


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def building_facts(building: PlacedBuilding) -> dict[str, Any]:
    """Height, storeys, function and year of a building, from its attributes and geometry."""
    return attribute_facts(building.source.attributes, building.base_z, building.top_z)


def attribute_facts(
    attributes: dict[str, Any], base_z: float | None, top_z: float | None
) -> dict[str, Any]:
    """:func:`building_facts` of a building with these attributes, base and top."""
    height = _number(attributes.get("measuredHeight"), float)
    if height is None and top_z is not None and base_z is not None:
        height = top_z - base_z
    function = attributes.get("function")
    if isinstance(function, list):
        function = ",".join(str(f) for f in function)
    return {
        "height": height,
        "storeys": _number(attributes.get("storeysAboveGround"), int),
        "function": None if function is None else str(function),
        "year": _number(attributes.get("yearOfConstruction"), int),
    }
