"""Exact solvers for shelter zoning on candidate pairs: capacitated assignment and MCLP.

Pure numpy in, numpy out (no database), so they can be checked against PuLP/spopt directly.

* Capacitated assignment, units may be split: a max-flow-with-min-cost on the bipartite graph
  unit -> shelter (arcs only for pairs within reach) -> sink (arc capacity = shelter capacity).
  OR-Tools' ``solve_max_flow_with_min_cost`` returns, among all maximum flows, one of minimum
  cost - exactly "first maximise covered population, then minimise person-distance". Persons
  are counted in hundredths and distances in millimetres so the integer solver loses nothing
  that matters; with whole-person data the optimum equals the LP optimum (total unimodularity).
* Units may not be split: a 0/1 programme solved twice with HiGHS (scipy ``milp``): maximise
  covered persons, then fix that and minimise person-distance. A time limit may stop it early;
  the status then says ``feasible`` with the remaining gap.
* MCLP (maximal covering location): choose ``k`` candidate sites maximising the covered demand:
  every k-subset checked when there are few (exact), else a MIP for HiGHS; above
  ``MCLP_EXACT_MAX_PAIRS`` pairs greedy + 1-swap local search (the greedy solution of maximum
  coverage is within 1 - 1/e of the optimum) with the LP bound reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import islice

import numpy as np
import numpy.typing as npt

from cim.bounds import check_deadline, time_left
from cim.errors import InvalidInput

PERSON_SCALE = 100  # flow units per person: hundredths of a person
COST_SCALE = 1000  # cost units per metre: millimetres
MCLP_EXACT_MAX_PAIRS = 2_000_000
ENUMERATE_MAX_WORK = 20_000_000  # subsets x k x demand points checked by enumeration

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class PairProblem:
    """Demand per unit, capacity per shelter, and the unit-shelter pairs within reach."""

    demand: FloatArray
    capacity: FloatArray
    pair_unit: IntArray
    pair_shelter: IntArray
    pair_distance: FloatArray

    def check(self) -> None:
        n, m = len(self.demand), len(self.capacity)
        if not (len(self.pair_unit) == len(self.pair_shelter) == len(self.pair_distance)):
            raise InvalidInput("pair arrays differ in length")
        if len(self.pair_unit) and (
            self.pair_unit.min() < 0
            or self.pair_unit.max() >= n
            or self.pair_shelter.min() < 0
            or self.pair_shelter.max() >= m
        ):
            raise InvalidInput("pair index out of range")
        if (self.demand < 0).any() or (self.capacity < 0).any() or (self.pair_distance < 0).any():
            raise InvalidInput("demand, capacity and distances must be >= 0")


@dataclass
class Assignment:
    """Persons sent along each pair, with the two objectives and how they were reached."""

    flow: FloatArray
    covered: float
    person_distance: float
    method: str
    status: str
    seconds: float
    gap: float = 0.0


def solve_split(problem: PairProblem) -> Assignment:
    """Max covered persons, then min person-distance; units may be split across shelters."""
    from ortools.graph.python import min_cost_flow

    problem.check()
    started = time.perf_counter()
    n, m = len(problem.demand), len(problem.capacity)
    supply = np.rint(problem.demand * PERSON_SCALE).astype(np.int64)
    capacity = np.floor(problem.capacity * PERSON_SCALE + 1e-6).astype(np.int64)
    cost = np.rint(problem.pair_distance * COST_SCALE).astype(np.int64)
    sink = n + m
    flow_solver = min_cost_flow.SimpleMinCostFlow()
    tails = np.concatenate([problem.pair_unit, n + np.arange(m, dtype=np.int64)])
    heads = np.concatenate([n + problem.pair_shelter, np.full(m, sink, dtype=np.int64)])
    caps = np.concatenate([supply[problem.pair_unit], capacity])
    costs = np.concatenate([cost, np.zeros(m, dtype=np.int64)])
    flow_solver.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(n + m + 1, dtype=np.int64)
    supplies[:n] = supply
    supplies[sink] = -int(supply.sum())
    flow_solver.set_nodes_supplies(np.arange(n + m + 1, dtype=np.int64), supplies)
    status = flow_solver.solve_max_flow_with_min_cost()
    if status != flow_solver.OPTIMAL:
        raise InvalidInput(f"min-cost flow failed with status {status}")
    flows = flow_solver.flows(np.arange(len(problem.pair_unit), dtype=np.int64))
    flow = np.asarray(flows, dtype=np.float64) / PERSON_SCALE
    return Assignment(
        flow=flow,
        covered=float(flow.sum()),
        person_distance=float(flow @ problem.pair_distance),
        method="min_cost_flow",
        status="optimal",
        seconds=time.perf_counter() - started,
    )


def solve_unsplit(problem: PairProblem, *, time_limit_s: float = 60.0) -> Assignment:
    """Max covered persons, then min person-distance; each unit goes whole to one shelter."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    problem.check()
    check_deadline("shelters: solving the assignment")
    time_limit_s = time_left(time_limit_s)
    started = time.perf_counter()
    n, m, p = len(problem.demand), len(problem.capacity), len(problem.pair_unit)
    if p == 0:
        return Assignment(np.zeros(0), 0.0, 0.0, "mip", "optimal", 0.0)
    weight = problem.demand[problem.pair_unit]
    cols = np.arange(p)
    one_per_unit = csr_array((np.ones(p), (problem.pair_unit, cols)), shape=(n, p))
    load = csr_array((weight, (problem.pair_shelter, cols)), shape=(m, p))
    constraints = [
        LinearConstraint(one_per_unit, -np.inf, 1.0),
        LinearConstraint(load, -np.inf, problem.capacity),
    ]
    integrality = np.ones(p)
    bounds = Bounds(0.0, 1.0)
    options = {"time_limit": max(1.0, time_limit_s / 2), "mip_rel_gap": 0.0}
    first = milp(
        -weight, constraints=constraints, integrality=integrality, bounds=bounds, options=options
    )
    if first.x is None:
        raise InvalidInput(f"the assignment programme failed: {first.message}")
    covered = float(weight @ np.rint(first.x))
    status = "optimal" if first.status == 0 else "feasible"
    gap = 0.0 if first.status == 0 else float(abs(first.mip_gap or 0.0))
    # Phase 2: keep the coverage (half a person of slack against float noise), cut distance.
    coverage = LinearConstraint(weight.reshape(1, -1), covered - 0.5, np.inf)
    check_deadline("shelters: shortening the distances")
    remaining = max(1.0, time_limit_s - (time.perf_counter() - started))
    second = milp(
        weight * problem.pair_distance,
        constraints=[*constraints, coverage],
        integrality=integrality,
        bounds=bounds,
        options={"time_limit": remaining, "mip_rel_gap": 0.0},
    )
    x = np.rint(second.x if second.x is not None else first.x)
    if second.status != 0:
        status = "feasible"
    flow = x * weight
    return Assignment(
        flow=flow,
        covered=float(flow.sum()),
        person_distance=float(flow @ problem.pair_distance),
        method="mip",
        status=status,
        seconds=time.perf_counter() - started,
        gap=gap,
    )


