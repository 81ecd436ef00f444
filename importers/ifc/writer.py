"""Rows of one IFC dataset: ``building``, ``building_storey`` and ``building_element`` via COPY."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, reserve_ids
from importers.ifc.geometry import ElementMesh
from importers.ifc.georef import Placement
from importers.ifc.rows import (
    as_multipolygon,
    box3d,
    ewkb,
    footprint,
    mesh_ewkb,
    psets_without_ids,
)

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is ``geometry`` (percent) or ``write`` (elements)."""

ELEMENT_COLUMNS = [
    "id",
    "dataset_id",
    "building_id",
    "storey_id",
    "guid",
    "ifc_class",
    "name",
    "is_space",
    "psets",
    "material",
    "color",
    "triangle_count",
    "mesh",
    "footprint",
    "bbox3d",
]


class Writer:
    """Rows for one dataset: buildings, storeys, then elements (ids reserved up front)."""

    def __init__(
        self,
        session: Session,
        dataset_id: int,
        ifc: Any,
        placement: Placement,
        srid: int,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.dataset_id = dataset_id
        self.ifc = ifc
        self.placement = placement
        self.srid = srid
        self.progress = progress
        self._type_psets: dict[int, dict[str, dict[str, Any]]] = {}

    def write(self, meshes: dict[int, ElementMesh]) -> dict[str, Any]:

        buildings = self.ifc.by_type("IfcBuilding")
        storeys = self.ifc.by_type("IfcBuildingStorey")
        building_ids = dict(
            zip(
                [b.id() for b in buildings],
                reserve_ids(self.session, table="building", count=len(buildings)),
                strict=True,
            )
        )
        storey_ids = dict(
            zip(
                [s.id() for s in storeys],
                reserve_ids(self.session, table="building_storey", count=len(storeys)),
                strict=True,
            )
        )
        element_ids = reserve_ids(self.session, table="building_element", count=len(meshes))
        by_building: dict[int, list[tuple[ElementMesh, Any]]] = {}
        rows = []
        by_class: Counter[str] = Counter()
        triangles = 0
        for index, (row_id, mesh) in enumerate(zip(element_ids, meshes.values(), strict=True)):
            product = self.ifc.by_id(mesh.product_id)
            storey, building = self._parents(product)
            outline = footprint(mesh.vertices, mesh.faces)
            if building is not None and not product.is_a("IfcSpace"):
                by_building.setdefault(building.id(), []).append((mesh, outline))
            rows.append(
                [
                    row_id,
                    self.dataset_id,
                    building_ids.get(building.id()) if building is not None else None,
                    storey_ids.get(storey.id()) if storey is not None else None,
                    mesh.guid,
                    mesh.ifc_class,
                    getattr(product, "Name", None),
                    bool(product.is_a("IfcSpace")),
                    _json(psets_without_ids(self._psets(product))),
                    _material(product),
                    mesh.color,
                    len(mesh.faces),
                    mesh_ewkb(mesh.vertices, mesh.faces, self.srid),
                    ewkb(outline, self.srid),
                    box3d(mesh.vertices),
                ]
            )
            by_class[mesh.ifc_class] += 1
            triangles += len(mesh.faces)
            if self.progress is not None and index % 50 == 0:
                self.progress("write", index, len(meshes))
        self._write_buildings(buildings, building_ids, by_building)
        self._write_storeys(storeys, storey_ids, building_ids)
        copy_rows(self.session, table="building_element", columns=ELEMENT_COLUMNS, rows=rows)
        if self.progress is not None:
            self.progress("write", len(meshes), len(meshes))
        return {
            "building": len(buildings),
            "building_storey": len(storeys),
            "building_element": len(rows),
            "spaces": by_class.get("IfcSpace", 0),
            "triangles": triangles,
            "elements_by_class": dict(sorted(by_class.items())),
        }

    def _psets(self, product: Any) -> dict[str, dict[str, Any]]:
        """``get_psets(product)``, with each type's own sets read once, not per occurrence.

        Same merge as ifcopenshell: the type's sets first, the occurrence's update them.
        """
        import ifcopenshell.util.element

        element_type = ifcopenshell.util.element.get_type(product)
        if element_type is None or getattr(product, "IsDefinedBy", None) is None:
            return ifcopenshell.util.element.get_psets(product)
        cached = self._type_psets.get(element_type.id())
        if cached is None:
            cached = ifcopenshell.util.element.get_psets(element_type, should_inherit=False)
            self._type_psets[element_type.id()] = cached
        merged = {name: dict(values) for name, values in cached.items()}
        own = ifcopenshell.util.element.get_psets(product, should_inherit=False)
        for name, values in own.items():
            merged.setdefault(name, {}).update(values)
        return merged

    def _parents(self, product: Any) -> tuple[Any, Any]:
        """The storey and building that hold ``product`` (through aggregates and voids)."""
        import ifcopenshell.util.element

        node = product
        storey = building = None
        for _ in range(64):  # guards against cyclic files
            if node is None:
                break
            if node.is_a("IfcBuildingStorey") and storey is None:
                storey = node
            if node.is_a("IfcBuilding"):
                building = node
                break
            parent = ifcopenshell.util.element.get_container(node, should_get_direct=True)
            if parent is None:
                parent = ifcopenshell.util.element.get_aggregate(node)
            if parent is None:
                parent = _filled_or_voided(node)
            node = parent
        return storey, building

    def _write_buildings(
        self,
        buildings: list[Any],
        building_ids: dict[int, int],
        by_building: dict[int, list[tuple[ElementMesh, Any]]],
    ) -> None:
        import ifcopenshell.util.element

        rows = []
        for building in buildings:
            members = [m for m, _ in by_building.get(building.id(), []) if len(m.faces)]
            outline = None
            base_z = top_z = None
            if members:
                parts = [o for _, o in by_building[building.id()] if o is not None]
                outline = _union(parts)
                heights = np.concatenate([m.vertices[:, 2] for m in members])
                base_z, top_z = float(heights.min()), float(heights.max())
            attrs = {
                "psets": psets_without_ids(ifcopenshell.util.element.get_psets(building)),
                "long_name": getattr(building, "LongName", None),
            }
            rows.append(
                [
                    building_ids[building.id()],
                    self.dataset_id,
                    building.GlobalId,
                    building.Name,
                    ewkb(outline, self.srid),
                    base_z,
                    top_z,
                    _json(attrs),
                ]
            )
        copy_rows(
            self.session,
            table="building",
            columns=["id", "dataset_id", "guid", "name", "footprint", "base_z", "top_z", "attrs"],
            rows=rows,
        )

    def _write_storeys(
        self, storeys: list[Any], storey_ids: dict[int, int], building_ids: dict[int, int]
    ) -> None:
        import ifcopenshell.util.placement

        rows = []
        for storey in storeys:
            _, building = self._parents(storey)
            elevation = None
            if storey.ObjectPlacement is not None:
                local = ifcopenshell.util.placement.get_local_placement(storey.ObjectPlacement)
                unit_m = float(self.placement.details.get("project_unit_m") or _unit(self.ifc))
                world = np.array([[0.0, 0.0, float(local[2, 3]) * unit_m]])
                elevation = float(self.placement.apply(world)[0, 2])
            rows.append(
                [
                    storey_ids[storey.id()],
                    self.dataset_id,
                    building_ids.get(building.id()) if building is not None else None,
                    storey.GlobalId,
                    storey.Name,
                    elevation,
                ]
            )
        copy_rows(
            self.session,
            table="building_storey",
            columns=["id", "dataset_id", "building_id", "guid", "name", "elevation"],
            rows=rows,
        )


def _unit(ifc: Any) -> float:
    import ifcopenshell.util.unit

    return float(ifcopenshell.util.unit.calculate_unit_scale(ifc))


def _filled_or_voided(node: Any) -> Any:
    """An opening's host, or the opening a door/window fills (both lead to a container)."""
    for relation in getattr(node, "FillsVoids", None) or ():
        return relation.RelatingOpeningElement
    for relation in getattr(node, "VoidsElements", None) or ():
        return relation.RelatingBuildingElement
    for relation in getattr(node, "Nests", None) or ():
        return relation.RelatingObject
    return None


def _union(parts: list[shapely.MultiPolygon]) -> Any:
    if not parts:
        return None
    return as_multipolygon(shapely.union_all(parts, grid_size=1e-3))


def _material(product: Any) -> str | None:
    import ifcopenshell.util.element

    try:
        materials = ifcopenshell.util.element.get_materials(product)
    except Exception:  # a malformed material association must not stop the import
        return None
    names = list(dict.fromkeys(m.Name for m in materials if getattr(m, "Name", None)))
    return "; ".join(names) if names else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
