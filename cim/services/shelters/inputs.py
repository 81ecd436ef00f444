"""Inputs of a shelter plan: its parameters, the shelters (capacity, usability) and the pairs.

Straight-line pairs come from a GiST ``ST_DWithin`` join - unit points in an indexed temp table,
one probe per shelter with its level's radius - never from all pairs; each shelter's units come
back as one packed bytea, and distances are computed from the same coordinates (points by
``hypot``, site polygons by GEOS), equal to PostGIS's ``ST_Distance``. Along-road pairs
(``distance="network"``) come from one radius-limited Dijkstra per shelter on the road graph
(``cim.services.shelters.network``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import shapely
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import NotFound
from cim.services.roads.graph import FloatArray, IntArray, load_road_graph
from cim.services.shelters.levels import LevelDefaults, level_table
from cim.services.shelters.models import NetworkFigures, UnusableReason
from cim.services.shelters.network import network_pairs


class PlanParameters(BaseModel):
    """What a plan is computed from; every field has a documented default."""

    name: str | None = Field(None, description="A label for the plan.")
    shelter_datasets: list[int] | None = Field(None, description="Default: every shelter dataset.")
    population_datasets: list[int] | None = Field(None, description="Default: every one.")
    hazard_datasets: list[int] | None = Field(None, description="Default: every one.")
    radius_m: dict[str, float] = Field(
        default_factory=dict, description="Per-level service radius overrides (m)."
    )
    area_per_person_m2: dict[str, float] = Field(
        default_factory=dict,
        description="Per-level effective area per person overrides (m²); used for shelters "
        "whose capacity was derived from an effective area.",
    )
    distance: Literal["euclidean", "network"] = Field(
        "euclidean",
        description="'euclidean': straight line in the storage CRS; 'network': along the "
        "imported roads, with straight access legs to the nearest road counted in.",
    )
    road_datasets: list[int] | None = Field(
        None, description="Road datasets for distance 'network'. Default: every one."
    )
    access_max_m: float = Field(
        500.0,
        gt=0,
        description="Distance 'network': a unit or site farther than this from every road is "
        "not on the network (such a unit is out_of_reach).",
    )
    exclude_hazards: list[str] | None = Field(
        None,
        description="Hazard kinds whose zones make a shelter unusable; default: all kinds. A "
        "shelter with per-hazard designations (attrs.suitable_for) must be designated for "
        "every listed kind.",
    )
    split_units: bool = Field(
        True, description="Whether a unit's residents may go to several shelters."
    )
    time_limit_s: float = Field(60.0, gt=0, description="Solver time limit (whole units only).")

    @field_validator("exclude_hazards")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().lower() for v in value]


def _ids_clause(column: str, ids: list[int] | None, key: str, params: dict[str, Any]) -> str:
    if ids is None:
        return "TRUE"
    params[key] = list(ids)
    return f"{column} = ANY(:{key})"


def check_datasets(session: Session, kind: str, ids: list[int] | None) -> None:
    if not ids:
        return
    found = set(
        session.execute(
            text("SELECT id FROM dataset WHERE kind = :kind AND id = ANY(:ids)"),
            {"kind": kind, "ids": list(ids)},
        ).scalars()
    )
    missing = sorted(set(ids) - found)
    if missing:
        raise NotFound(f"no {kind} dataset with id {', '.join(map(str, missing))}")


@dataclass(frozen=True)
class ShelterInput:
    """A shelter as a plan sees it: capacity for this plan, radius of its level, usability."""

    id: int
    name: str | None
    level: str
    capacity: float | None
    radius_m: float
    hazards: list[str]
    """Hazard kinds whose zones it lies in, or the listed kinds it is not designated for."""
    unusable: UnusableReason | None
    xy: tuple[float, float]
    """Its point on surface in the storage CRS."""


class LoadedShelters(NamedTuple):
    """The shelters of a plan (by id) and the level table with the plan's overrides."""

    shelters: list[ShelterInput]
    levels: dict[str, LevelDefaults]


class UnitPoints(NamedTuple):
    """Population units of a plan in id order: id, persons and point on surface."""

    id: IntArray
    population: FloatArray
    x: FloatArray
    y: FloatArray


class Pairs(NamedTuple):
    """Unit-shelter pairs within reach: unit index, shelter id, distance (m)."""

    unit: IntArray
    shelter: IntArray
    distance: FloatArray


