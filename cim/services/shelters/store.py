"""Writing a solved shelter plan: assignments and uncovered persons, then the zone polygons.

Both go in by ``COPY`` (a plan of a city holds 10^5 assignment rows). Uncovered persons keep a
reason: ``out_of_reach`` (no shelter within reach), ``in_hazard_zone`` (only hazard-excluded or
not-designated shelters within reach) or ``over_capacity`` (usable shelters within reach are
full).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows
from cim.services.shelters.inputs import Pairs, ShelterInput, UnitPoints
from cim.services.shelters.solver import Assignment, FloatArray, PairProblem
from cim.services.shelters.zones import build_zones

BoolArray = npt.NDArray[np.bool_]
REASONS = ("out_of_reach", "in_hazard_zone", "over_capacity")


@dataclass(frozen=True)
class PlanProblem:
    """The solver's input over the usable shelters, and what the uncovered reasons need."""

    problem: PairProblem
    usable: list[ShelterInput]
    reach_usable: BoolArray
    """Per unit: a usable shelter lies within reach."""
    reach_hazard: BoolArray
    """Per unit: a hazard-excluded or not-designated shelter lies within reach."""


def plan_problem(shelters: list[ShelterInput], units: UnitPoints, pairs: Pairs) -> PlanProblem:
    """Keep the pairs of usable shelters (renumbered 0..m-1) and note what each unit reaches."""
    n_units = len(units.id)
    usable = [s for s in shelters if s.unusable is None]
    shelter_ids = np.array([s.id for s in shelters], dtype=np.int64)
    order = np.argsort(shelter_ids)
    usable_index = np.full(len(shelters), -1, dtype=np.int64)
    usable_index[[j for j, s in enumerate(shelters) if s.unusable is None]] = np.arange(len(usable))
    hazard_reasons = ("in_hazard_zone", "not_designated")
    blocked = np.array([s.unusable in hazard_reasons for s in shelters], dtype=bool)
    position = order[np.searchsorted(shelter_ids, pairs.shelter, sorter=order)]
    keep = usable_index[position] >= 0
    reach_usable = np.zeros(n_units, dtype=bool)
    reach_usable[pairs.unit[keep]] = True
    reach_hazard = np.zeros(n_units, dtype=bool)
    reach_hazard[pairs.unit[blocked[position]]] = True
    problem = PairProblem(
        demand=units.population.clip(min=0),
        capacity=np.array([s.capacity for s in usable], dtype=np.float64),
        pair_unit=pairs.unit[keep].astype(np.int64),
        pair_shelter=usable_index[position][keep],
        pair_distance=pairs.distance[keep].astype(np.float64),
    )
    return PlanProblem(problem, usable, reach_usable, reach_hazard)


@dataclass(frozen=True)
class PlanOutcome:
    """What the solution means per pair, unit and shelter."""

    used: BoolArray
    """Per pair: persons go along it."""
    uncovered: FloatArray
    """Per unit: persons left without a shelter."""
    reason: npt.NDArray[np.str_]
    """Per unit: why its uncovered persons are uncovered (one of ``REASONS``)."""
    load: FloatArray
    """Per usable shelter: persons assigned."""


def plan_outcome(planned: PlanProblem, solution: Assignment) -> PlanOutcome:
    """Uncovered persons and their reason per unit, load per shelter."""
    problem = planned.problem
    used = solution.flow > 0
    assigned = np.bincount(
        problem.pair_unit[used], weights=solution.flow[used], minlength=len(problem.demand)
    )
    uncovered = np.where(problem.demand - assigned > 1e-9, problem.demand - assigned, 0.0)
    reason = np.where(
        planned.reach_usable,
        "over_capacity",
        np.where(planned.reach_hazard, "in_hazard_zone", "out_of_reach"),
    )
    load = np.asarray(
        np.bincount(
            problem.pair_shelter[used], weights=solution.flow[used], minlength=len(planned.usable)
        ),
        dtype=np.float64,
    )
    return PlanOutcome(used, uncovered, reason, load)


def store_assignments(
    session: Session,
    plan_id: int,
    units: UnitPoints,
    planned: PlanProblem,
    solution: Assignment,
    outcome: PlanOutcome,
) -> None:
    """COPY the persons of every used pair and the uncovered persons of every unit."""
    problem = planned.problem
    usable_ids = np.array([s.id for s in planned.usable], dtype=np.int64)
    picked = np.flatnonzero(outcome.used)
    assignment_rows = zip(
        usable_ids[problem.pair_shelter[picked]].tolist(),
        units.id[problem.pair_unit[picked]].tolist(),
        solution.flow[picked].tolist(),
        problem.pair_distance[picked].tolist(),
        strict=True,
    )
    open_units = np.flatnonzero(outcome.uncovered > 0)
    uncovered_rows = zip(
        units.id[open_units].tolist(),
        outcome.uncovered[open_units].tolist(),
        outcome.reason[open_units].tolist(),
        strict=True,
    )
    copy_rows(
        session,
        table="shelter_assignment",
        columns=["plan_id", "shelter_id", "unit_id", "persons", "distance_m", "reason"],
        rows=(
            *(
                [plan_id, sid, uid, persons, distance, None]
                for sid, uid, persons, distance in assignment_rows
            ),
            *([plan_id, None, uid, persons, None, why] for uid, persons, why in uncovered_rows),
        ),
    )


def _unit_geometries(session: Session, units: UnitPoints) -> npt.NDArray[np.object_]:
    """Each unit's geometry: point units from their coordinates, polygons fetched."""
    # Point units are already known from their coordinates; fetch only the polygons.
    unit_geoms = np.asarray(shapely.points(units.x, units.y), dtype=object)
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
    return unit_geoms


def store_zones(
    session: Session,
    plan_id: int,
    srid: int,
    units: UnitPoints,
    planned: PlanProblem,
    solution: Assignment,
    outcome: PlanOutcome,
) -> None:
    """Build every usable shelter's zone (see :func:`build_zones`) and COPY it with its load."""
    problem, used, load = planned.problem, outcome.used, outcome.load
    zones = build_zones(
        _unit_geometries(session, units),
        problem.pair_unit[used],
        problem.pair_shelter[used],
        solution.flow[used],
        outcome.uncovered,
        np.array([s.xy for s in planned.usable], dtype=np.float64).reshape(-1, 2),
    )
    copy_rows(
        session,
        table="shelter_zone",
        columns=["plan_id", "shelter_id", "geom", "population", "capacity", "load_ratio"],
        rows=(
            [
                plan_id,
                s.id,
                _ewkb(zones[j], srid),
                float(load[j]),
                s.capacity,
                float(load[j] / s.capacity) if s.capacity else None,
            ]
            for j, s in enumerate(planned.usable)
        ),
    )


def _ewkb(geom: Any, srid: int) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geom, srid), hex=True, include_srid=True))
