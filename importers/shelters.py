"""Import shelters, population units and hazard zones (the inputs of shelter zoning).

Each reader maps the file's fields with an optional YAML mapping (see ``importers.vector_table``),
validates every row before anything is written, then COPYs the rows inside ``run_import``'s one
transaction. Shelter capacity is the given capacity, else effective area / per-capita area of
the shelter's level (``cim.services.shelters.levels``); a shelter with neither is kept with a NULL
capacity and a warning (a plan cannot use it).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from cim.errors import InvalidInput
from cim.services.shelters.levels import DEFAULT_LEVELS, normalise_level
from importers.base import WriteOutcome
from importers.vector_table import TableRows, VectorImport, VectorTable, is_missing, to_float

SHELTER_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("名称", "施設・場所名", "title"),
    "level": ("类型", "type_level"),
    "capacity": ("cap", "shel_cap", "容量", "避难人数"),
    "effective_area": ("area", "有效面积", "有效避难面积"),
    "suitable_for": (),
}
POPULATION_FIELDS: dict[str, tuple[str, ...]] = {
    "code": ("id", "geoid", "block_id"),
    "population": ("pop", "人口", "pop2000"),
}
HAZARD_FIELDS: dict[str, tuple[str, ...]] = {
    "kind": ("type", "hazard", "类型"),
    "severity": ("level", "grade", "zone"),
}


def _ewkb(geom: Any, srid: int) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geom, srid), hex=True, include_srid=True))


def _build_shelters(table: VectorTable, srid: int) -> TableRows:
    if not table.has("level", SHELTER_FIELDS["level"]):
        raise InvalidInput(
            "the file has no shelter level field; map one (level: FIELD) or set a constant "
            "(level: {value: short}) in --mapping"
        )
    names = table.column("name", SHELTER_FIELDS["name"])
    raw_levels = table.column("level", SHELTER_FIELDS["level"])
    capacities = table.column("capacity", SHELTER_FIELDS["capacity"])
    areas = table.column("effective_area", SHELTER_FIELDS["effective_area"])
    suitable = table.flags("suitable_for")
    attrs = table.attrs(table.used_fields(SHELTER_FIELDS))
    rows: list[list[Any]] = []
    levels: dict[str, int] = {}
    no_capacity: list[str] = []
    for i, geom in enumerate(table.geoms):
        if is_missing(raw_levels[i]):
            raise InvalidInput(f"row {i + 1}: no shelter level")
        level = normalise_level(raw_levels[i])
        capacity = to_float(capacities[i], what="capacity", row=i)
        area = to_float(areas[i], what="effective area", row=i)
        extra = dict(attrs[i])
        if capacity is not None:
            extra["capacity_source"] = "given"
        elif area is not None:
            capacity = area / DEFAULT_LEVELS[level].area_per_person_m2
            extra["capacity_source"] = "effective_area"
        else:
            no_capacity.append(str(names[i] or f"row {i + 1}"))
        if capacity is not None and capacity < 0:
            raise InvalidInput(f"row {i + 1}: negative capacity {capacity}")
        if table.mapping.get("suitable_for"):
            extra["suitable_for"] = suitable[i]
        geom = shapely.make_valid(geom) if not shapely.is_valid(geom) else geom
        if not isinstance(geom, shapely.Point | shapely.Polygon | shapely.MultiPolygon):
            geom = _polygonal(geom) or shapely.centroid(geom)
        levels[level] = levels.get(level, 0) + 1
        rows.append(
            [
                None if is_missing(names[i]) else str(names[i]),
                level,
                _ewkb(geom, srid),
                area,
                capacity,
                json.dumps(extra, ensure_ascii=False),
            ]
        )
    warnings = (
        [
            f"{len(no_capacity)} shelter(s) have neither capacity nor effective area and cannot be "
            f"used by a plan: {', '.join(no_capacity[:10])}"
        ]
        if no_capacity
        else []
    )
    total = sum(r[4] for r in rows if r[4] is not None)
    outcome = WriteOutcome(
        counts={"shelters": len(rows), "by_level": levels, "capacity": total},
        qc={"without_capacity": len(no_capacity)},
        warnings=warnings,
    )
    return (
        "shelter",
        ["name", "level", "geom", "effective_area", "capacity", "attrs"],
        rows,
        outcome,
    )


def _build_population(table: VectorTable, srid: int) -> TableRows:
    if not table.has("population", POPULATION_FIELDS["population"]):
        raise InvalidInput(
            f"the file has no population field; map one with population: FIELD in --mapping "
            f"(fields: {', '.join(table.fields)})"
        )
    codes = table.column("code", POPULATION_FIELDS["code"])
    people = table.column("population", POPULATION_FIELDS["population"])
    attrs = table.attrs(table.used_fields(POPULATION_FIELDS))
    rows: list[list[Any]] = []
    missing = 0
    for i, geom in enumerate(table.geoms):
        count = to_float(people[i], what="population", row=i)
        if count is None:
            missing += 1
            count = 0.0
        if count < 0:
            raise InvalidInput(f"row {i + 1}: negative population {count}")
        if not isinstance(geom, shapely.Point):
            geom = _polygonal(geom)
            if geom is None:
                raise InvalidInput(f"row {i + 1}: a population unit must be a polygon or a point")
        rows.append(
            [
                None if is_missing(codes[i]) else str(codes[i]),
                _ewkb(geom, srid),
                count,
                json.dumps(attrs[i], ensure_ascii=False),
            ]
        )
    total = float(sum(r[2] for r in rows))
    warnings = [f"{missing} unit(s) without a population count, stored as 0"] if missing else []
    outcome = WriteOutcome(
        counts={"units": len(rows), "population": total},
        qc={"without_population": missing},
        warnings=warnings,
    )
    return "population_unit", ["code", "geom", "population", "attrs"], rows, outcome


def _build_hazards(table: VectorTable, srid: int) -> TableRows:
    if not table.has("kind", HAZARD_FIELDS["kind"]):
        raise InvalidInput(
            "the file has no hazard kind field; map one (kind: FIELD) or set a constant "
            "(kind: {value: flood}) in --mapping"
        )
    kinds = table.column("kind", HAZARD_FIELDS["kind"])
    severities = table.column("severity", HAZARD_FIELDS["severity"])
    attrs = table.attrs(table.used_fields(HAZARD_FIELDS))
    rows: list[list[Any]] = []
    by_kind: dict[str, int] = {}
    for i, geom in enumerate(table.geoms):
        if is_missing(kinds[i]):
            raise InvalidInput(f"row {i + 1}: no hazard kind")
        kind = str(kinds[i]).strip().lower()
        polygon = _polygonal(geom)
        if polygon is None:
            raise InvalidInput(f"row {i + 1}: a hazard zone must be a polygon")
        by_kind[kind] = by_kind.get(kind, 0) + 1
        rows.append(
            [
                kind,
                None if is_missing(severities[i]) else str(severities[i]),
                _ewkb(_as_multi(polygon), srid),
                json.dumps(attrs[i], ensure_ascii=False),
            ]
        )
    outcome = WriteOutcome(counts={"zones": len(rows), "by_kind": by_kind})
    return "hazard_zone", ["kind", "severity", "geom", "attrs"], rows, outcome


import_shelters = VectorImport("shelters", _build_shelters)
"""Import a shelter layer: name, level, site geometry, capacity or effective area."""
import_population = VectorImport("population", _build_population)
"""Import population units (polygons or points) with their resident count."""
import_hazards = VectorImport("hazards", _build_hazards)
"""Import hazard zones (polygons) with their kind (flood, fault, landslide, fire ...)."""


def _polygonal(geom: Any) -> Any:
    """The (valid) polygonal part of ``geom``, or None when it has none."""
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    if isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
        return geom
    if isinstance(geom, shapely.GeometryCollection):
        parts: npt.NDArray[np.object_] = np.asarray(
            [
                g
                for g in shapely.get_parts(geom)
                if isinstance(g, shapely.Polygon | shapely.MultiPolygon)
            ],
            dtype=object,
        )
        return shapely.union_all(parts) if len(parts) else None
    return None


def _as_multi(geom: Any) -> Any:
    return shapely.MultiPolygon([geom]) if isinstance(geom, shapely.Polygon) else geom
