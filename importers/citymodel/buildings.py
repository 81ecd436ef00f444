"""City objects -> buildings with triangulated faces per (LoD, semantic class), in source CRS.

Only ``Building`` and ``BuildingPart`` objects are kept (others are counted and skipped). A part
is a building row of its own whose ``attrs.parent`` names its parent object, so a parent without
geometry of its own (common in 3D BAG and Zürich data: the geometry lives in the parts) still
gets a footprint and heights from its parts (see :mod:`importers.citymodel.rows`).

Geometries read: MultiSurface, CompositeSurface, Solid, MultiSolid, CompositeSolid and
GeometryInstance (a template's vertices through the 4x4 ``transformationMatrix``, then moved to
the reference point). The semantic class of each face comes from ``semantics.values``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cim.errors import InvalidInput
from importers.citymodel.cityjson import Chunk, Header
from importers.citymodel.faces import BadFace, triangulate_faces
from importers.citymodel.triangulate import Triangles

BUILDING_TYPES = ("Building", "BuildingPart")
SURFACE_DEPTH = {
    "MultiSurface": 0,
    "CompositeSurface": 0,
    "Solid": 1,
    "MultiSolid": 2,
    "CompositeSolid": 2,
}
"""How many levels of lists lie above the surfaces in ``boundaries`` of each geometry type."""
SurfaceKey = tuple[str, str | None]
"""(LoD, semantic class or None)."""


@dataclass
class CityBuilding:
    """One Building or BuildingPart with its triangles grouped by (LoD, semantic class)."""

    source_id: str
    kind: str
    parent: str | None
    attributes: dict[str, Any]
    surfaces: dict[SurfaceKey, list[Triangles]] = field(default_factory=dict)


@dataclass
class Tally:
    """What the import counts for its result and QC report."""

    buildings: int = 0
    building_parts: int = 0
    faces: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped_objects: Counter[str] = field(default_factory=Counter)
    skipped_geometries: Counter[str] = field(default_factory=Counter)


def lod_label(lod: Any) -> str:
    """A LoD as text: ``2`` and ``2.0`` -> ``"2"``, ``2.2`` -> ``"2.2"`` (1.0 files use numbers)."""
    if isinstance(lod, float) and lod.is_integer():
        return str(int(lod))
    return str(lod)


def chunk_buildings(header: Header, chunk: Chunk, tally: Tally) -> list[CityBuilding]:
    """The buildings and parts of ``chunk``, each face triangulated (rejected faces counted)."""
    return chunks_buildings(header, [chunk], tally)


def chunks_buildings(header: Header, chunks: list[Chunk], tally: Tally) -> list[CityBuilding]:
    """:func:`chunk_buildings` of several chunks, their faces triangulated together
    (:func:`importers.citymodel.faces.triangulate_faces`)."""
    found = []
    faces = _Faces([chunk.vertices for chunk in chunks])
    for number, chunk in enumerate(chunks):
        for source_id, city_object in chunk.objects.items():
            kind = city_object.get("type")
            if kind not in BUILDING_TYPES:
                tally.skipped_objects[str(kind)] += 1
                continue
            if kind == "Building":
                tally.buildings += 1
            else:
                tally.building_parts += 1
            parents = city_object.get("parents") or []
            building = CityBuilding(
                source_id=str(source_id),
                kind=str(kind),
                parent=str(parents[0]) if parents else None,
                attributes=dict(city_object.get("attributes") or {}),
            )
            for geometry in city_object.get("geometry") or []:
                faces.add_geometry(building, geometry, header, number, tally)
            found.append(building)
    faces.triangulate(tally)
    return found


class _Faces:
    """The faces of a batch of objects, and where each one's triangles go."""

    def __init__(self, vertex_sets: list[npt.NDArray[np.float64]]) -> None:
        self.vertex_sets = vertex_sets
        self.faces: list[tuple[int, Any]] = []
        self.targets: list[tuple[CityBuilding, SurfaceKey]] = []

    def add_geometry(
        self,
        building: CityBuilding,
        geometry: dict[str, Any],
        header: Header,
        vertex_set: int,
        tally: Tally,
    ) -> None:
        if geometry.get("type") == "GeometryInstance":
            vertices = self.vertex_sets[vertex_set]
            geometry, placed = _instance(geometry, header, vertices, building.source_id)
            self.vertex_sets.append(placed)
            vertex_set = len(self.vertex_sets) - 1
        kind = str(geometry.get("type"))
        depth = SURFACE_DEPTH.get(kind)
        if depth is None:
            tally.skipped_geometries[kind] += 1
            return
        lod = lod_label(geometry.get("lod"))
        semantics = geometry.get("semantics") or {}
        classes = [str(s.get("type")) for s in semantics.get("surfaces") or []]
        for rings, value in _faces(
            geometry.get("boundaries") or [], semantics.get("values"), depth
        ):
            tally.faces += 1
            ok = isinstance(value, int) and 0 <= value < len(classes)
            self.faces.append((vertex_set, rings))
            self.targets.append((building, (lod, classes[value] if ok else None)))

    def triangulate(self, tally: Tally) -> None:
        try:
            answers = triangulate_faces(self.vertex_sets, self.faces)
        except BadFace as bad:
            source_id = self.targets[bad.index][0].source_id
            raise InvalidInput(
                f"object {source_id}: a face indexes vertices that do not exist"
            ) from None
        for (building, key), result in zip(self.targets, answers, strict=True):
            if isinstance(result, str):
                tally.rejected[result] += 1
            else:
                building.surfaces.setdefault(key, []).append(result)


def _faces(boundaries: Any, values: Any, depth: int) -> Iterator[tuple[list[list[int]], Any]]:
    """(rings, semantic index) of every surface, walking ``depth`` levels of shells/solids."""
    for i, item in enumerate(boundaries):
        value = values[i] if isinstance(values, list) and i < len(values) else None
        if depth == 0:
            yield item, value
        else:
            yield from _faces(item, value, depth - 1)


def _instance(
    geometry: dict[str, Any],
    header: Header,
    vertices: npt.NDArray[np.float64],
    source_id: str,
) -> tuple[dict[str, Any], npt.NDArray[np.float64]]:
    """The template geometry of a GeometryInstance and its vertices placed in the city."""
    try:
        template = header.templates[int(geometry["template"])]
        reference = vertices[int(geometry["boundaries"][0])]
        matrix = np.asarray(geometry["transformationMatrix"], dtype=np.float64).reshape(4, 4)
    except (KeyError, IndexError, TypeError, ValueError):
        raise InvalidInput(
            f"object {source_id}: a GeometryInstance that cannot be placed"
        ) from None
    local = header.template_vertices
    homogeneous = np.column_stack([local, np.ones(len(local))])
    placed = (homogeneous @ matrix.T)[:, :3] + reference
    return template, np.asarray(placed, dtype=np.float64)
