"""Shelter zoning plans: inputs from the database, the optimal capacitated assignment, storage.

A plan assigns every resident to a usable shelter within the service radius of its level that
has room: first the covered population is maximised, then the total person-distance
(``cim.services.shelter_solver``). Candidate unit-shelter pairs come from a GiST ``ST_DWithin``
join, one query per level with that level's radius, never from all pairs. A shelter is unusable
when its site intersects a zone of an excluded hazard kind, or when its capacity is unknown.
Uncovered persons keep a reason: ``out_of_reach`` (no shelter within reach), ``in_hazard_zone``
(only hazard-excluded or not-designated shelters within reach) or ``over_capacity`` (usable
shelters within reach are full). Distances are straight lines in the (metric) storage CRS
from a unit's point on surface to the shelter site (0 inside a site polygon).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import shapely
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cim.crs import parse_crs
from cim.db import migrate
from cim.db.copy import copy_rows
from cim.db.models import ShelterPlan
from cim.errors import InvalidInput, NotFound
from cim.services.shelter_levels import level_table
from cim.services.shelter_solver import PairProblem, solve_split, solve_unsplit
from cim.services.shelter_zones import build_zones

Progress = Callable[[str], None]
REASONS = ("out_of_reach", "in_hazard_zone", "over_capacity")


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
    distance: Literal["euclidean"] = Field(
        "euclidean", description="Straight-line distance in the storage CRS."
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


def _check_datasets(session: Session, kind: str, ids: list[int] | None) -> None:
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


def load_shelters(session: Session, params: PlanParameters) -> dict[str, Any]:
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
        reason = None
        if hazards:
            reason = "in_hazard_zone"
        elif undesignated:
            reason = "not_designated"
        elif capacity is None:
            reason = "no_capacity"
        shelters.append(
            {
                "id": int(sid),
                "name": name,
                "level": level,
                "capacity": capacity,
                "radius_m": levels[level].radius_m,
                "hazards": list(hazards or []) or undesignated,
                "unusable": reason,
                "xy": (float(x), float(y)),
            }
        )
    return {"shelters": shelters, "levels": levels}


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
    shelters: list[dict[str, Any]],
    radius: dict[str, float],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Units (id, population, point) and the unit-shelter pairs within each level's radius.

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
    units = {
        key: packed[key].astype(np.int64 if key == "id" else np.float64)
        for key in packed.dtype.names or ()
    }
    unit_chunks: list[np.ndarray] = []
    shelter_chunks: list[np.ndarray] = []
    for level in sorted({s["level"] for s in shelters}):
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
    pairs = {
        "unit": unit,
        "shelter": shelter,
        "distance": _distances(session, units, unit, shelter),
    }
    return units, pairs


def _distances(
    session: Session,
    units: dict[str, np.ndarray],
    unit: np.ndarray,
    shelter: np.ndarray,
) -> np.ndarray:
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
        units["x"][unit[point_pairs]] - xs[position[point_pairs]],
        units["y"][unit[point_pairs]] - ys[position[point_pairs]],
    )
    other = ~point_pairs
    if other.any():
        distance[other] = shapely.distance(
            shapely.points(units["x"][unit[other]], units["y"][unit[other]]),
            geoms[position[other]],
        )
    return distance


def _require_metric(session: Session) -> int:
    srid = migrate.recorded_srid(session.connection())
    if srid is None:
        raise InvalidInput("the database has no cim schema")
    crs = parse_crs(srid)
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise InvalidInput(f"shelter planning needs a metric storage CRS, not EPSG:{srid}")
    return srid


def create_plan(
    session: Session, *, params: PlanParameters, progress: Progress | None = None
) -> dict[str, Any]:
    """Solve and store a plan; returns its summary (see :func:`plan_summary`)."""
    note = progress or (lambda _message: None)
    started = time.perf_counter()
    srid = _require_metric(session)
    _check_datasets(session, "shelters", params.shelter_datasets)
    _check_datasets(session, "population", params.population_datasets)
    _check_datasets(session, "hazards", params.hazard_datasets)
    note("loading shelters and hazards")
    loaded = load_shelters(session, params)
    shelters, levels = loaded["shelters"], loaded["levels"]
    if not shelters:
        raise InvalidInput("no shelters to plan with: import some with `cim import shelters`")
    radius = {level: value.radius_m for level, value in levels.items()}
    note("finding unit-shelter pairs within reach")
    units, all_pairs = load_pairs(session, params, shelters, radius)
    if len(units["id"]) == 0:
        raise InvalidInput("no population units: import some with `cim import population`")
    query_s = time.perf_counter() - started
    n_units = len(units["id"])
    usable_list = [s for s in shelters if s["unusable"] is None]
    shelter_ids = np.array([s["id"] for s in shelters], dtype=np.int64)
    order = np.argsort(shelter_ids)
    usable_index = np.full(len(shelters), -1, dtype=np.int64)
    usable_index[[j for j, s in enumerate(shelters) if s["unusable"] is None]] = np.arange(
        len(usable_list)
    )
    hazard_reasons = ("in_hazard_zone", "not_designated")
    blocked = np.array([s["unusable"] in hazard_reasons for s in shelters], dtype=bool)
    position = order[np.searchsorted(shelter_ids, all_pairs["shelter"], sorter=order)]
    keep = usable_index[position] >= 0
    reach_usable = np.zeros(n_units, dtype=bool)
    reach_usable[all_pairs["unit"][keep]] = True
    reach_hazard = np.zeros(n_units, dtype=bool)
    reach_hazard[all_pairs["unit"][blocked[position]]] = True
    problem = PairProblem(
        demand=units["population"].clip(min=0),
        capacity=np.array([s["capacity"] for s in usable_list], dtype=np.float64),
        pair_unit=all_pairs["unit"][keep].astype(np.int64),
        pair_shelter=usable_index[position][keep],
        pair_distance=all_pairs["distance"][keep].astype(np.float64),
    )
    kept = problem.pair_unit
    note(f"solving {len(units['id'])} units x {len(usable_list)} shelters ({len(kept)} pairs)")
    solution = (
        solve_split(problem)
        if params.split_units
        else solve_unsplit(problem, time_limit_s=params.time_limit_s)
    )
    note("storing the plan")
    store_started = time.perf_counter()
    plan = ShelterPlan(name=params.name, parameters=params.model_dump(mode="json"), stats={})
    session.add(plan)
    session.flush()
    used = solution.flow > 0
    assigned = np.bincount(
        problem.pair_unit[used], weights=solution.flow[used], minlength=len(units["id"])
    )
    uncovered = np.where(problem.demand - assigned > 1e-9, problem.demand - assigned, 0.0)
    reason = np.where(
        reach_usable, "over_capacity", np.where(reach_hazard, "in_hazard_zone", "out_of_reach")
    )
    usable_ids = np.array([s["id"] for s in usable_list], dtype=np.int64)
    picked = np.flatnonzero(used)
    assignment_rows = zip(
        usable_ids[problem.pair_shelter[picked]].tolist(),
        units["id"][problem.pair_unit[picked]].tolist(),
        solution.flow[picked].tolist(),
        problem.pair_distance[picked].tolist(),
        strict=True,
    )
    open_units = np.flatnonzero(uncovered > 0)
    uncovered_rows = zip(
        units["id"][open_units].tolist(),
        uncovered[open_units].tolist(),
        reason[open_units].tolist(),
        strict=True,
    )
    copy_rows(
        session,
        table="shelter_assignment",
        columns=["plan_id", "shelter_id", "unit_id", "persons", "distance_m", "reason"],
        rows=(
            *(
                [plan.id, sid, uid, persons, distance, None]
                for sid, uid, persons, distance in assignment_rows
            ),
            *([plan.id, None, uid, persons, None, why] for uid, persons, why in uncovered_rows),
        ),
    )
    load = np.bincount(
        problem.pair_shelter[used], weights=solution.flow[used], minlength=len(usable_list)
    )
    store_s = time.perf_counter() - store_started
    note("building zones")
    zones_started = time.perf_counter()
    # Point units are already known from their coordinates; fetch only the polygons.
    unit_geoms = np.asarray(shapely.points(units["x"], units["y"]), dtype=object)
    polygons = session.execute(
        text(
            "SELECT t.idx, ST_AsBinary(p.geom) FROM shelter_plan_unit_point t "
            "JOIN population_unit p ON p.id = t.id WHERE GeometryType(p.geom) <> 'POINT'"
        )
    ).all()
    if polygons:
        unit_geoms[[int(r[0]) for r in polygons]] = shapely.from_wkb(
            [bytes(r[1]) for r in polygons]
        )
    zones = build_zones(
        unit_geoms,
        problem.pair_unit[used],
        problem.pair_shelter[used],
        solution.flow[used],
        uncovered,
        np.array([s["xy"] for s in usable_list], dtype=np.float64).reshape(-1, 2),
    )
    copy_rows(
        session,
        table="shelter_zone",
        columns=["plan_id", "shelter_id", "geom", "population", "capacity", "load_ratio"],
        rows=(
            [
                plan.id,
                s["id"],
                _ewkb(zones[j], srid),
                float(load[j]),
                s["capacity"],
                float(load[j] / s["capacity"]) if s["capacity"] else None,
            ]
            for j, s in enumerate(usable_list)
        ),
    )
    zones_s = time.perf_counter() - zones_started
    total = float(problem.demand.sum())
    by_reason = {r: float(uncovered[reason == r].sum()) for r in REASONS}
    covered_d = problem.pair_distance[used]
    plan.stats = {
        "population": total,
        "covered": solution.covered,
        "uncovered": float(uncovered.sum()),
        "uncovered_by_reason": by_reason,
        "coverage_ratio": solution.covered / total if total else None,
        "person_distance_m": solution.person_distance,
        "mean_distance_m": solution.person_distance / solution.covered
        if solution.covered
        else None,
        "max_distance_m": float(covered_d.max()) if len(covered_d) else None,
        "units": len(units["id"]),
        "split_units": int(
            (np.bincount(problem.pair_unit[used], minlength=len(units["id"])) > 1).sum()
        ),
        "shelters": len(shelters),
        "usable_shelters": len(usable_list),
        "unusable_shelters": {
            str(s["id"]): {"name": s["name"], "reason": s["unusable"], "hazards": s["hazards"]}
            for s in shelters
            if s["unusable"]
        },
        "capacity": float(problem.capacity.sum()),
        "full_shelters": int((load >= problem.capacity - 1e-6).sum()),
        "pairs": len(kept),
        "solver": {
            "method": solution.method,
            "status": solution.status,
            "gap": solution.gap,
            "seconds": round(solution.seconds, 3),
        },
        "seconds": {
            "query": round(query_s, 3),
            "store": round(store_s, 3),
            "zones": round(zones_s, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        "levels": {
            k: {"radius_m": v.radius_m, "area_per_person_m2": v.area_per_person_m2}
            for k, v in levels.items()
        },
    }
    session.flush()
    return plan_summary(session, plan_id=plan.id)


def _ewkb(geom: Any, srid: int) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geom, srid), hex=True, include_srid=True))


def plan_summary(session: Session, *, plan_id: int) -> dict[str, Any]:
    """A plan's parameters, statistics and per-shelter load (no geometries)."""
    plan = session.get(ShelterPlan, plan_id)
    if plan is None:
        raise NotFound(f"no shelter plan {plan_id}")
    shelters = session.execute(
        text(
            """
            SELECT z.shelter_id, s.name, s.level, z.population, z.capacity, z.load_ratio,
                   ST_Area(z.geom)
            FROM shelter_zone z JOIN shelter s ON s.id = z.shelter_id
            WHERE z.plan_id = :plan ORDER BY z.shelter_id
            """
        ),
        {"plan": plan_id},
    ).all()
    return {
        "id": plan.id,
        "name": plan.name,
        "created_at": plan.created_at.isoformat() if plan.created_at else None,
        "parameters": plan.parameters,
        "stats": plan.stats,
        "shelters": [
            {
                "shelter_id": int(r[0]),
                "name": r[1],
                "level": r[2],
                "population": r[3],
                "capacity": r[4],
                "load_ratio": r[5],
                "zone_area_m2": r[6],
            }
            for r in shelters
        ],
    }


def latest_plan_id(session: Session) -> int:
    """The newest plan's id; NotFound when there is none."""
    plan_id = session.scalar(select(ShelterPlan.id).order_by(ShelterPlan.id.desc()).limit(1))
    if plan_id is None:
        raise NotFound("no shelter plan yet: create one with `cim analyse shelters`")
    return int(plan_id)


def list_plans(session: Session) -> list[dict[str, Any]]:
    """Every plan, newest first, with its headline figures."""
    plans = session.scalars(select(ShelterPlan).order_by(ShelterPlan.id.desc())).all()
    return [
        {
            "id": p.id,
            "name": p.name,
            "created_at": p.created_at.isoformat(),
            "coverage_ratio": p.stats.get("coverage_ratio"),
            "population": p.stats.get("population"),
        }
        for p in plans
    ]