def load_shelters(session: Session, params: PlanParameters) -> LoadedShelters:
    """Shelters with plan capacity and usability; hazard kinds that exclude them."""
    levels = level_table(params.radius_m, params.area_per_person_m2)
    bind: dict[str, Any] = {}
    where = _ids_clause("s.dataset_id", params.shelter_datasets, "sh", bind)
    hazard_where = _ids_clause("h.dataset_id", params.hazard_datasets, "hz", bind)
    if params.exclude_hazards is not None:
        bind["kinds"] = params.exclude_hazards
        hazard_where += " AND h.kind = ANY(:kinds)"
    rows = session.execute(
        text(
            f"""
            SELECT s.id, s.name, s.level, s.capacity, s.effective_area,
                   s.attrs->>'capacity_source',
                   ST_X(ST_PointOnSurface(s.geom)), ST_Y(ST_PointOnSurface(s.geom)),
                   s.attrs->'suitable_for',
                   (SELECT array_agg(DISTINCT h.kind) FROM hazard_zone h
                     WHERE {hazard_where} AND ST_Intersects(h.geom, s.geom))
            FROM shelter s WHERE {where} ORDER BY s.id
            """
        ),
        bind,
    ).all()
    shelters = []
    for sid, name, level, capacity, area, source, x, y, suitable, hazards in rows:
        if source == "effective_area" and area is not None:
            capacity = area / levels[level].area_per_person_m2
        # A shelter that records its per-hazard designations (e.g. Japan's 指定緊急避難場所
        # flags) is unusable for a listed hazard it is not designated for.
        undesignated = (
            sorted(set(params.exclude_hazards) - set(suitable))
            if isinstance(suitable, list) and params.exclude_hazards
            else []
        )
        reason: UnusableReason | None = None
        if hazards:
            reason = "in_hazard_zone"
        elif undesignated:
            reason = "not_designated"
        elif capacity is None:
            reason = "no_capacity"
        shelters.append(
            ShelterInput(
                id=int(sid),
                name=name,
                level=level,
                capacity=capacity,
                radius_m=levels[level].radius_m,
                hazards=list(hazards or []) or undesignated,
                unusable=reason,
                xy=(float(x), float(y)),
            )
        )
    return LoadedShelters(shelters, levels)


def _ids_literal(column: str, ids: list[int] | None) -> str:
    # Inlined into the per-level pair queries; ids are ints validated by pydantic.
    return (
        "TRUE"
        if ids is None
        else f"{column} = ANY(ARRAY[{','.join(str(int(i)) for i in ids) or 'NULL'}]::bigint[])"
    )


def fetch_packed(session: Session, sql: str, dtype: list[tuple[str, str]]) -> np.ndarray:
    """Rows packed server-side as fixed-width big-endian bytes (``int8send``/``float8send``).

    Why: millions of rows as Python objects take seconds; ``sql`` returns one bytea per group
    (``string_agg(int8send(a) || float8send(b), ''::bytea)``) that numpy reads without a copy.
    """
    chunks = [bytes(value) for value in session.execute(text(sql)).scalars() if value]
    return np.frombuffer(b"".join(chunks), dtype=np.dtype(dtype))


def load_pairs(
    session: Session,
    params: PlanParameters,
    shelters: list[ShelterInput],
    radius: dict[str, float],
) -> tuple[UnitPoints, Pairs, NetworkFigures | None]:
    """Units (id, population, point), the unit-shelter pairs within each level's radius, and
    figures of the road network used (None for straight lines).

    Unit points go to an indexed temp table; each shelter then probes it with its level's
    radius (GiST ``ST_DWithin``); each shelter's units come back as one packed bytea.
    """
    unit_where = _ids_literal("dataset_id", params.population_datasets)
    shelter_where = _ids_literal("s.dataset_id", params.shelter_datasets)
    session.execute(text("DROP TABLE IF EXISTS shelter_plan_unit_point"))
    session.execute(
        text(
            f"""
            CREATE TEMP TABLE shelter_plan_unit_point ON COMMIT DROP AS
            SELECT (row_number() OVER (ORDER BY id)) - 1 AS idx, id, population,
                   ST_PointOnSurface(geom) AS pt
            FROM population_unit WHERE {unit_where}
            """
        )
    )
    session.execute(text("CREATE INDEX ON shelter_plan_unit_point USING gist (pt)"))
    session.execute(text("ANALYZE shelter_plan_unit_point"))
    packed = fetch_packed(
        session,
        "SELECT string_agg(int8send(id) || float8send(population) || float8send(ST_X(pt))"
        " || float8send(ST_Y(pt)), ''::bytea ORDER BY idx) FROM shelter_plan_unit_point",
        [("id", ">i8"), ("population", ">f8"), ("x", ">f8"), ("y", ">f8")],
    )
    units = UnitPoints(
        id=packed["id"].astype(np.int64),
        population=packed["population"].astype(np.float64),
        x=packed["x"].astype(np.float64),
        y=packed["y"].astype(np.float64),
    )
    if params.distance == "network":
        pairs, network = _network_pairs(session, params, shelters, radius, units)
        return units, pairs, network
    unit_chunks: list[np.ndarray] = []
    shelter_chunks: list[np.ndarray] = []
    for level in sorted({s.level for s in shelters}):
        rows = session.execute(
            text(
                f"""
                SELECT s.id, string_agg(int4send(u.idx::int), ''::bytea)
                FROM shelter s JOIN shelter_plan_unit_point u
                  ON ST_DWithin(s.geom, u.pt, {float(radius[level])!r})
                WHERE s.level = '{level}' AND {shelter_where} AND u.population > 0
                GROUP BY s.id
                """
            )
        ).all()
        for shelter_id, packed_units in rows:
            members = np.frombuffer(bytes(packed_units), dtype=">i4").astype(np.int64)
            unit_chunks.append(members)
            shelter_chunks.append(np.full(len(members), int(shelter_id), dtype=np.int64))
    unit = np.concatenate(unit_chunks) if unit_chunks else np.zeros(0, dtype=np.int64)
    shelter = np.concatenate(shelter_chunks) if shelter_chunks else np.zeros(0, dtype=np.int64)
    return units, Pairs(unit, shelter, _distances(session, units, unit, shelter)), None


