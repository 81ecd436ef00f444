"""Shelter zoning plans: inputs from the database, the optimal capacitated assignment, storage.

A plan assigns every resident to a usable shelter within the service radius of its level that
has room: first the covered population is maximised, then the total person-distance
(``cim.services.shelters.solver``). Candidate unit-shelter pairs come from a GiST ``ST_DWithin``
join, one query per level with that level's radius, never from all pairs. A shelter is unusable
when its site intersects a zone of an excluded hazard kind, or when its capacity is unknown.
Uncovered persons keep a reason: ``out_of_reach`` (no shelter within reach), ``in_hazard_zone``
(only hazard-excluded or not-designated shelters within reach) or ``over_capacity`` (usable
shelters within reach are full). Distances are straight lines in the (metric) storage CRS
from a unit's point on surface to the shelter site (0 inside a site polygon), or with
``distance="network"`` walks along the imported roads with straight access legs
(``cim.services.shelters.network``); the stats say which metric was used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cim.crs import parse_crs
from cim.db import migrate
from cim.db.copy import copy_rows
from cim.db.models import ShelterPlan
from cim.errors import InvalidInput, NotFound
from cim.services.roads.graph import road_datasets
from cim.services.shelters.inputs import PlanParameters as PlanParameters
from cim.services.shelters.inputs import check_datasets, load_pairs, load_shelters
from cim.services.shelters.solver import PairProblem, solve_split, solve_unsplit
from cim.services.shelters.zones import build_zones

Progress = Callable[[str], None]
REASONS = ("out_of_reach", "in_hazard_zone", "over_capacity")


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
    check_datasets(session, "shelters", params.shelter_datasets)
    check_datasets(session, "population", params.population_datasets)
    check_datasets(session, "hazards", params.hazard_datasets)
    if params.distance == "network":
        road_datasets(session, params.road_datasets)  # fail before the work: none, or unknown
    note("loading shelters and hazards")
    loaded = load_shelters(session, params)
    shelters, levels = loaded["shelters"], loaded["levels"]
    if not shelters:
        raise InvalidInput("no shelters to plan with: import some with `cim import shelters`")
    radius = {level: value.radius_m for level, value in levels.items()}
    note("finding unit-shelter pairs within reach")
    units, all_pairs, network = load_pairs(session, params, shelters, radius)
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
        "distance": params.distance,
        **({"network": network} if network else {}),
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
