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

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cim.crs import parse_crs
from cim.db import migrate
from cim.db.models import ShelterPlan
from cim.errors import InvalidInput, NotFound
from cim.services.roads.graph import road_datasets
from cim.services.shelters.inputs import LoadedShelters, check_datasets, load_pairs, load_shelters
from cim.services.shelters.inputs import PlanParameters as PlanParameters
from cim.services.shelters.models import (
    NetworkFigures,
    PlanListing,
    PlanSeconds,
    PlanStats,
    PlanSummary,
    ShelterLoad,
)
from cim.services.shelters.solver import Assignment, PairProblem, solve_split, solve_unsplit
from cim.services.shelters.store import (
    REASONS,
    PlanOutcome,
    PlanProblem,
    plan_outcome,
    plan_problem,
    store_assignments,
    store_zones,
)

Progress = Callable[[str], None]


def _require_metric(session: Session) -> int:
    srid = migrate.recorded_srid(session.connection())
    if srid is None:
        raise InvalidInput("the database has no cim schema")
    crs = parse_crs(srid)
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise InvalidInput(f"shelter planning needs a metric storage CRS, not EPSG:{srid}")
    return srid


def _check_inputs(session: Session, params: PlanParameters) -> int:
    """The (metric) storage SRID, after checking the chosen datasets exist."""
    srid = _require_metric(session)
    check_datasets(session, "shelters", params.shelter_datasets)
    check_datasets(session, "population", params.population_datasets)
    check_datasets(session, "hazards", params.hazard_datasets)
    if params.distance == "network":
        road_datasets(session, params.road_datasets)  # fail before the work: none, or unknown
    return srid


def _solve(problem: PairProblem, params: PlanParameters) -> Assignment:
    if params.split_units:
        return solve_split(problem)
    return solve_unsplit(problem, time_limit_s=params.time_limit_s)


def create_plan(
    session: Session, *, params: PlanParameters, progress: Progress | None = None
) -> PlanSummary:
    """Solve and store a plan; returns its summary (see :func:`plan_summary`).

    The steps: check the inputs, load shelters and unit-shelter pairs, build the problem over
    the usable shelters, solve it, store assignments and zones, record the statistics.
    """
    note = progress or (lambda _message: None)
    started = time.perf_counter()
    srid = _check_inputs(session, params)
    note("loading shelters and hazards")
    loaded = load_shelters(session, params)
    if not loaded.shelters:
        raise InvalidInput("no shelters to plan with: import some with `cim import shelters`")
    radius = {level: value.radius_m for level, value in loaded.levels.items()}
    note("finding unit-shelter pairs within reach")
    units, pairs, network = load_pairs(session, params, loaded.shelters, radius)
    if len(units.id) == 0:
        raise InvalidInput("no population units: import some with `cim import population`")
    query_s = time.perf_counter() - started
    planned = plan_problem(loaded.shelters, units, pairs)
    note(
        f"solving {len(units.id)} units x {len(planned.usable)} shelters "
        f"({len(planned.problem.pair_unit)} pairs)"
    )
    solution = _solve(planned.problem, params)
    note("storing the plan")
    store_started = time.perf_counter()
    plan = ShelterPlan(name=params.name, parameters=params.model_dump(mode="json"), stats={})
    session.add(plan)
    session.flush()
    outcome = plan_outcome(planned, solution)
    store_assignments(session, plan.id, units, planned, solution, outcome)
    store_s = time.perf_counter() - store_started
    note("building zones")
    zones_started = time.perf_counter()
    store_zones(session, plan.id, srid, units, planned, solution, outcome)
    zones_s = time.perf_counter() - zones_started
    seconds: PlanSeconds = {
        "query": round(query_s, 3),
        "store": round(store_s, 3),
        "zones": round(zones_s, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    plan.stats = dict(_stats(params, network, loaded, planned, solution, outcome, seconds))
    session.flush()
    return plan_summary(session, plan_id=plan.id)


def _stats(
    params: PlanParameters,
    network: NetworkFigures | None,
    loaded: LoadedShelters,
    planned: PlanProblem,
    solution: Assignment,
    outcome: PlanOutcome,
    seconds: PlanSeconds,
) -> PlanStats:
    """The figures stored with a plan (see :class:`~cim.services.shelters.models.PlanStats`)."""
    problem, used, uncovered = planned.problem, outcome.used, outcome.uncovered
    total = float(problem.demand.sum())
    covered_d = problem.pair_distance[used]
    n_units = len(problem.demand)
    stats: PlanStats = {
        "distance": params.distance,
        "population": total,
        "covered": solution.covered,
        "uncovered": float(uncovered.sum()),
        "uncovered_by_reason": {r: float(uncovered[outcome.reason == r].sum()) for r in REASONS},
        "coverage_ratio": solution.covered / total if total else None,
        "person_distance_m": solution.person_distance,
        "mean_distance_m": solution.person_distance / solution.covered
        if solution.covered
        else None,
        "max_distance_m": float(covered_d.max()) if len(covered_d) else None,
        "units": n_units,
        "split_units": int((np.bincount(problem.pair_unit[used], minlength=n_units) > 1).sum()),
        "shelters": len(loaded.shelters),
        "usable_shelters": len(planned.usable),
        "unusable_shelters": {
            str(s.id): {"name": s.name, "reason": s.unusable, "hazards": s.hazards}
            for s in loaded.shelters
            if s.unusable
        },
        "capacity": float(problem.capacity.sum()),
        "full_shelters": int((outcome.load >= problem.capacity - 1e-6).sum()),
        "pairs": len(problem.pair_unit),
        "solver": {
            "method": solution.method,
            "status": solution.status,
            "gap": solution.gap,
            "seconds": round(solution.seconds, 3),
        },
        "seconds": seconds,
        "levels": {
            k: {"radius_m": v.radius_m, "area_per_person_m2": v.area_per_person_m2}
            for k, v in loaded.levels.items()
        },
    }
    if network is not None:
        stats["network"] = network
    return stats


def plan_summary(session: Session, *, plan_id: int) -> PlanSummary:
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
    return PlanSummary.model_validate(
        {
            "id": plan.id,
            "name": plan.name,
            "created_at": plan.created_at.isoformat() if plan.created_at else None,
            "parameters": plan.parameters,
            "stats": plan.stats,
            "shelters": [
                ShelterLoad(
                    shelter_id=int(r[0]),
                    name=r[1],
                    level=r[2],
                    population=r[3],
                    capacity=r[4],
                    load_ratio=r[5],
                    zone_area_m2=r[6],
                )
                for r in shelters
            ],
        }
    )


def latest_plan_id(session: Session) -> int:
    """The newest plan's id; NotFound when there is none."""
    plan_id = session.scalar(select(ShelterPlan.id).order_by(ShelterPlan.id.desc()).limit(1))
    if plan_id is None:
        raise NotFound("no shelter plan yet: create one with `cim analyse shelters`")
    return int(plan_id)


def list_plans(session: Session) -> list[PlanListing]:
    """Every plan, newest first, with its headline figures."""
    plans = session.scalars(select(ShelterPlan).order_by(ShelterPlan.id.desc())).all()
    return [
        PlanListing(
            id=p.id,
            name=p.name,
            created_at=p.created_at.isoformat(),
            coverage_ratio=p.stats.get("coverage_ratio"),
            population=p.stats.get("population"),
        )
        for p in plans
    ]