def _network_pairs(
    session: Session,
    params: PlanParameters,
    shelters: list[ShelterInput],
    radius: dict[str, float],
    units: UnitPoints,
) -> tuple[Pairs, NetworkFigures]:
    """Pairs within each level's radius along the roads (see ``cim.services.shelters.network``)."""
    started = time.perf_counter()
    graph, cached = load_road_graph(session, params.road_datasets)
    loaded_s = time.perf_counter() - started
    ids = [s.id for s in shelters]
    rows = session.execute(
        text("SELECT id, ST_AsBinary(geom) FROM shelter WHERE id = ANY(:ids) ORDER BY id"),
        {"ids": ids},
    ).all()
    geometry = {int(r[0]): bytes(r[1]) for r in rows}
    sites = np.asarray(shapely.from_wkb([geometry[i] for i in ids]), dtype=object).reshape(-1)
    found = network_pairs(
        graph,
        np.column_stack([units.x, units.y]),
        sites,
        np.array([radius[s.level] for s in shelters], dtype=np.float64),
        access_max_m=params.access_max_m,
        units_mask=units.population > 0,
    )
    pairs = Pairs(found.unit, np.asarray(ids, dtype=np.int64)[found.site], found.distance)
    info: NetworkFigures = {
        "road_datasets": [version[0] for version in graph.datasets],
        "access_max_m": params.access_max_m,
        "graph": {
            "segments": graph.segment_count,
            "nodes": graph.node_count,
            "cached": cached,
            "load_seconds": round(loaded_s, 3),
        },
        **found.stats,
    }
    return pairs, info


def _distances(
    session: Session, units: UnitPoints, unit: IntArray, shelter: IntArray
) -> FloatArray:
    """Straight-line distance of each pair, unit point to shelter site (0 inside a polygon).

    The same Euclidean distance PostGIS's ST_Distance gives, computed here from the fetched
    coordinates: points by ``hypot``, site polygons by GEOS.
    """
    distance = np.zeros(len(unit), dtype=np.float64)
    ids = np.unique(shelter)
    if len(ids) == 0:
        return distance
    rows = session.execute(
        text("SELECT id, ST_AsBinary(geom) FROM shelter WHERE id = ANY(:ids) ORDER BY id"),
        {"ids": ids.tolist()},
    ).all()
    geoms = np.asarray(shapely.from_wkb([bytes(r[1]) for r in rows]), dtype=object)
    position = np.searchsorted(ids, shelter)
    is_point = shapely.get_type_id(geoms) == 0
    xs = np.where(is_point, shapely.get_x(geoms), np.nan)
    ys = np.where(is_point, shapely.get_y(geoms), np.nan)
    point_pairs = is_point[position]
    distance[point_pairs] = np.hypot(
        units.x[unit[point_pairs]] - xs[position[point_pairs]],
        units.y[unit[point_pairs]] - ys[position[point_pairs]],
    )
    other = ~point_pairs
    if other.any():
        distance[other] = shapely.distance(
            shapely.points(units.x[unit[other]], units.y[unit[other]]),
            geoms[position[other]],
        )
    return distance
