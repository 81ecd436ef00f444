"""CityGML building geometry -> triangles per (LoD, semantic class), for 2.0 and 3.0 alike.

Why one walk for both versions: the geometry is GML 3 in both (``gml:Polygon`` rings with
``gml:posList`` or ``gml:pos``, inside ``gml:Solid``/``gml:CompositeSurface``/``gml:MultiSurface``);
only the property names around it differ (2.0 ``bldg:boundedBy/bldg:RoofSurface``, 3.0
``core:boundary/con:RoofSurface``). The LoD comes from the property's name (``lod2Solid``,
``lod1MultiSurface``…), the semantic class from the thematic surface a polygon is defined in.
A solid usually lists its faces as ``xlink:href`` to the thematic surfaces' polygons: each
polygon is stored once per LoD, with the class of the surface that defines it, whatever the
order of the two in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lxml import etree

from cim.errors import InvalidInput
from importers.citymodel.buildings import CityBuilding, Tally
from importers.citymodel.triangulate import Triangles, triangulate_face

GML = "http://www.opengis.net/gml"
GML32 = "http://www.opengis.net/gml/3.2"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
LODS = ("1", "2")
"""LoDs read; other LoD properties (0, 3, 4) are counted in the QC report and left out."""
LOD_PROPERTY = re.compile(r"^lod(\d)(Solid|MultiSurface|CompositeSurface|Geometry|MultiSolid)$")
THEMATIC = frozenset(
    {
        "RoofSurface",
        "WallSurface",
        "GroundSurface",
        "ClosureSurface",
        "OuterCeilingSurface",
        "OuterFloorSurface",
        "FloorSurface",
        "CeilingSurface",
        "InteriorWallSurface",
        "Door",
        "Window",
        "DoorSurface",
        "WindowSurface",
    }
)
"""Classes a face takes from the surface (or opening) it is defined in; an opening's faces
are its own class, not its wall's (the tree is walked parent first, the opening wins)."""
PART = "BuildingPart"
THEMATIC_NAMESPACES = (
    "http://www.opengis.net/citygml/building/2.0",
    "http://www.opengis.net/citygml/construction/3.0",
    "http://www.opengis.net/citygml/building/3.0",
)
THEMATIC_TAGS = tuple(f"{{{ns}}}{name}" for ns in THEMATIC_NAMESPACES for name in sorted(THEMATIC))
WITH_GML_ID = etree.XPath(".//*[@g:id or @g32:id]", namespaces={"g": GML, "g32": GML32})
"""Elements that carry a gml:id (found in C, not by a Python loop over every element)."""
LOD_GEOMETRY_STOP = frozenset({"Building", PART})
"""Where the search for an enclosing ``srsDimension`` stops."""


def local_name(element: Any) -> str:
    """The tag without its namespace (``{ns}Polygon`` -> ``Polygon``); '' for comments."""
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def namespace(element: Any) -> str:
    """The namespace URI of an element's tag ('' when none)."""
    tag = element.tag
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def gml_id(element: Any) -> str | None:
    """The ``gml:id`` of an element (GML 3.1 or 3.2 namespace)."""
    value = element.get(f"{{{GML32}}}id") or element.get(f"{{{GML}}}id")
    return str(value) if value else None


@dataclass
class BuildingIndex:
    """What a top-level building knows about all its elements: ids and polygon classes."""

    by_id: dict[str, Any]
    semantic_of: dict[Any, str]


def index_building(top: Any) -> BuildingIndex:
    """Every element with a gml:id in ``top``, and the thematic class of every polygon."""
    by_id: dict[str, Any] = {}
    for element in WITH_GML_ID(top):
        identifier = gml_id(element)
        if identifier:
            by_id[identifier] = element
    semantic_of: dict[Any, str] = {}
    for surface in top.iter(*THEMATIC_TAGS):
        for polygon in surface.iter(f"{{{GML32}}}Polygon", f"{{{GML}}}Polygon"):
            semantic_of[polygon] = local_name(surface)
    return BuildingIndex(by_id=by_id, semantic_of=semantic_of)