@dataclass
class Coverage:
    """The MCLP answer: chosen candidate indices, covered demand and how it was found."""

    chosen: IntArray
    covered: float
    method: str
    status: str
    seconds: float
    upper_bound: float


def solve_mclp(
    weight: FloatArray,
    pair_demand: IntArray,
    pair_site: IntArray,
    n_sites: int,
    k: int,
    *,
    time_limit_s: float = 60.0,
    exact_max_pairs: int = MCLP_EXACT_MAX_PAIRS,
    method: str = "auto",
) -> Coverage:
    """Choose ``k`` of ``n_sites`` maximising the weight of demand covered by a chosen site.

    ``method``: ``auto`` (enumeration when small, else MIP, else heuristic), or force one of
    ``enumeration``, ``mip``, ``heuristic``.
    """
    if k < 1:
        raise InvalidInput("k must be at least 1")
    started = time.perf_counter()
    k = min(k, n_sites)
    if n_sites == 0 or len(pair_demand) == 0:
        return Coverage(np.zeros(0, dtype=np.int64), 0.0, "trivial", "optimal", 0.0, 0.0)
    enumerated = (
        _mclp_enumerate(weight, pair_demand, pair_site, n_sites, k)
        if method in ("auto", "enumeration")
        else None
    )
    if enumerated is not None:
        enumerated.seconds = time.perf_counter() - started
        return enumerated
    if method in ("auto", "mip") and len(pair_demand) <= exact_max_pairs:
        result = _mclp_mip(weight, pair_demand, pair_site, n_sites, k, time_limit_s)
        if result is not None:
            result.seconds = time.perf_counter() - started
            return result
    chosen = _mclp_greedy_swap(weight, pair_demand, pair_site, n_sites, k)
    bound = _mclp_lp_bound(weight, pair_demand, pair_site, n_sites, k)
    return Coverage(
        chosen=chosen,
        covered=covered_weight(weight, pair_demand, pair_site, chosen),
        method="greedy_swap",
        status="heuristic",
        seconds=time.perf_counter() - started,
        upper_bound=bound,
    )


