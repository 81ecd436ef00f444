"""The spopt San Francisco instance: our MCLP and assignment objectives equal spopt's / PuLP's."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pulp
import pytest
from pyproj import Transformer
from spopt.locate import MCLP
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.services.shelters.plan import PlanParameters, create_plan
from cim.services.shelters.suggest import SuggestParameters, suggest_sites
from cim.services.shelters.zones import zone_features
from tests.shelter_fixtures import SF_SRID, dataset_ids, sample


def _read(name: str) -> list[dict[str, Any]]:
    with open(sample(name), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def instance() -> dict[str, np.ndarray]:
    """Demand weights and the straight-line cost matrix in UTM 10N, computed independently."""
    demand, sites = (
        _read("spopt_SF_demand_205_tracts.csv"),
        _read("spopt_SF_candidate_sites_16.csv"),
    )
    project = Transformer.from_crs(4326, SF_SRID, always_xy=True)
    dx, dy = project.transform(
        [float(r["long"]) for r in demand], [float(r["lat"]) for r in demand]
    )
    sx, sy = project.transform([float(r["long"]) for r in sites], [float(r["lat"]) for r in sites])
    cost = np.hypot(np.subtract.outer(dx, sx), np.subtract.outer(dy, sy))
    return {"weights": np.array([float(r["POP2000"]) for r in demand]), "cost": cost}


@pytest.mark.parametrize(("radius", "k"), [(1500.0, 4), (2500.0, 2), (1000.0, 6)])
def test_mclp_objective_equals_spopt(
    sf_engine: Engine,
    instance: dict[str, np.ndarray],
    radius: float,
    k: int,
) -> None:
    model = MCLP.from_cost_matrix(instance["cost"], instance["weights"], radius, k)
    model.solve(pulp.PULP_CBC_CMD(msg=False))
    expected = float(pulp.value(model.problem.objective))
    with Session(sf_engine) as session:
        result = suggest_sites(
            session,
            params=SuggestParameters(
                k=k,
                radius_m=radius,
                demand="all",
                exclude_hazards=[],
                candidate_dataset=dataset_ids(sf_engine, "shelters")[0],
            ),
        ).model_dump()
        session.rollback()
    assert result["status"] == "optimal"
    assert result["gain"] == pytest.approx(expected, abs=1e-6)
    assert len(result["sites"]) == k
    assert result["demand_total"] == instance["weights"].sum()


def _pulp_assignment(
    instance: dict[str, np.ndarray], capacity: float, radius: float
) -> tuple[float, float]:
    """Same model in PuLP: max covered persons, then min person-distance at that coverage."""
    weights, cost = instance["weights"], instance["cost"]
    pairs = list(zip(*np.nonzero(cost <= radius), strict=True))

    def model(sense: int) -> tuple[pulp.LpProblem, dict[Any, pulp.LpVariable]]:
        problem = pulp.LpProblem("assign", sense)
        x = {p: pulp.LpVariable(f"x_{p[0]}_{p[1]}", lowBound=0) for p in pairs}
        for i in range(len(weights)):
            mine = [x[p] for p in pairs if p[0] == i]
            if mine:
                problem += pulp.lpSum(mine) <= weights[i]
        for j in range(cost.shape[1]):
            mine = [x[p] for p in pairs if p[1] == j]
            if mine:
                problem += pulp.lpSum(mine) <= capacity
        return problem, x

    first, x = model(pulp.LpMaximize)
    first += pulp.lpSum(x.values())
    first.solve(pulp.PULP_CBC_CMD(msg=False))
    covered = float(pulp.value(first.objective))
    second, x = model(pulp.LpMinimize)
    second += pulp.lpSum(x[p] * cost[p] for p in pairs)
    second += pulp.lpSum(x.values()) >= covered - 1e-6
    second.solve(pulp.PULP_CBC_CMD(msg=False))
    return covered, float(pulp.value(second.objective))


@pytest.mark.parametrize("radius", [1500.0, 3000.0])
def test_capacitated_assignment_equals_pulp(
    sf_engine: Engine,
    instance: dict[str, np.ndarray],
    radius: float,
) -> None:
    covered, person_distance = _pulp_assignment(instance, 40_000.0, radius)
    with Session(sf_engine) as session:
        plan = create_plan(session, params=PlanParameters(radius_m={"short": radius})).model_dump()
        zones = zone_features(session, plan_id=plan["id"]).model_dump()["features"]
        valid, overlap = session.execute(
            text(
                """SELECT bool_and(ST_IsValid(a.geom)),
                          max(ST_Area(ST_Intersection(a.geom, b.geom)))
                   FROM shelter_zone a LEFT JOIN shelter_zone b ON b.plan_id = a.plan_id
                    AND b.id > a.id AND ST_Intersects(a.geom, b.geom)
                   WHERE a.plan_id = :p"""
            ),
            {"p": plan["id"]},
        ).one()
        session.rollback()
    # Point units get Voronoi cells: zones are valid (storage CRS) and never overlap.
    assert valid and (overlap or 0.0) < 1e-6
    assert all(z["geometry"]["coordinates"] for z in zones if z["properties"]["population"])
    assert plan["stats"]["covered"] == pytest.approx(covered, abs=1e-6)
    assert plan["stats"]["person_distance_m"] == pytest.approx(person_distance, rel=1e-7)
    assert plan["stats"]["covered"] + plan["stats"]["uncovered"] == pytest.approx(
        instance["weights"].sum()
    )
