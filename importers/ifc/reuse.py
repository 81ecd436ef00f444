"""Products whose bodies are the same geometry: triangulate one of them, place the others.

Why: steel and precast models repeat a few profiles thousands of times, each occurrence with a
representation of its own that points at shared items (ISSUE_021: 2,636 products, 355 distinct
bodies), and the geometry iterator triangulates every occurrence again. In object coordinates a
product's mesh depends only on its representations' items, contexts and layers, its material
(the iterator's colour fallback) and its openings (subtracted per product); the placement is a
matrix. Products alike in all of these share a key; products with openings, projections,
boolean bodies or a placement that is not a chain of ``IfcLocalPlacement`` are planned alone
(and triangulated in world coordinates, exactly as the iterator alone would).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]

BOOLEAN_REPRESENTATIONS = {"CSG", "Clipping"}
"""Booleans succeed or fail depending on the coordinates they run in (House_Renga: five
clipped columns fail in world coordinates, the iterator's reference, and work in object
coordinates), so such bodies are triangulated per product where they stand."""

HEAVY_REPRESENTATIONS = {"CSG", "Clipping", "AdvancedBrep", "AdvancedSweptSolid"}
"""Representation types whose booleans or NURBS cost the kernel tens of milliseconds each."""


@dataclass
class ShapePlan:
    """What to triangulate and where its copies go."""

    representatives: list[Any] = field(default_factory=list)
    """One product per distinct body (the only ones the kernel sees)."""
    copies: dict[int, list[int]] = field(default_factory=dict)
    """Representative STEP id -> the other products with the same body."""
    matrices: dict[int, Matrix] = field(default_factory=dict)
    """Product STEP id -> object-to-world matrix in metres (every product with copies)."""
    costs: dict[int, int] = field(default_factory=dict)
    """Representative STEP id -> rough kernel cost, to hand the heavy ones out first."""

    def products(self) -> list[int]:
        """Every product the plan will yield a mesh for if its geometry works."""
        ids = [p.id() for p in self.representatives]
        return ids + [c for r in ids for c in self.copies.get(r, ())]


def plan_shapes(products: Iterable[Any], unit_scale: float) -> ShapePlan:
    """Group ``products`` by :func:`shape_key`; the first of each group is its representative."""
    plan = ShapePlan()
    placements = _Placements(unit_scale)
    groups: dict[Hashable, Any] = {}
    for product in products:
        key = shape_key(product)
        matrix = placements.matrix(product.ObjectPlacement) if key is not None else None
        first = groups.get(key) if key is not None and matrix is not None else None
        if first is None:
            plan.representatives.append(product)
            plan.costs[product.id()] = kernel_cost(product)
            if key is not None and matrix is not None:
                groups[key] = product
                plan.matrices[product.id()] = matrix
            continue
        plan.copies.setdefault(first.id(), []).append(product.id())
        plan.matrices[product.id()] = matrix  # type: ignore[assignment]
    # A representative's matrix is only needed when it has copies (to check the iterator's).
    plan.matrices = {
        k: v for k, v in plan.matrices.items() if k in plan.copies or k not in plan.costs
    }
    return plan


def shape_key(product: Any) -> Hashable | None:
    """What the product's object-coordinate mesh depends on; None when it must stay alone."""
    if voided(product):
        return None
    shape = product.Representation
    if shape is None or not shape.is_a("IfcProductDefinitionShape"):
        return None
    representations = []
    for representation in shape.Representations or ():
        if representation.RepresentationType in BOOLEAN_REPRESENTATIONS or any(
            item.is_a("IfcBooleanResult") for item in representation.Items or ()
        ):
            return None
        context = representation.ContextOfItems
        layers = _layers(representation)
        representations.append(
            (
                context.id() if context is not None else 0,
                representation.RepresentationIdentifier,
                representation.RepresentationType,
                tuple(_item_key(item) for item in representation.Items or ()),
                layers,
            )
        )
    return (product.is_a(), tuple(representations), _material_id(product))


def voided(product: Any) -> bool:
    """True when openings or projections change the product's body: it is planned alone."""
    return bool(getattr(product, "HasOpenings", None) or getattr(product, "HasProjections", None))


def _item_key(item: Any) -> Hashable:
    """An item's id; for a mapped item (one per occurrence of a door, a window, a chair...)
    what it instantiates: the source map, the target operator's values and its own styles."""
    if not item.is_a("IfcMappedItem"):
        return int(item.id())
    styles = tuple(sorted(s.id() for s in getattr(item, "StyledByItem", None) or ()))
    return ("mapped", item.MappingSource.id(), _values(item.MappingTarget), styles)