def _mclp_enumerate(
    weight: FloatArray, pair_demand: IntArray, pair_site: IntArray, n_sites: int, k: int
) -> Coverage | None:
    """Exact by checking every k-subset, when there are few (spopt's SF case: 1,820)."""
    from itertools import combinations
    from math import comb

    demands, local = np.unique(pair_demand, return_inverse=True)
    if comb(n_sites, k) * k * len(demands) > ENUMERATE_MAX_WORK:
        return None
    cover = np.zeros((n_sites, len(demands)), dtype=bool)
    cover[pair_site, local] = True
    weights = weight[demands]
    best_value, best = -1.0, np.zeros(0, dtype=np.int64)
    subsets = combinations(range(n_sites), k)
    while True:
        chunk = np.array(list(islice(subsets, 4096)), dtype=np.int64).reshape(-1, k)
        check_deadline("shelters: choosing sites")
        if len(chunk) == 0:
            break
        values = cover[chunk].any(axis=1) @ weights
        top = int(np.argmax(values))
        if values[top] > best_value + 1e-9:
            best_value, best = float(values[top]), chunk[top]
    return Coverage(
        chosen=np.sort(best),
        covered=covered_weight(weight, pair_demand, pair_site, best),
        method="enumeration",
        status="optimal",
        seconds=0.0,
        upper_bound=best_value,
    )


def covered_weight(
    weight: FloatArray, pair_demand: IntArray, pair_site: IntArray, chosen: IntArray
) -> float:
    """Total weight of demand points covered by at least one chosen site."""
    mask = np.isin(pair_site, chosen)
    return float(weight[np.unique(pair_demand[mask])].sum())


def _mclp_matrices(
    weight: FloatArray, pair_demand: IntArray, pair_site: IntArray, n_sites: int
) -> tuple[IntArray, list[object]]:
    from scipy.optimize import LinearConstraint
    from scipy.sparse import csr_array, hstack

    # Only demand points some site covers matter; renumber them 0..d-1.
    demands, local = np.unique(pair_demand, return_inverse=True)
    d = len(demands)
    # y_i - sum_{j covers i} x_j <= 0, columns: x (n_sites) then y (d).
    cover = csr_array((np.ones(len(pair_site)), (local, pair_site)), shape=(d, n_sites))
    eye = csr_array((np.ones(d), (np.arange(d), np.arange(d))), shape=(d, d))
    rows = hstack([-cover, eye]).tocsr()
    pick = np.concatenate([np.ones(n_sites), np.zeros(d)]).reshape(1, -1)
    return demands, [LinearConstraint(rows, -np.inf, 0.0), LinearConstraint(pick, 0, 0)]


