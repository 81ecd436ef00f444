"""Shelter zoning plans: inputs from the database, the optimal capacitated assignment, storage.

A plan assigns every resident to a usable shelter within the service radius of its level that
has room: first the covered population is maximised, then the total person-distance
(``cim.services.shelter_solver``). Candidate unit-shelter pairs come from a GiST ``ST_DWithin``
join, one query per level with that level's radius, never from all pairs. A shelter is unusable
when its site intersects a zone of an excluded hazard kind, or when its capacity is unknown.
Uncovered persons keep a reason: ``out_of_reach`` (no shelter within reach), ``in_hazard_zone``
(only hazard-excluded shelters within reach) or ``over_capacity`` (usable shelters within reach
are full). Distances are straight lines in the (metric) storage CRS from a unit's point on
surface to the shelter site (0 inside a site polygon).
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
        None, description="Hazard kinds whose zones make a shelter unusable; default: all kinds."
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
                   (SELECT array_agg(DISTINCT h.kind) FROM hazard_zone h
                     WHERE {hazard_where} AND ST_Intersects(h.geom, s.geom))
            FROM shelter s WHERE {where} ORDER BY s.id
            """
        ),
        bind,
    ).all()
    shelters = []
    for sid, name, level, capacity, area, source, hazards in rows:
        if source == "effective_area" and area is not None:
            capacity = area / levels[level].area_per_person_m2
        reason = None
        if hazards:
            reason = "in_hazard_zone"
        elif capacity is None:
            reason = "no_capacity"
        shelters.append(
            {
                "id": int(sid),
                "name": name,
                "level": level,
                "capacity": capacity,
                "radius_m": levels[level].radius_m,
                "hazards": list(hazards or []),
                "unusable": reason,
            }
        )
    return {"shelters": shelters, "levels": levels}


def load_pairs(
    session: Session,
    params: PlanParameters,
    shelters: list[dict[str, Any]],
    radius: dict[str, float],
) -> tuple[dict[str, np.ndarray], list[tuple[int, int, float]]]:
    """Units (id, population) and the unit-shelter pairs within each level's radius."""
    bind: dict[str, Any] = {}
    unit_where = _ids_clause("dataset_id", params.population_datasets, "pop", bind)
    shelter_where = _ids_clause("s.dataset_id", params.shelter_datasets, "sh", bind)
    session.execute(text("DROP TABLE IF EXISTS shelter_plan_unit_point"))
    session.execute(
        text(
            f"""
            CREATE TEMP TABLE shelter_plan_unit_point ON COMMIT DROP AS
            SELECT id, population, ST_PointOnSurface(geom) AS pt
            FROM population_unit WHERE {unit_where}
            """
        ),
        bind,
    )
    units = session.execute(
        text("SELECT id, population FROM shelter_plan_unit_point ORDER BY id")
    ).all()
    pairs: list[tuple[int, int, float]] = []
    for level in sorted({s["level"] for s in shelters}):
        bind["level"], bind["radius"] = level, radius[level]
        pairs.extend(
            session.execute(
                text(
                    f"""
                    SELECT u.id, s.id, ST_Distance(u.pt, s.geom)
                    FROM shelter_plan_unit_point u
                    JOIN shelter s ON ST_DWithin(u.pt, s.geom, :radius)
                    WHERE s.level = :level AND {shelter_where} AND u.population > 0
                    """
                ),
                bind,
            ).all()
        )
    unit_ids = np.array([u[0] for u in units], dtype=np.int64)
    population = np.array([u[1] for u in units], dtype=np.float64)
    return {"id": unit_ids, "population": population}, pairs


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
    unit_index = {int(u): i for i, u in enumerate(units["id"])}
    usable = {s["id"]: j for j, s in enumerate(s for s in shelters if s["unusable"] is None)}
    usable_list = [s for s in shelters if s["unusable"] is None]
    hazard_blocked = {s["id"] for s in shelters if s["unusable"] == "in_hazard_zone"}
    reach_usable = np.zeros(len(units["id"]), dtype=bool)
    reach_hazard = np.zeros(len(units["id"]), dtype=bool)
    kept = []
    for unit_id, shelter_id, distance in all_pairs:
        i = unit_index[int(unit_id)]
        if shelter_id in usable:
            reach_usable[i] = True
            kept.append((i, usable[shelter_id], float(distance)))
        elif shelter_id in hazard_blocked:
            reach_hazard[i] = True
    problem = PairProblem(
        demand=units["population"].clip(min=0),
        capacity=np.array([s["capacity"] for s in usable_list], dtype=np.float64),
        pair_unit=np.array([p[0] for p in kept], dtype=np.int64),
        pair_shelter=np.array([p[1] for p in kept], dtype=np.int64),
        pair_distance=np.array([p[2] for p in kept], dtype=np.float64),
    )
    note(f"solving {len(units['id'])} units x {len(usable_list)} shelters ({len(kept)} pairs)")
    solution = (
        solve_split(problem)
        if params.split_units
        else solve_unsplit(problem, time_limit_s=params.time_limit_s)
    )
    note("storing the plan")
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
    rows: list[list[Any]] = [
        [
            plan.id,
            usable_list[problem.pair_shelter[p]]["id"],
            int(units["id"][problem.pair_unit[p]]),
            float(solution.flow[p]),
            float(problem.pair_distance[p]),
            None,
        ]
        for p in np.flatnonzero(used)
    ]
    rows += [
        [plan.id, None, int(units["id"][i]), float(uncovered[i]), None, str(reason[i])]
        for i in np.flatnonzero(uncovered > 0)
    ]
    copy_rows(
        session,
        table="shelter_assignment",
        columns=["plan_id", "shelter_id", "unit_id", "persons", "distance_m", "reason"],
        rows=rows,
    )
    load = np.bincount(
        problem.pair_shelter[used], weights=solution.flow[used], minlength=len(usable_list)
    )
    note("building zones")
    zones = build_zones(session, plan_id=plan.id, srid=srid)
    zone_rows = [
        [
            plan.id,
            s["id"],
            zones.get(s["id"]),
            float(load[j]),
            s["capacity"],
            float(load[j] / s["capacity"]) if s["capacity"] else None,
        ]
        for j, s in enumerate(usable_list)
    ]
    copy_rows(
        session,
        table="shelter_zone",
        columns=["plan_id", "shelter_id", "geom", "population", "capacity", "load_ratio"],
        rows=([*r[:2], r[2] or _empty(srid), *r[3:]] for r in zone_rows),
    )
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
        "seconds": {"query": round(query_s, 3), "total": round(time.perf_counter() - started, 3)},
        "levels": {
            k: {"radius_m": v.radius_m, "area_per_person_m2": v.area_per_person_m2}
            for k, v in levels.items()
        },
    }
    session.flush()
    return plan_summary(session, plan_id=plan.id)


def _empty(srid: int) -> str:
    return str(
        shapely.to_wkb(shapely.set_srid(shapely.MultiPolygon(), srid), hex=True, include_srid=True)
    )


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