def _values(value: Any, depth: int = 0) -> Hashable:
    """Plain values of an operator, points and directions inlined (other entities by id)."""
    if isinstance(value, tuple | list):
        return tuple(_values(v, depth) for v in value)
    if hasattr(value, "is_a"):
        if depth < 2 and value.is_a() in (
            "IfcCartesianTransformationOperator3D",
            "IfcCartesianTransformationOperator3DnonUniform",
            "IfcCartesianPoint",
            "IfcDirection",
        ):
            return (value.is_a(), tuple(_values(v, depth + 1) for v in value))
        return ("#", int(value.id()))
    return value  # type: ignore[no-any-return]


def _layers(representation: Any) -> tuple[int, ...]:
    assigned = getattr(representation, "LayerAssignments", None)
    if assigned is None:  # IFC2X3 names the inverse in the singular
        assigned = getattr(representation, "LayerAssignment", None)
    return tuple(sorted(layer.id() for layer in assigned or ()))


def _material_id(product: Any) -> int:
    import ifcopenshell.util.element

    try:
        material = ifcopenshell.util.element.get_material(product)
    except Exception:  # a malformed association: keep the product alone (key never matches)
        return -int(product.id())
    return int(material.id()) if material is not None else 0


def kernel_cost(product: Any) -> int:
    """Rough kernel cost of a product's body, to hand the heavy ones out first."""
    shape = product.Representation
    cost = 1
    for representation in (shape.Representations or ()) if shape is not None else ():
        kind = representation.RepresentationType
        if kind in HEAVY_REPRESENTATIONS:
            cost = max(cost, 40)
        elif kind == "Brep":
            cost = max(cost, 4)
    return cost + (40 if getattr(product, "HasOpenings", None) else 0)


class _Placements:
    """Object-to-world matrices (metres) of ``IfcLocalPlacement`` chains, each link once."""

    def __init__(self, unit_scale: float) -> None:
        self.unit_scale = unit_scale
        self._cache: dict[int, Matrix | None] = {}

    def matrix(self, placement: Any) -> Matrix | None:
        if placement is None:
            return np.identity(4)
        local = self._local(placement)
        if local is None:
            return None
        scaled = local.copy()
        scaled[:3, 3] *= self.unit_scale
        return scaled

    def _local(self, placement: Any) -> Matrix | None:
        known = self._cache.get(placement.id(), False)
        if known is not False:
            return known  # type: ignore[return-value]
        import ifcopenshell.util.placement

        result: Matrix | None = None
        self._cache[placement.id()] = None  # a cyclic chain ends here instead of recursing
        if placement.is_a("IfcLocalPlacement"):
            parent = (
                np.identity(4)
                if placement.PlacementRelTo is None
                else self._local(placement.PlacementRelTo)
            )
            if parent is not None:
                try:
                    relative = _axis2placement_3d(placement.RelativePlacement)
                    if relative is None:
                        relative = ifcopenshell.util.placement.get_axis2placement(
                            placement.RelativePlacement
                        )
                    result = parent @ np.asarray(relative, dtype=np.float64)
                except Exception:  # an odd placement the util cannot read: keep it alone
                    result = None
        self._cache[placement.id()] = result
        return result


def _axis2placement_3d(placement: Any) -> Matrix | None:
    """``get_axis2placement`` of the common ``IfcAxis2Placement3D`` in plain floats (numpy's
    ``cross`` on 3-vectors made placements most of the plan's time); None for any other kind.
    """
    if placement is None or not placement.is_a("IfcAxis2Placement3D"):
        return None
    origin = getattr(placement.Location, "Coordinates", None)
    if origin is None or len(origin) != 3:
        return None
    zx, zy, zz = _unit(placement.Axis.DirectionRatios if placement.Axis else (0.0, 0.0, 1.0))
    xx, xy, xz = _unit(
        placement.RefDirection.DirectionRatios if placement.RefDirection else (1.0, 0.0, 0.0)
    )
    yx, yy, yz = _unit((zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx))
    return np.array(
        [
            [xx, yx, zx, origin[0]],
            [xy, yy, zy, origin[1]],
            [xz, yz, zz, origin[2]],
            [0.0, 0.0, 0.0, 1.0],
        ],
        dtype=np.float64,
    )


def _unit(vector: Any) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in vector)
    length = (x * x + y * y + z * z) ** 0.5
    return x / length, y / length, z / length