def _mclp_mip(
    weight: FloatArray,
    pair_demand: IntArray,
    pair_site: IntArray,
    n_sites: int,
    k: int,
    time_limit_s: float,
) -> Coverage | None:
    from scipy.optimize import Bounds, LinearConstraint, milp

    demands, (cover, pick) = _mclp_matrices(weight, pair_demand, pair_site, n_sites)
    assert isinstance(pick, LinearConstraint)
    pick = LinearConstraint(pick.A, k, k)
    c = np.concatenate([np.zeros(n_sites), -weight[demands]])
    integrality = np.concatenate([np.ones(n_sites), np.zeros(len(demands))])
    check_deadline("shelters: choosing sites")
    time_limit_s = time_left(time_limit_s)
    result = milp(
        c,
        constraints=[cover, pick],
        integrality=integrality,
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit_s, "mip_rel_gap": 0.0},
    )
    if result.x is None:
        return None
    chosen = np.flatnonzero(np.rint(result.x[:n_sites]) > 0).astype(np.int64)
    covered = covered_weight(weight, pair_demand, pair_site, chosen)
    bound = float(-result.mip_dual_bound) if result.mip_dual_bound is not None else covered
    return Coverage(
        chosen=chosen,
        covered=covered,
        method="mip",
        status="optimal" if result.status == 0 else "feasible",
        seconds=0.0,
        upper_bound=max(bound, covered),
    )


def _mclp_lp_bound(
    weight: FloatArray, pair_demand: IntArray, pair_site: IntArray, n_sites: int, k: int
) -> float:
    from scipy.optimize import Bounds, LinearConstraint, milp

    demands, (cover, pick) = _mclp_matrices(weight, pair_demand, pair_site, n_sites)
    assert isinstance(pick, LinearConstraint)
    c = np.concatenate([np.zeros(n_sites), -weight[demands]])
    result = milp(c, constraints=[cover, LinearConstraint(pick.A, k, k)], bounds=Bounds(0, 1))
    return float(-result.fun) if result.fun is not None else float("nan")


def _mclp_greedy_swap(
    weight: FloatArray, pair_demand: IntArray, pair_site: IntArray, n_sites: int, k: int
) -> IntArray:
    """Greedy by marginal gain, then first-improvement single swaps until none improves."""
    order = np.argsort(pair_site, kind="stable")
    starts = np.searchsorted(pair_site[order], np.arange(n_sites + 1))
    members = [pair_demand[order[starts[j] : starts[j + 1]]] for j in range(n_sites)]
    count = np.zeros(int(pair_demand.max()) + 1, dtype=np.int64)
    chosen: list[int] = []
    for _ in range(k):
        gains = [
            -1.0 if j in chosen else float(weight[members[j][count[members[j]] == 0]].sum())
            for j in range(n_sites)
        ]
        best = int(np.argmax(gains))
        chosen.append(best)
        count[members[best]] += 1
    improved = True
    while improved:
        improved = False
        for position, out in enumerate(list(chosen)):
            count[members[out]] -= 1
            loss = float(weight[members[out][count[members[out]] == 0]].sum())
            swap_gains = np.array(
                [
                    -1.0 if j in chosen else float(weight[members[j][count[members[j]] == 0]].sum())
                    for j in range(n_sites)
                ]
            )
            best = int(np.argmax(swap_gains))
            if swap_gains[best] > loss + 1e-9:
                chosen[position] = best
                count[members[best]] += 1
                improved = True
            else:
                count[members[out]] += 1
    return np.array(sorted(chosen), dtype=np.int64)
