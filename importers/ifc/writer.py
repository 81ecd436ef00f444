"""Rows of one IFC dataset: ``building``, ``building_storey`` and ``building_element`` via COPY."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, refresh_statistics, reserve_ids
from importers.ifc.encoding import EarlyEncoder
from importers.ifc.facts import ProductFacts
from importers.ifc.geometry import ElementMesh
from importers.ifc.georef import Placement
from importers.ifc.rows import as_multipolygon, ewkb, psets_without_ids
from importers.ifc.workers import OUTLINE_GRID

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
        facts: ProductFacts,
        encoder: EarlyEncoder,
    ) -> None:
        self.session = session
        self.dataset_id = dataset_id
        self.ifc = ifc
        self.placement = placement
        self.srid = srid
        self.progress = progress
        self.facts = facts
        self.encoder = encoder

    def write(self, meshes: dict[int, ElementMesh]) -> dict[str, Any]:
        """Buildings and storeys, then the elements streamed into COPY as the workers finish
        encoding them (ids in STEP order, rows in the order they are ready), then each
        building's outline, which needs every element's footprint."""
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
        ordered = list(meshes.values())
        by_building: dict[int, list[ElementMesh]] = {}
        for mesh in ordered:
            facts = self.facts.get(mesh.product_id)
            if facts.building_id is not None and not facts.is_space:
                by_building.setdefault(facts.building_id, []).append(mesh)
        self._write_buildings(buildings, building_ids, by_building)
        self._write_storeys(storeys, storey_ids, building_ids)

        def rows() -> Iterator[list[Any]]:
            for done, (position, values) in enumerate(self.encoder.completed(ordered)):
                mesh = ordered[position]
                facts = self.facts.get(mesh.product_id)
                if self.progress is not None and done % 50 == 0:
                    self.progress("write", done, len(meshes))
                yield [
                    element_ids[position],
                    self.dataset_id,
                    building_ids.get(facts.building_id) if facts.building_id else None,
                    storey_ids.get(facts.storey_id) if facts.storey_id else None,
                    mesh.guid,
                    mesh.ifc_class,
                    facts.name,
                    facts.is_space,
                    facts.psets_json,
                    facts.material,
                    mesh.color,
                    len(mesh.faces),
                    values.mesh,
                    values.footprint,
                    values.bbox3d,
                ]

        written = copy_rows(
            self.session, table="building_element", columns=ELEMENT_COLUMNS, rows=rows()
        )
        self._write_outlines(building_ids, by_building)
        refresh_statistics(
            self.session,
            {
                "building": len(buildings),
                "building_storey": len(storeys),
                "building_element": written,
            },
        )
        if self.progress is not None:
            self.progress("write", len(meshes), len(meshes))
        by_class = Counter(mesh.ifc_class for mesh in ordered)
        return {
            "building": len(buildings),
            "building_storey": len(storeys),
            "building_element": written,
            "spaces": by_class.get("IfcSpace", 0),
            "triangles": sum(len(mesh.faces) for mesh in ordered),
            "elements_by_class": dict(sorted(by_class.items())),
        }

    def _write_buildings(
        self,
        buildings: list[Any],
        building_ids: dict[int, int],
        by_building: dict[int, list[ElementMesh]],
    ) -> None:
        """Building rows before their elements (which reference them), heights from the
        meshes; the outline is filled in by :meth:`_write_outlines`."""
        import ifcopenshell.util.element

        rows = []
        for building in buildings:
            members = [m for m in by_building.get(building.id(), []) if len(m.faces)]
            base_z = top_z = None
            if members:
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
                    None,
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

    def _write_outlines(
        self, building_ids: dict[int, int], by_building: dict[int, list[ElementMesh]]
    ) -> None:
        """Each building's footprint: the union of the partial outlines the workers made."""
        outlines = []
        for building, members in by_building.items():
            if building not in building_ids or not any(len(m.faces) for m in members):
                continue
            parts = self.encoder.outlines.get(building, [])
            outline = ewkb(_union(list(shapely.from_wkb(parts))), self.srid)
            if outline is not None:
                outlines.append({"id": building_ids[building], "footprint": outline})
        if outlines:
            self.session.execute(
                text("UPDATE building SET footprint = CAST(:footprint AS geometry) WHERE id = :id"),
                outlines,
            )

    def _write_storeys(
        self, storeys: list[Any], storey_ids: dict[int, int], building_ids: dict[int, int]
    ) -> None:
        import ifcopenshell.util.placement

        rows = []
        for storey in storeys:
            _, building = self.facts.parents(storey)
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


def _union(parts: list[shapely.MultiPolygon]) -> Any:
    if not parts:
        return None
    return as_multipolygon(shapely.union_all(parts, grid_size=OUTLINE_GRID))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
