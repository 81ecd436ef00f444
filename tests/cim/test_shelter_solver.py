"""The shelter solvers against hand-made optima, PuLP (same model) and spopt's MCLP."""

from __future__ import annotations

import numpy as np
import pulp
import pytest

from cim.services.shelters.solver import PairProblem, solve_mclp, solve_split, solve_unsplit


def _problem(
    demand: list[float], capacity: list[float], pairs: list[tuple[int, int, float]]
) -> PairProblem:
    return PairProblem(
        demand=np.array(demand, dtype=float),
        capacity=np.array(capacity, dtype=float),
        pair_unit=np.array([p[0] for p in pairs], dtype=np.int64),
        pair_shelter=np.array([p[1] for p in pairs], dtype=np.int64),
        pair_distance=np.array([p[2] for p in pairs], dtype=float),
    )


def _greedy_nearest_first(problem: PairProblem) -> tuple[float, float]:
    """What a naive planner does: each unit in turn to its nearest shelter with room."""
    left = problem.capacity.copy()
    covered = distance = 0.0
    for unit, need in enumerate(problem.demand):
        mine = np.flatnonzero(problem.pair_unit == unit)
        for pair in mine[np.argsort(problem.pair_distance[mine])]:
            take = min(need, left[problem.pair_shelter[pair]])
            left[problem.pair_shelter[pair]] -= take
            need -= take
            covered += take
            distance += take * problem.pair_distance[pair]
    return covered, distance


def test_hand_made_case_where_greedy_loses_people() -> None:
    # A reaches S1 (100 m) and S2 (200 m); B reaches only S1 (150 m); each shelter holds 10.
    problem = _problem([10, 10], [10, 10], [(0, 0, 100.0), (0, 1, 200.0), (1, 0, 150.0)])
    assert _greedy_nearest_first(problem) == (10.0, 1000.0)
    for solution in (solve_split(problem), solve_unsplit(problem)):
        assert solution.covered == 20.0
        assert solution.person_distance == pytest.approx(10 * 200 + 10 * 150)
        assert solution.flow.tolist() == [0.0, 10.0, 10.0]


def test_hand_made_case_where_greedy_walks_further() -> None:
    problem = _problem(
        [10, 10], [10, 10], [(0, 0, 100.0), (0, 1, 110.0), (1, 0, 120.0), (1, 1, 300.0)]
    )
    assert _greedy_nearest_first(problem) == (20.0, 4000.0)
    solution = solve_split(problem)
    assert (solution.covered, solution.person_distance) == (20.0, pytest.approx(2300.0))


def test_unsplit_keeps_units_whole() -> None:
    # 15 people, two shelters of 10: split covers 15, unsplit only 10 (in the nearer one).
    problem = _problem([15], [10, 10], [(0, 0, 50.0), (0, 1, 80.0)])
    assert solve_split(problem).covered == 15.0
    whole = solve_unsplit(problem)
    assert whole.covered == 0.0  # 15 fits in neither shelter


def _pulp_lexicographic(problem: PairProblem, *, integer: bool) -> tuple[float, float]:
    """The same model in PuLP/CBC: max covered, then min person-distance at that coverage."""
    n, p = len(problem.demand), len(problem.pair_unit)
    cat = "Binary" if integer else "Continuous"
    upper = 1 if integer else None
    x = [pulp.LpVariable(f"x{i}", lowBound=0, upBound=upper, cat=cat) for i in range(p)]
    amount = [x[i] * problem.demand[problem.pair_unit[i]] if integer else x[i] for i in range(p)]

    def base(sense: int) -> pulp.LpProblem:
        model = pulp.LpProblem("assign", sense)
        for u in range(n):
            mine = [i for i in range(p) if problem.pair_unit[i] == u]
            if mine:
                limit = 1 if integer else problem.demand[u]
                model += pulp.lpSum(x[i] for i in mine) <= limit
        for s in range(len(problem.capacity)):
            mine = [amount[i] for i in range(p) if problem.pair_shelter[i] == s]
            if mine:
                model += pulp.lpSum(mine) <= problem.capacity[s]
        return model

    first = base(pulp.LpMaximize)
    first += pulp.lpSum(amount)
    first.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=0))
    covered = pulp.value(first.objective)
    second = base(pulp.LpMinimize)
    second += pulp.lpSum(amount[i] * problem.pair_distance[i] for i in range(p))
    second += pulp.lpSum(amount) >= covered - 1e-6
    second.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=0))
    return float(covered), float(pulp.value(second.objective))


