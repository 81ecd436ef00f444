"""What the writer needs of each product besides its mesh, gathered while the geometry runs.

The iterator triangulates in C++ worker threads; reading property sets, materials and the
spatial parents of each product as it arrives keeps the Python thread busy meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from importers.ifc.rows import psets_without_ids


@dataclass
class Facts:
    """One product's non-geometric columns (parents as STEP ids)."""

    name: str | None
    is_space: bool
    psets_json: str
    material: str | None
    storey_id: int | None
    building_id: int | None


class ProductFacts:
    """Facts per product id, computed once (``add`` is the iterator's new-product hook)."""

    def __init__(self, ifc: Any) -> None:
        self.ifc = ifc
        self._facts: dict[int, Facts] = {}
        self._type_psets: dict[int, dict[str, dict[str, Any]]] = {}

    def add(self, product_id: int) -> None:
        if product_id not in self._facts:
            self._facts[product_id] = self._read(self.ifc.by_id(product_id))

    def get(self, product_id: int) -> Facts:
        self.add(product_id)
        return self._facts[product_id]

    def _read(self, product: Any) -> Facts:
        storey, building = self.parents(product)
        return Facts(
            name=getattr(product, "Name", None),
            is_space=bool(product.is_a("IfcSpace")),
            psets_json=json.dumps(
                psets_without_ids(self.psets(product)), ensure_ascii=False, allow_nan=False
            ),
            material=_material(product),
            storey_id=storey.id() if storey is not None else None,
            building_id=building.id() if building is not None else None,
        )

    def psets(self, product: Any) -> dict[str, dict[str, Any]]:
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

    def parents(self, product: Any) -> tuple[Any, Any]:
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


def _filled_or_voided(node: Any) -> Any:
    """An opening's host, or the opening a door/window fills (both lead to a container)."""
    for relation in getattr(node, "FillsVoids", None) or ():
        return relation.RelatingOpeningElement
    for relation in getattr(node, "VoidsElements", None) or ():
        return relation.RelatingBuildingElement
    for relation in getattr(node, "Nests", None) or ():
        return relation.RelatingObject
    return None


def _material(product: Any) -> str | None:
    import ifcopenshell.util.element

    try:
        materials = ifcopenshell.util.element.get_materials(product)
    except Exception:  # a malformed material association must not stop the import
        return None
    names = list(dict.fromkeys(m.Name for m in materials if getattr(m, "Name", None)))
    return "; ".join(names) if names else None
