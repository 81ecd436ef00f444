"""IFC import (buildings, storeys, elements, georeferencing); ifcopenshell is loaded lazily."""

from importers.ifc.georef import Flags
from importers.ifc.importer import IfcImport, import_ifc, parse_origin

__all__ = ["Flags", "IfcImport", "import_ifc", "parse_origin"]
