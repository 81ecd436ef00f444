"""Footprints (GeoJSON, GeoPackage, Shapefile) -> extruded LOD1 blocks for ``import_buildings``.

Each polygon (or multipolygon) becomes a block from ``base`` to ``base + height``: its roof and
floor triangulated with the project's earcut triangulation (holes kept), and one quad (two
triangles) per ring edge as walls; semantic classes RoofSurface, GroundSurface, WallSurface.
The YAML mapping (as for shelters and roads, see ``importers.vector_table``) names the fields::

    id: BLDG_ID                     # stable source id (default: row number)
    height: HEIGHT                  # metres; or
    floors: FLOORS                  # floors x storey_height (default 3.0 m)
    storey_height: 3.2
    base: BASE_Z                    # optional; else the finest DEM at the centroid, else 0
    function: USE
    year: BUILT

A row whose height (and floors) is missing or not positive, or whose polygon has no area, is
skipped and counted in the QC report; a mapping with neither ``height`` nor ``floors``, a
non-polygon geometry, a value that is not a number, a file without CRS (and no ``--crs``) or a
file outside the storage CRS's area refuses the whole import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS
from shapely.geometry.polygon import orient
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.terrain import heights_in_storage
from importers.citymodel.buildings import CityBuilding, SurfaceKey
from importers.citymodel.placement import check_area_of_use
from importers.citymodel.rows import PlacedBuilding
from importers.citymodel.triangulate import Triangles, triangulate_face
from importers.vector_table import VectorTable, is_missing, load_mapping, read_vector, to_float

FOOTPRINT_SUFFIXES = {".geojson", ".gpkg", ".shp", ".fgb"}
DEFAULT_STOREY_HEIGHT_M = 3.0
ID_NAMES = ("id", "fid", "gml_id", "identificatie")
LOD = "1"


def is_footprint_file(path: Path) -> bool:
    """Whether ``path`` is a footprint layer (by extension) rather than a city model."""
    return path.suffix.lower() in FOOTPRINT_SUFFIXES


@dataclass
class FootprintTally:
    """What a footprint import counts for the result and the QC report."""

    footprints: int = 0
    skipped_no_height: int = 0
    skipped_degenerate: int = 0
    base_from_field: int = 0
    base_from_terrain: int = 0
    base_zero_no_terrain: int = 0
    rows: list[tuple[CityBuilding, shapely.Geometry, float, float | None]] = field(
        default_factory=list
    )


def read_footprints(
    path: Path, mapping_path: Path | None, crs: str | None, srid: int, tally: FootprintTally
) -> str:
    """Read and validate ``path`` into ``tally.rows`` (before anything is written); its CRS."""
    mapping = load_mapping(mapping_path)
    if "height" not in mapping and "floors" not in mapping:
        raise InvalidInput(
            f"{path.name}: footprints need a mapping (--mapping) naming a height or floors field"
        )
    table = read_vector(path, storage_srid=srid, mapping=mapping, crs=crs)
    if len(table) == 0:
        raise InvalidInput(f"{path.name}: no features to import")
    kinds = set(shapely.get_type_id(table.geoms).tolist()) - {3, 6}
    if kinds:
        raise InvalidInput(f"{path.name}: footprints must be Polygons or MultiPolygons")
    _check_area(table.geoms, srid)
    heights = _heights(table, mapping)
    ids = table.column("id", ID_NAMES)
    bases = table.column("base")
    functions, years = table.column("function"), table.column("year")
    attrs = table.attrs(table.used_fields({k: () for k in ("id", "height", "floors", "base")}))
    floors = table.column("floors")
    for i, geom in enumerate(table.geoms):
        height = heights[i]
        if height is None or height <= 0:
            tally.skipped_no_height += 1
            continue
        facts = {
            "storeysAboveGround": _int(floors[i]),
            "function": None if is_missing(functions[i]) else str(functions[i]),
            "yearOfConstruction": _int(years[i]),
        }
        attributes = {**attrs[i], **{k: v for k, v in facts.items() if v is not None}}
        source_id = str(ids[i]) if not is_missing(ids[i]) else f"{path.stem}/{i + 1}"
        building = CityBuilding(source_id, "Building", None, attributes)
        base = to_float(bases[i], what="base", row=i)
        footprint = _polygonal(geom)
        if footprint.is_empty or footprint.area <= 0:
            tally.skipped_degenerate += 1
            continue
        tally.rows.append((building, footprint, height, base))
    return table.source_crs


def _heights(table: VectorTable, mapping: dict[str, Any]) -> list[float | None]:
    """Per row, the height: the height field, else floors x storey height (None if neither)."""
    storey = mapping.get("storey_height", DEFAULT_STOREY_HEIGHT_M)
    if isinstance(storey, bool) or not isinstance(storey, int | float) or storey <= 0:
        raise InvalidInput(f"mapping storey_height must be a positive number of metres: {storey!r}")
    given = table.column("height") if "height" in mapping else [None] * len(table)
    floors = table.column("floors") if "floors" in mapping else [None] * len(table)
    heights: list[float | None] = []
    for i in range(len(table)):
        height = to_float(given[i], what="height", row=i)
        count = to_float(floors[i], what="floors", row=i)
        if height is None and count is not None:
            height = count * float(storey)
        heights.append(height)
    return heights


def _int(value: Any) -> int | None:
    try:
        return None if is_missing(value) else int(float(value))
    except (TypeError, ValueError):
        return None


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """``geom`` as a valid MultiPolygon (an invalid ring is repaired, its polygonal part kept)."""
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    parts = shapely.get_parts(geom)
    return shapely.multipolygons(parts[shapely.get_type_id(parts) == 3])


def _check_area(geoms: npt.NDArray[np.object_], srid: int) -> None:
    """Refuse footprints whose centre (in storage CRS) lies far outside its area of use."""
    check_area_of_use(CRS.from_epsg(srid), srid, shapely.get_coordinates(geoms))


def place_footprints(session: Session, tally: FootprintTally) -> list[PlacedBuilding]:
    """Bases (field, else finest DEM at the centroid, else 0) and the extruded blocks."""
    missing = [i for i, row in enumerate(tally.rows) if row[3] is None]
    centroids = shapely.centroid([tally.rows[i][1] for i in missing])
    sampled = heights_in_storage(session, shapely.get_x(centroids), shapely.get_y(centroids))
    terrain = {i: z for i, (z, _) in zip(missing, sampled, strict=True)}
    placed = []
    for i, (building, footprint, height, given) in enumerate(tally.rows):
        base = given
        if base is not None:
            tally.base_from_field += 1
        elif terrain.get(i) is not None:
            base = terrain[i]
            tally.base_from_terrain += 1
        else:
            tally.base_zero_no_terrain += 1
        z0 = float(base or 0.0)
        placed.append(
            PlacedBuilding(
                source=building,
                surfaces=extrude(footprint, z0, z0 + height),
                footprint=footprint,
                base_z=z0,
                top_z=z0 + height,
                lods={LOD},
            )
        )
    tally.footprints += len(placed)
    tally.rows = []
    return placed


def extrude(footprint: shapely.Geometry, base: float, top: float) -> dict[SurfaceKey, Triangles]:
    """LOD1 block of a (multi)polygon: roof (normals up), ground (down), walls (outwards).

    Examples
    --------
    >>> block = extrude(shapely.box(0, 0, 2, 1), 0.0, 3.0)
    >>> [len(block[(LOD, s)]) for s in ("RoofSurface", "GroundSurface", "WallSurface")]
    [2, 2, 8]
    """
    roofs: list[Triangles] = []
    grounds: list[Triangles] = []
    walls: list[Triangles] = []
    for polygon in shapely.get_parts(footprint):
        polygon = orient(polygon, sign=1.0)  # exterior counter-clockwise, holes clockwise
        rings = [np.asarray(polygon.exterior.coords)[:-1, :2]]
        rings += [np.asarray(r.coords)[:-1, :2] for r in polygon.interiors]
        flat = _cap(rings)
        if flat is not None:
            roofs.append(_facing(flat, top, up=True))
            grounds.append(_facing(flat, base, up=False))
        walls.extend(_walls(ring, base, top) for ring in rings)
    found = {"RoofSurface": roofs, "GroundSurface": grounds, "WallSurface": walls}
    return {(LOD, k): np.concatenate(v) for k, v in found.items() if v}


def _cap(rings: list[npt.NDArray[np.float64]]) -> Triangles | None:
    """Triangles (z = 0) of a horizontal face with holes, by ``triangulate_face`` (earcut)."""
    vertices = np.column_stack([np.concatenate(rings), np.zeros(sum(len(r) for r in rings))])
    ends = np.cumsum([0] + [len(r) for r in rings])
    indices = [list(range(int(a), int(b))) for a, b in pairwise(ends)]
    result = triangulate_face(vertices, indices)
    return None if isinstance(result, str) else result


def _facing(triangles: Triangles, z: float, *, up: bool) -> Triangles:
    """``triangles`` at height ``z``, each wound so its normal points up (or down)."""
    placed = triangles.copy()
    placed[:, :, 2] = z
    a, b, c = placed[:, 0, :2], placed[:, 1, :2], placed[:, 2, :2]
    normal_z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = normal_z < 0 if up else normal_z > 0
    placed[flip] = placed[flip][:, ::-1]
    return placed


def _walls(ring: npt.NDArray[np.float64], base: float, top: float) -> Triangles:
    """Two triangles per edge of ``ring`` (a closed ring without its repeated end vertex)."""
    a = ring
    b = np.roll(ring, -1, axis=0)
    keep = np.any(a != b, axis=1)
    a, b = a[keep], b[keep]
    n = len(a)
    a0, b0 = np.column_stack([a, np.full(n, base)]), np.column_stack([b, np.full(n, base)])
    a1, b1 = np.column_stack([a, np.full(n, top)]), np.column_stack([b, np.full(n, top)])
    first = np.stack([a0, b0, b1], axis=1)
    second = np.stack([a0, b1, a1], axis=1)
    return np.concatenate([first, second])
