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
        self._definitions: dict[int, dict[str, Any]] = {}
        self._parents: dict[int, tuple[Any, Any]] = {}

    def add(self, product_id: int) -> None:
        if product_id not in self._facts:
            self._facts[product_id] = self._read(self.ifc.by_id(product_id))

    def get(self, product_id: int) -> Facts:
        self.add(product_id)
        return self._facts[product_id]

    def outline_group(self, product_id: int) -> int | None:
        """The building whose outline the product's footprint joins (spaces join none)."""
        facts = self.get(product_id)
        return None if facts.is_space else facts.building_id

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
        """``get_psets(product)``, each type's and each property definition's values read once.

        Same merge as ifcopenshell: the type's sets first, then the occurrence's definitions in
        order, each updating the set of its name. Definitions are shared (ISSUE_021: 15,672
        product-set links to 2,386 sets), so reading each once saves most of the time.
        """
        import ifcopenshell.util.element

        defined_by = getattr(product, "IsDefinedBy", None)
        if defined_by is None:
            return ifcopenshell.util.element.get_psets(product)
        element_type = ifcopenshell.util.element.get_type(product)
        merged: dict[str, dict[str, Any]] = {}
        if element_type is not None:
            cached = self._type_psets.get(element_type.id())
            if cached is None:
                cached = ifcopenshell.util.element.get_psets(element_type, should_inherit=False)
                self._type_psets[element_type.id()] = cached
            merged = {name: dict(values) for name, values in cached.items()}
        for relationship in defined_by:
            if not relationship.is_a("IfcRelDefinesByProperties"):
                continue
            definition = relationship.RelatingPropertyDefinition
            if definition.is_a("IfcPropertySetDefinitionSet"):
                definitions = definition.wrappedValue
            else:
                definitions = (definition,)
            for member in definitions:
                merged.setdefault(member.Name, {}).update(self._definition(member))
        return merged

    def _definition(self, definition: Any) -> dict[str, Any]:
        import ifcopenshell.util.element

        values = self._definitions.get(definition.id())
        if values is None:
            values = ifcopenshell.util.element.get_property_definition(definition) or {}
            self._definitions[definition.id()] = values
        return values

    def parents(self, product: Any, depth: int = 0) -> tuple[Any, Any]:
        """The storey and building that hold ``product`` (through aggregates and voids).

        Remembered per node: the products of a storey share the rest of the walk up.
        """
        import ifcopenshell.util.element

        if product is None or depth >= 64:  # 64 guards against cyclic files
            return None, None
        known = self._parents.get(product.id())
        if known is not None:
            return known
        if product.is_a("IfcBuilding"):
            found: tuple[Any, Any] = (None, product)
        else:
            parent = ifcopenshell.util.element.get_container(product, should_get_direct=True)
            if parent is None:
                parent = ifcopenshell.util.element.get_aggregate(product)
            if parent is None:
                parent = _filled_or_voided(product)
            storey, building = self.parents(parent, depth + 1)
            if product.is_a("IfcBuildingStorey"):
                storey = product
            found = (storey, building)
        self._parents[product.id()] = found
        return found


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
