"""What an IFC file says about its location: map conversion values, property sets, site lat/lon.

Only reading and unit bookkeeping here; :mod:`importers.ifc.georef` turns these into a placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def unit_metres(unit: Any) -> float:
    """Metres per one ``unit`` (an IfcNamedUnit)."""
    import ifcopenshell.util.unit

    return float(ifcopenshell.util.unit.get_unit_scale(unit))


@dataclass
class MapConversionValues:
    """Map conversion attributes as written (map units), where they came from, the CRS name."""

    source: str
    values: dict[str, Any]
    crs_name: str | None
    map_unit_m: float | None


def map_conversion(ifc: Any) -> MapConversionValues | None:
    """IFC4+ ``IfcMapConversion`` (or IFC4X3 ``IfcRigidOperation``) of the 3D model context."""
    if ifc.schema == "IFC2X3":
        return None
    contexts = sorted(
        ifc.by_type("IfcGeometricRepresentationContext", include_subtypes=False),
        key=lambda c: (c.ContextType != "Model", (c.CoordinateSpaceDimension or 3) != 3),
    )
    for context in contexts:
        for operation in context.HasCoordinateOperation or ():
            if operation.is_a("IfcMapConversion"):
                values = {
                    "Eastings": operation.Eastings,
                    "Northings": operation.Northings,
                    "OrthogonalHeight": operation.OrthogonalHeight,
                    "XAxisAbscissa": operation.XAxisAbscissa,
                    "XAxisOrdinate": operation.XAxisOrdinate,
                    "Scale": operation.Scale,
                }
            elif operation.is_a("IfcRigidOperation"):  # IFC4X3: a shift, no turn or scale
                values = {
                    "Eastings": _measure(operation.FirstCoordinate),
                    "Northings": _measure(operation.SecondCoordinate),
                    "OrthogonalHeight": operation.Height,
                }
            else:
                continue
            target = operation.TargetCRS
            name = (target.Name or "").strip() if target is not None else ""
            unit = getattr(target, "MapUnit", None) if target is not None else None
            return MapConversionValues(
                operation.is_a(), values, name or None, unit_metres(unit) if unit else None
            )
    return None


def _measure(value: Any) -> float:
    return float(getattr(value, "wrappedValue", value) or 0.0)


def pset_conversion(ifc: Any) -> MapConversionValues | None:
    """IFC2X3 ``ePSet_MapConversion``/``ePSet_ProjectedCRS`` on the IfcProject or an IfcSite."""
    import ifcopenshell.util.element

    for holder in [*ifc.by_type("IfcProject"), *ifc.by_type("IfcSite")]:
        values = ifcopenshell.util.element.get_pset(holder, "ePSet_MapConversion")
        if not values:
            continue
        crs_values = ifcopenshell.util.element.get_pset(holder, "ePSet_ProjectedCRS") or {}
        name = str(crs_values.get("Name") or "").strip()
        unit_name = str(crs_values.get("MapUnit") or "").strip().upper()
        map_unit_m = {"METRE": 1.0, "METER": 1.0, "MILLIMETRE": 0.001, "FOOT": 0.3048}.get(
            unit_name
        )
        return MapConversionValues("ePSet_MapConversion", dict(values), name or None, map_unit_m)
    return None


def compound_degrees(value: Any, what: str, warnings: list[str]) -> float | None:
    """An IfcCompoundPlaneAngleMeasure (deg, min, sec[, millionths]) as decimal degrees."""
    if not value:
        return None
    parts = [int(v) for v in value] + [0] * (4 - len(value))
    signs = {p > 0 for p in parts if p != 0}
    if len(signs) > 1:
        warnings.append(f"IfcSite {what} {tuple(value)} mixes signs; read with the degrees' sign")
    sign = -1.0 if parts[0] < 0 or (parts[0] == 0 and min(parts) < 0) else 1.0
    magnitude = abs(parts[0]) + abs(parts[1]) / 60 + abs(parts[2]) / 3600 + abs(parts[3]) / 3.6e9
    return sign * magnitude


@dataclass
class SiteReference:
    lat: float
    lon: float
    elevation_m: float
    true_north_deg: float
    name: str


def site_reference(ifc: Any, project_unit_m: float, warnings: list[str]) -> SiteReference | None:
    for site in ifc.by_type("IfcSite"):
        lat = compound_degrees(site.RefLatitude, "RefLatitude", warnings)
        lon = compound_degrees(site.RefLongitude, "RefLongitude", warnings)
        if lat is None or lon is None:
            continue
        if lat == 0 and lon == 0:
            warnings.append("IfcSite RefLatitude/RefLongitude are 0,0 (an unset default); ignored")
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            warnings.append(f"IfcSite RefLatitude/RefLongitude {lat}, {lon} out of range; ignored")
            continue
        return SiteReference(
            lat=lat,
            lon=lon,
            elevation_m=float(site.RefElevation or 0.0) * project_unit_m,
            true_north_deg=true_north_degrees(ifc),
            name=site.Name or site.GlobalId,
        )
    return None


def true_north_degrees(ifc: Any) -> float:
    """Angle (degrees, counter-clockwise) from map north to the model's +Y axis (TrueNorth)."""
    for context in ifc.by_type("IfcGeometricRepresentationContext", include_subtypes=False):
        north = context.TrueNorth
        if context.ContextType == "Model" and north is not None:
            x, y = north.DirectionRatios[:2]
            # TrueNorth is north expressed in model axes; the model turns the other way.
            return math.degrees(math.atan2(y, x)) - 90.0
    return 0.0
