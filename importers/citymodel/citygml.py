"""Read CityGML 2.0 and 3.0 files as a stream of buildings, one top-level member at a time.

Why iterparse: a city's CityGML is one XML document of gigabytes. ``lxml.etree.iterparse`` hands
over each ``cityObjectMember`` when it ends; its Building and BuildingParts are turned into
:class:`~importers.citymodel.buildings.CityBuilding` s (the same shape the CityJSON reader makes,
so triangulation, rows and writer are shared) and the member is removed from the tree, so memory
is bounded by one building. The version is told by the building namespace. The CRS is the
``srsName`` of the model's envelope, else of the first geometry that names one; compound names
keep their horizontal part (:func:`horizontal_crs_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from cim.errors import InvalidInput
from importers.citymodel.buildings import CityBuilding, Tally
from importers.citymodel.gml_geometry import (
    PART,
    add_geometry,
    gml_id,
    index_building,
    local_name,
    namespace,
)

BUILDING_NAMESPACES = {
    "http://www.opengis.net/citygml/building/2.0": "2.0",
    "http://www.opengis.net/citygml/building/3.0": "3.0",
}
GENERIC_NAMESPACES = (
    "http://www.opengis.net/citygml/generics/2.0",
    "http://www.opengis.net/citygml/generics/3.0",
)
BUILDING_TAGS = tuple(
    f"{{{ns}}}{name}" for ns in BUILDING_NAMESPACES for name in ("Building", PART)
)
CONSTRUCTION_3 = "http://www.opengis.net/citygml/construction/3.0"
GML_SUFFIXES = (".gml", ".xml")
ADV_CRS = {
    "ETRS89_UTM32": "EPSG:25832",
    "ETRS89_UTM33": "EPSG:25833",
    "DE_DHDN_3GK2": "EPSG:31466",
    "DE_DHDN_3GK3": "EPSG:31467",
    "DE_DHDN_3GK4": "EPSG:31468",
    "DE_DHDN_3GK5": "EPSG:31469",
    "ETRS89_Lat-Lon": "EPSG:4258",
}
"""German AdV CRS names (``urn:adv:crs:…``): horizontal part -> EPSG."""
EPSG_CODES = re.compile(r"EPSG(?:/\d+/|::|:)(\d+)", re.IGNORECASE)


def is_citygml(path: Path) -> bool:
    """Whether ``path`` is read as CityGML (by suffix: ``.gml``, ``.xml``)."""
    return path.suffix.lower() in GML_SUFFIXES


def horizontal_crs_text(srs_name: str) -> str:
    """The horizontal CRS named by a CityGML ``srsName``, as ``EPSG:n`` when known.

    Compound names keep their first (horizontal) part; heights stay as given.

    Examples
    --------
    >>> horizontal_crs_text("urn:adv:crs:ETRS89_UTM32*DE_DHHN92_NH")
    'EPSG:25832'
    >>> horizontal_crs_text("urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783")
    'EPSG:25832'
    >>> horizontal_crs_text("http://www.opengis.net/def/crs/EPSG/0/3068")
    'EPSG:3068'
    """
    text = srs_name.strip()
    if text.lower().startswith("urn:adv:crs:"):
        first = text[len("urn:adv:crs:") :].split("*")[0]
        return ADV_CRS.get(first, text)
    codes = EPSG_CODES.findall(text)
    return f"EPSG:{codes[0]}" if codes else text


@dataclass
class Member:
    """The buildings of one top-level member and the CRS named so far (None if none yet)."""

    srs_name: str | None
    buildings: list[CityBuilding]


def read_citygml(path: Path, tally: Tally) -> Iterator[Member]:
    """The buildings of a CityGML file, member by member (InvalidInput for broken XML)."""
    depth = 0
    srs_name: str | None = None
    parser = etree.iterparse(
        str(path), events=("start", "end"), resolve_entities=False, huge_tree=True
    )
    try:
        for event, element in parser:
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue
            if srs_name is None:
                srs_name = _first_srs_name(element)
            buildings = _member_buildings(element, tally)
            parent = element.getparent()
            if parent is not None:
                parent.remove(element)
            if buildings:
                yield Member(srs_name, buildings)
    except etree.XMLSyntaxError as exc:
        message = str(exc.msg).splitlines()[0] if exc.msg else "syntax error"
        raise InvalidInput(f"{path.name}: invalid XML at line {exc.lineno}: {message}") from None


def _first_srs_name(element: Any) -> str | None:
    for item in element.iter():
        value = item.get("srsName") if isinstance(item.tag, str) else None
        if value:
            return str(value)
    return None


def _member_buildings(member: Any, tally: Tally) -> list[CityBuilding]:
    """Every Building and BuildingPart in ``member`` (parts name their parent)."""
    found: list[CityBuilding] = []
    tops = [
        e
        for e in member.iter(*BUILDING_TAGS)
        if local_name(e) == "Building" and not _has_building_above(e, member)
    ]
    for top in tops:
        index = index_building(top)
        for element in top.iter(*BUILDING_TAGS):
            kind = local_name(element)
            if kind == "Building":
                if element is not top and _has_building_above(element, top):
                    continue  # a Building nested in a Building: counted with its own top
                tally.buildings += 1
            else:
                tally.building_parts += 1
            building = CityBuilding(
                source_id=gml_id(element) or f"building-{tally.buildings + tally.building_parts}",
                kind=kind,
                parent=_parent_id(element) if kind == PART else None,
                attributes=building_attributes(element),
            )
            add_geometry(building, element, index, tally)
            found.append(building)
    return found


def _building_kind(element: Any) -> str | None:
    name = local_name(element)
    if name in ("Building", PART) and namespace(element) in BUILDING_NAMESPACES:
        return name
    return None


def _has_building_above(element: Any, limit: Any) -> bool:
    for ancestor in element.iterancestors():
        if ancestor is limit:
            return False
        if _building_kind(ancestor) is not None:
            return True
    return False


def _parent_id(element: Any) -> str | None:
    for ancestor in element.iterancestors():
        if _building_kind(ancestor) is not None:
            return gml_id(ancestor)
    return None


def building_attributes(element: Any) -> dict[str, Any]:
    """Name, ``bldg:`` simple properties (function, measuredHeight…) and generic attributes.

    Only the building's own children are read: thematic surfaces carry generic attributes of
    their own. CityGML 3.0's ``con:height`` (measured) becomes ``measuredHeight`` and
    ``con:dateOfConstruction`` ``yearOfConstruction``, the names the rows expect.
    """
    attributes: dict[str, Any] = {}
    for child in element:
        name, space = local_name(child), namespace(child)
        if name == "name" and "gml" in space and child.text:
            attributes.setdefault("name", child.text.strip())
        elif space in BUILDING_NAMESPACES and len(child) == 0 and child.text:
            _add_value(attributes, name, child.text.strip())
        elif space in GENERIC_NAMESPACES:
            _generic(child, attributes)
        elif name == "genericAttribute":
            for generic in child:
                _generic(generic, attributes)
        elif space == CONSTRUCTION_3:
            _construction(child, name, attributes)
    return attributes


def _add_value(attributes: dict[str, Any], name: str, value: str) -> None:
    """Repeated properties (``bldg:function`` may repeat) become lists."""
    if name not in attributes:
        attributes[name] = value
    elif isinstance(attributes[name], list):
        attributes[name].append(value)
    else:
        attributes[name] = [attributes[name], value]


def _generic(element: Any, attributes: dict[str, Any]) -> None:
    """A generic attribute: 2.0 ``<gen:stringAttribute name>``, 3.0 ``<gen:StringAttribute>``."""
    kind = local_name(element).lower()
    name = element.get("name")
    value: str | None = None
    for child in element:
        if local_name(child) == "name" and child.text:
            name = child.text.strip()
        elif local_name(child) == "value" and child.text is not None:
            value = child.text.strip()
    if not name or value is None:
        return
    if kind.startswith("int"):
        attributes[name] = _parsed(value, int)
    elif kind.startswith(("double", "measure")):
        attributes[name] = _parsed(value, float)
    else:
        attributes[name] = value


def _parsed(value: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value


def _construction(element: Any, name: str, attributes: dict[str, Any]) -> None:
    if name == "dateOfConstruction" and element.text:
        attributes.setdefault("yearOfConstruction", element.text.strip()[:4])
    elif name == "height":
        for value in element.iter(f"{{{CONSTRUCTION_3}}}value"):
            if value.text:
                attributes.setdefault("measuredHeight", _parsed(value.text.strip(), float))