def _random_problem(seed: int, units: int, shelters: int, reach: float) -> PairProblem:
    rng = np.random.default_rng(seed)
    unit_xy, shelter_xy = rng.uniform(0, 3000, (units, 2)), rng.uniform(0, 3000, (shelters, 2))
    distance = np.hypot(*(unit_xy[:, None, :] - shelter_xy[None, :, :]).transpose(2, 0, 1))
    unit_index, shelter_index = np.nonzero(distance <= reach)
    return PairProblem(
        demand=rng.integers(1, 200, units).astype(float),
        capacity=rng.integers(100, 150 * units // shelters, shelters).astype(float),
        pair_unit=unit_index.astype(np.int64),
        pair_shelter=shelter_index.astype(np.int64),
        pair_distance=distance[unit_index, shelter_index],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_split_matches_the_pulp_lp(seed: int) -> None:
    problem = _random_problem(seed, 60, 6, 1200.0)
    split = solve_split(problem)
    covered, person_distance = _pulp_lexicographic(problem, integer=False)
    assert split.covered == pytest.approx(covered, abs=1e-6)
    assert split.person_distance == pytest.approx(person_distance, rel=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_unsplit_matches_exhaustive_enumeration(seed: int) -> None:
    problem = _random_problem(seed, 8, 3, 2000.0)
    best = (-1.0, 0.0)
    # Every unit: nowhere (index 3) or one of the 3 shelters - 4**8 choices, all checked.
    choices = np.array(np.meshgrid(*[np.arange(4)] * 8, indexing="ij")).reshape(8, -1).T
    table = np.full((8, 4), np.inf)
    table[:, 3] = 0.0
    table[problem.pair_unit, problem.pair_shelter] = problem.pair_distance
    rows = np.arange(8)
    for choice in choices:
        distance = table[rows, choice]
        if np.isinf(distance).any():
            continue
        load = np.bincount(choice, weights=problem.demand, minlength=4)[:3]
        if (load > problem.capacity).any():
            continue
        covered = float(problem.demand[choice < 3].sum())
        cost = float(problem.demand @ distance)
        if covered > best[0] or (covered == best[0] and cost < best[1]):
            best = (covered, cost)
    whole = solve_unsplit(problem)
    assert whole.status == "optimal"
    assert whole.covered == best[0]
    assert whole.person_distance == pytest.approx(best[1], rel=1e-9)


def test_mclp_greedy_fallback_is_reported_as_heuristic() -> None:
    rng = np.random.default_rng(5)
    pairs = rng.integers(0, 50, (300, 2))
    weight = rng.uniform(1, 10, 50)
    exact = solve_mclp(weight, pairs[:, 0], pairs[:, 1], 50, 3)
    mip = solve_mclp(weight, pairs[:, 0], pairs[:, 1], 50, 3, method="mip")
    fallback = solve_mclp(weight, pairs[:, 0], pairs[:, 1], 50, 3, method="heuristic")
    assert (exact.method, mip.method, fallback.method) == ("enumeration", "mip", "greedy_swap")
    assert exact.status == "optimal" and mip.status == "optimal"
    assert mip.covered == pytest.approx(exact.covered)
    assert fallback.status == "heuristic"
    assert fallback.covered <= exact.covered + 1e-9
    assert fallback.covered >= (1 - 1 / np.e) * exact.covered
    assert fallback.upper_bound >= exact.covered - 1e-6
