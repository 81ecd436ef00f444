"""Where an IFC model lies on Earth: map conversion, IFC2X3 property sets, site lat/lon, or flags.

The geometry iterator yields *world* coordinates in metres (the placement chain, no map
conversion). :func:`resolve_placement` returns a :class:`Placement` that takes those to a
projected CRS, read in this order unless the command-line flags override it:

1. ``IfcMapConversion`` + ``IfcProjectedCRS`` (IFC4 and later): Eastings/Northings/
   OrthogonalHeight, rotation from XAxisAbscissa/XAxisOrdinate, Scale and the map unit;
2. IFC2X3 ``ePSet_MapConversion`` + ``ePSet_ProjectedCRS`` on the IfcProject or an IfcSite;
3. ``IfcSite`` RefLatitude/RefLongitude/RefElevation, turned by the context's TrueNorth;
4. ``--origin E,N[,H]`` + ``--rotation DEG`` in ``--crs`` (default the storage CRS).

``--origin`` always wins (the file's georeferencing is then reported and ignored); ``--crs``
alone names the CRS of a map conversion whose IfcProjectedCRS is missing or has no name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Geod

from cim.crs import crs_label, parse_crs, transformer
from cim.errors import InvalidInput, UnsupportedCRS
from importers.ifc.sources import (
    SiteReference,
    map_conversion,
    pset_conversion,
    site_reference,
)

DISAGREEMENT_METRES = 1000.0
"""Two georeferencing sources further apart than this get a warning."""

MAP_COORDINATES_METRES = 100_000.0
"""A model whose geometry lies further than this from its own origin holds map coordinates."""

AREA_OF_USE_SLACK_DEGREES = 2.0
"""How far outside the storage CRS's area of use a model may lie (warned) before it is refused."""


@dataclass(frozen=True)
class Flags:
    """Placement options from the command line (``None`` = not given)."""

    crs: str | None = None
    origin: tuple[float, ...] | None = None
    rotation: float | None = None