@dataclass
class _Faces:
    """Faces of one building keyed by (LoD, polygon element), so each is stored once per LoD."""

    building: CityBuilding
    index: BuildingIndex
    tally: Tally
    seen: dict[tuple[str, Any], None] = field(default_factory=dict)


def add_geometry(building: CityBuilding, element: Any, index: BuildingIndex, tally: Tally) -> None:
    """Triangulate the LoD1/LoD2 faces of ``element`` (its own, not its BuildingParts')."""
    faces = _Faces(building, index, tally)
    for child in element:
        _walk(child, None, faces)


def _walk(element: Any, lod: str | None, faces: _Faces) -> None:
    name = local_name(element)
    if name == PART or not name:
        return
    if lod is None:
        match = LOD_PROPERTY.match(name)
        if match:
            if match.group(1) not in LODS:
                faces.tally.skipped_geometries[f"LoD{match.group(1)}"] += 1
                return
            lod = match.group(1)
    href = element.get(XLINK_HREF)
    if href and lod is not None:
        target = faces.index.by_id.get(href.lstrip("#"))
        if target is None:
            faces.tally.skipped_geometries["unresolved xlink:href"] += 1
        else:
            _walk(target, lod, faces)
        return
    if name == "Polygon" and lod is not None:
        _add_polygon(element, lod, faces)
        return
    for child in element:
        _walk(child, lod, faces)


def _add_polygon(polygon: Any, lod: str, faces: _Faces) -> None:
    key = (lod, polygon)
    if key in faces.seen:
        return
    faces.seen[key] = None
    faces.tally.faces += 1
    try:
        result = _triangulate_polygon(polygon)
    except ValueError:
        raise InvalidInput(
            f"building {faces.building.source_id}: a gml:Polygon whose coordinates are not "
            "numbers in groups of srsDimension (line "
            f"{polygon.sourceline})"
        ) from None
    if isinstance(result, str):
        faces.tally.rejected[result] += 1
        return
    semantic = faces.index.semantic_of.get(polygon)
    faces.building.surfaces.setdefault((lod, semantic), []).append(result)


def _triangulate_polygon(polygon: Any) -> Triangles | str:
    rings = [
        _ring_coordinates(ring)
        for boundary in polygon
        if local_name(boundary) in ("exterior", "interior")
        for ring in boundary
        if local_name(ring) == "LinearRing"
    ]
    rings = [ring for ring in (_cleaned(r) for r in rings) if len(ring)]
    if not rings:
        return "degenerate"
    ends = np.cumsum([len(ring) for ring in rings])
    indices = [list(range(end - len(ring), end)) for ring, end in zip(rings, ends, strict=True)]
    return triangulate_face(np.concatenate(rings), indices)


def _cleaned(ring: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A ring without repeated consecutive points nor the closing repeat of the first."""
    if len(ring) > 1:
        keep = np.ones(len(ring), dtype=bool)
        keep[1:] = (ring[1:] != ring[:-1]).any(axis=1)
        ring = ring[keep]
    while len(ring) > 1 and bool((ring[-1] == ring[0]).all()):
        ring = ring[:-1]
    return ring


def _ring_coordinates(ring: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The (n, 3) coordinates of a ``gml:LinearRing`` (``posList`` or ``pos`` elements).

    ``srsDimension`` may sit on the list or on any enclosing geometry (3 when none says).
    """
    values: list[float] = []
    dimension = _inherited_dimension(ring)
    for child in ring:
        name = local_name(child)
        if name in ("posList", "pos"):
            dimension = int(child.get("srsDimension") or dimension)
            values.extend(float(v) for v in (child.text or "").split())
    if dimension == 2:
        flat = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        return np.column_stack([flat, np.zeros(len(flat))])
    return np.asarray(values, dtype=np.float64).reshape(-1, 3)


def _inherited_dimension(element: Any) -> int:
    for item in (element, *element.iterancestors()):
        value = item.get("srsDimension")
        if value:
            return int(value)
        if local_name(item) in LOD_GEOMETRY_STOP:
            break
    return 3