@dataclass
class Placement:
    """World metres -> coordinates in ``crs`` (its own units; heights in metres)."""

    source: str
    crs: CRS
    matrix: npt.NDArray[np.float64]
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def apply(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(n, 3) world metres -> (n, 3) coordinates in :attr:`crs`."""
        return np.asarray(points, dtype=np.float64) @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def origin_lonlat(self, at: npt.NDArray[np.float64] | None = None) -> tuple[float, float]:
        """Longitude and latitude of the model's world origin (or of the world point ``at``)."""
        x, y, _ = self.apply(np.zeros((1, 3)) if at is None else at.reshape(1, 3))[0]
        lon, lat = transformer(self.crs, 4326).transform(x, y)
        return float(lon), float(lat)

    def record(self) -> dict[str, Any]:
        """What the dataset row keeps about the placement."""
        return {
            "source": self.source,
            "crs": crs_label(self.crs),
            "matrix": [[round(float(v), 12) for v in row] for row in self.matrix],
            **self.details,
        }


def similarity(
    *, scale: float, z_scale: float, angle: float, offset: tuple[float, float, float]
) -> npt.NDArray[np.float64]:
    """4x4 matrix: scale, rotate counter-clockwise by ``angle`` (radians) about Z, translate."""
    cos, sin = math.cos(angle), math.sin(angle)
    matrix = np.identity(4)
    matrix[:2, :2] = [[scale * cos, -scale * sin], [scale * sin, scale * cos]]
    matrix[2, 2] = z_scale
    matrix[:3, 3] = offset
    return matrix


def _crs_unit_metres(crs: CRS) -> float:
    horizontal = crs.sub_crs_list[0] if crs.is_compound else crs
    if not horizontal.is_projected:
        raise UnsupportedCRS(f"{crs_label(crs)} is not a projected CRS; IFC needs map coordinates")
    return float(horizontal.axis_info[0].unit_conversion_factor)


def horizontal_crs(crs: CRS) -> CRS:
    """The horizontal part of a compound CRS (heights pass through as metres)."""
    return crs.sub_crs_list[0] if crs.is_compound else crs


def _chosen_scale(given: float | None, expected: float, warnings: list[str], where: str) -> float:
    """The map conversion's Scale, repaired where writers are known to get it wrong."""
    if given is None or given == 0:
        if not math.isclose(expected, 1.0):
            warnings.append(
                f"{where}: Scale is missing although project and map units differ; "
                f"applying the unit ratio {expected:g}"
            )
        return expected
    if math.isclose(given, expected, rel_tol=0.05):
        return given
    if not math.isclose(expected, 1.0) and math.isclose(given, 1.0 / expected, rel_tol=0.05):
        warnings.append(
            f"{where}: Scale {given:g} is the inverse of the unit ratio (project unit -> map "
            f"unit = {expected:g}); applying {expected:g}"
        )
        return expected
    if math.isclose(given, 1.0) and not math.isclose(expected, 1.0):
        warnings.append(
            f"{where}: Scale 1 although project and map units differ; applying the unit ratio "
            f"{expected:g}"
        )
        return expected
    warnings.append(f"{where}: Scale {given:g} differs from the unit ratio {expected:g}; applied")
    return given


def _conversion_placement(
    *,
    source: str,
    crs: CRS,
    values: dict[str, Any],
    project_unit_m: float,
    map_unit_m: float,
    warnings: list[str],
) -> Placement:
    """Placement from map conversion values (Eastings etc. in map units)."""
    expected = project_unit_m / map_unit_m
    if source == "IfcRigidOperation":  # no Scale attribute: only the unit ratio applies
        scale = expected
    else:
        scale = _chosen_scale(values.get("Scale"), expected, warnings, source)
    abscissa = float(values.get("XAxisAbscissa") or 0.0)
    ordinate = float(values.get("XAxisOrdinate") or 0.0)
    if abscissa == 0 and ordinate == 0:
        abscissa = 1.0
    angle = math.atan2(ordinate, abscissa)
    to_crs = map_unit_m / _crs_unit_metres(crs)  # map units -> CRS axis units
    # world metres -> project units (/project_unit_m) -> map units (*scale) -> CRS units
    horizontal = scale / project_unit_m * to_crs
    vertical = scale / project_unit_m * map_unit_m  # heights are kept in metres
    offset = (
        float(values.get("Eastings") or 0.0) * to_crs,
        float(values.get("Northings") or 0.0) * to_crs,
        float(values.get("OrthogonalHeight") or 0.0) * map_unit_m,
    )
    matrix = similarity(scale=horizontal, z_scale=vertical, angle=angle, offset=offset)
    details = {
        "eastings": values.get("Eastings"),
        "northings": values.get("Northings"),
        "orthogonal_height": values.get("OrthogonalHeight"),
        "x_axis_abscissa": abscissa,
        "x_axis_ordinate": ordinate,
        "scale_in_file": values.get("Scale"),
        "scale_applied": scale,
        "project_unit_m": project_unit_m,
        "map_unit_m": map_unit_m,
    }
    return Placement(source=source, crs=crs, matrix=matrix, details=details)


def site_placement(site: SiteReference) -> Placement:
    """A local transverse Mercator at the site reference point: ENU metres, north-aligned."""
    crs = CRS.from_proj4(
        f"+proj=tmerc +lat_0={site.lat!r} +lon_0={site.lon!r} +k=1 +x_0=0 +y_0=0 "
        "+datum=WGS84 +units=m +no_defs"
    )
    # The model's +Y axis points TrueNorth; rotate the model so that direction becomes north.
    angle = -math.radians(site.true_north_deg)
    matrix = similarity(scale=1.0, z_scale=1.0, angle=angle, offset=(0.0, 0.0, site.elevation_m))
    details = {
        "site": site.name,
        "ref_latitude": site.lat,
        "ref_longitude": site.lon,
        "ref_elevation_m": site.elevation_m,
        "true_north_deg": site.true_north_deg,
    }
    return Placement(source="IfcSite", crs=crs, matrix=matrix, details=details)


def flag_placement(flags: Flags, storage_srid: int) -> Placement:
    """``--origin E,N[,H]`` + ``--rotation DEG`` (counter-clockwise from grid east) in --crs."""
    assert flags.origin is not None
    crs = parse_crs(flags.crs) if flags.crs else CRS.from_epsg(storage_srid)
    unit_m = _crs_unit_metres(crs)
    east, north, *rest = flags.origin
    height = rest[0] if rest else 0.0
    matrix = similarity(
        scale=1.0 / unit_m,
        z_scale=1.0,
        angle=math.radians(flags.rotation or 0.0),
        offset=(east, north, height),
    )
    details = {"origin": list(flags.origin), "rotation_deg": flags.rotation or 0.0}
    return Placement(source="--origin", crs=crs, matrix=matrix, details=details)


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    _, _, metres = Geod(ellps="WGS84").inv(a[0], a[1], b[0], b[1])
    return float(metres)


def resolve_placement(ifc: Any, *, flags: Flags, storage_srid: int) -> Placement:
    """The placement to use, with warnings about disagreeing or suspicious sources."""
    import ifcopenshell.util.unit

    warnings: list[str] = []
    project_unit_m = float(ifcopenshell.util.unit.calculate_unit_scale(ifc))
    if flags.rotation is not None and flags.origin is None:
        raise InvalidInput("--rotation needs --origin E,N[,H]")
    candidates: list[Placement] = []
    for conversion in (map_conversion(ifc), pset_conversion(ifc)):
        if conversion is None:
            continue
        name = conversion.crs_name
        if flags.crs:
            if name and name.upper() != flags.crs.upper():
                warnings.append(
                    f"{conversion.source}: CRS {name!r} overridden by --crs {flags.crs}"
                )
            name = flags.crs
        if not name:
            if flags.origin is None:
                raise UnsupportedCRS(
                    f"the file has an {conversion.source} whose projected CRS has no name; "
                    "give its CRS with --crs EPSG:xxxx (or place the model with --origin)"
                )
            continue
        try:
            crs = parse_crs(name)
        except UnsupportedCRS:
            raise UnsupportedCRS(
                f"{conversion.source}: the CRS name {name!r} is not one pyproj knows; "
                "give the CRS with --crs EPSG:xxxx"
            ) from None
        map_unit_m = conversion.map_unit_m or project_unit_m
        candidates.append(
            _conversion_placement(
                source=conversion.source,
                crs=crs,
                values=conversion.values,
                project_unit_m=project_unit_m,
                map_unit_m=map_unit_m,
                warnings=warnings,
            )
        )
    site = site_reference(ifc, project_unit_m, warnings)
    if site is not None:
        candidates.append(site_placement(site))
    if flags.origin is not None:
        chosen = flag_placement(flags, storage_srid)
        if candidates:
            lon, lat = candidates[0].origin_lonlat()
            warnings.append(
                f"--origin overrides the file's own georeferencing ({candidates[0].source}, "
                f"origin at {lat:.5f}, {lon:.5f})"
            )
        candidates.insert(0, chosen)
    elif candidates:
        chosen = candidates[0]
    else:
        raise InvalidInput(
            "the file has no georeferencing (no IfcMapConversion, ePSet_MapConversion or "
            "IfcSite RefLatitude/RefLongitude); place it with --origin E,N[,H] "
            f"[--rotation DEG] [--crs EPSG:xxxx, default the storage CRS EPSG:{storage_srid}]"
        )
    _compare(candidates, site, warnings)
    if chosen.source != "--origin":  # --origin is checked where the geometry lands
        warnings += check_area_of_use(chosen, storage_srid, site)
    chosen.warnings = warnings
    return chosen


def _compare(candidates: list[Placement], site: SiteReference | None, warnings: list[str]) -> None:
    """Warn when sources disagree by more than 1 km; spot a site lat/lon missing its sign."""
    if len(candidates) < 2:
        return
    first = candidates[0]
    lon1, lat1 = first.origin_lonlat()
    for other in candidates[1:]:
        lon2, lat2 = other.origin_lonlat()
        metres = _distance_m((lon1, lat1), (lon2, lat2))
        if metres <= DISAGREEMENT_METRES:
            continue
        if first.source != "--origin":  # --origin is a deliberate override, already reported
            warnings.append(
                f"georeferencing sources disagree by {metres / 1000:.1f} km: {first.source} "
                f"puts the origin at {lat1:.5f}, {lon1:.5f}, {other.source} at "
                f"{lat2:.5f}, {lon2:.5f}; using {first.source}"
            )
        if other.source == "IfcSite" and site is not None:
            for what, flipped in (("RefLongitude", (-lon2, lat2)), ("RefLatitude", (lon2, -lat2))):
                if _distance_m((lon1, lat1), flipped) < 100 * DISAGREEMENT_METRES:
                    warnings.append(
                        f"IfcSite {what} looks wrong: with a minus sign it would lie within "
                        f"{_distance_m((lon1, lat1), flipped) / 1000:.0f} km of {first.source}"
                    )


def _outside_by(bounds: tuple[float, float, float, float], lon: float, lat: float) -> float:
    west, south, east, north = bounds
    return max(west - lon, lon - east, south - lat, lat - north, 0.0)


def check_area_of_use(
    placement: Placement,
    storage_srid: int,
    site: SiteReference | None = None,
    at: npt.NDArray[np.float64] | None = None,
) -> list[str]:
    """Refuse reprojecting a model far outside the storage CRS's area of use; else warn.

    Coordinates already in the storage CRS are kept as given (nothing is distorted by us).
    """
    storage = CRS.from_epsg(storage_srid)
    area = storage.area_of_use
    if area is None:
        return []
    lon, lat = placement.origin_lonlat(at)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise UnsupportedCRS(f"the model's origin cannot be placed in {crs_label(placement.crs)}")
    outside = _outside_by(area.bounds, lon, lat)
    if outside == 0:
        return []
    hint = ""
    if site is not None and placement.source == "IfcSite":
        for flipped_lon, flipped_lat, what in (
            (-lon, lat, "RefLongitude"),
            (lon, -lat, "RefLatitude"),
        ):
            if _outside_by(area.bounds, flipped_lon, flipped_lat) == 0:
                hint = f"; the IfcSite {what} may be missing its minus sign"
    where = (
        f"the model ({placement.source}) lies at {lat:.5f}, {lon:.5f}, "
        f"{outside:.2f} degrees outside the area of use of the storage CRS EPSG:{storage_srid} "
        f"({area.name}){hint}"
    )
    same_crs = horizontal_crs(placement.crs).to_epsg() == storage_srid
    if outside > AREA_OF_USE_SLACK_DEGREES and not same_crs:
        raise UnsupportedCRS(
            f"{where}; use a database whose CIM_SRID covers the site, or place the model with "
            "--origin E,N[,H] (which overrides the file's georeferencing)"
        )
    return [where]


def check_model_extent(
    placement: Placement, vertex_blocks: list[npt.NDArray[np.float64]], storage_srid: int
) -> None:
    """Check where the geometry (not just the origin) lands; warnings go to the placement.

    Some exporters (CityGML converters, survey tools) write projected coordinates straight
    into the model and an IfcSite lat/lon beside them; adding the two would throw the model
    across the globe, so that is refused (``--origin 0,0 --crs EPSG:xxxx`` takes such
    coordinates as they are). A model placed with ``--origin`` is checked against the storage
    CRS's area of use at the centre of its geometry.
    """
    blocks = [block for block in vertex_blocks if len(block)]
    if not blocks:
        return
    low = np.min([block.min(axis=0) for block in blocks], axis=0)
    high = np.max([block.max(axis=0) for block in blocks], axis=0)
    centre = (low + high) / 2
    if placement.source == "--origin":
        placement.warnings += check_area_of_use(placement, storage_srid, at=centre)
        return
    distance = float(np.hypot(centre[0], centre[1]))
    if distance > MAP_COORDINATES_METRES:
        raise InvalidInput(
            f"the model's geometry lies {distance / 1000:.0f} km from its own origin "
            f"(centre {centre[0]:.1f}, {centre[1]:.1f}): these look like map coordinates, and "
            f"placing them with the {placement.source} reference would move them that far; "
            "if they are in a projected CRS, import with --origin 0,0 --crs EPSG:xxxx"
        )
