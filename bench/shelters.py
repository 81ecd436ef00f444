"""Bench: shelter zoning at scale, and our solvers against spopt / PuLP on the SF instance.

1. A generated city (``bench.generator``): ``--units`` population points on a grid
   ``--spacing`` m apart (default 100 m, census-block scale: 100k units = a 31.6 km square) x
   ``--shelters`` shelters of the four GB 51143 levels (cycled), a full ``create_plan`` (GiST
   pair join, optimal assignment, storage, zones). Goal: <= 30 s.
2. The spopt San Francisco instance (205 tracts x 16 sites, straight-line metres in UTM 10N):
   MCLP (p=4, 1,500 m) with our ``solve_mclp`` vs spopt ``MCLP`` + CBC, and the capacitated
   assignment (40,000 per site, 1,500 m) with ``solve_split`` vs the same LP in PuLP + CBC.
   Objectives must be equal; the figure is the time ratio (median of ``--repeat`` runs).
   Goal: >= 10x faster.

3. ``--distance network``: the same city with a grid of straight roads every ``--road-spacing``
   m (default 100; imported through ``importers.roads``, which nodes them), then the same plan
   along the roads, twice (road graph built, then cached).

Usage: ``python bench/shelters.py [--units N] [--shelters M] [--distance network]
[--database-url URL]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_database
from bench.generator import SyntheticCity
from cim.db.copy import copy_rows
from cim.services.datasets import DatasetSource
from cim.services.shelters.plan import PlanParameters, create_plan
from cim.services.shelters.solver import PairProblem, solve_mclp, solve_split
from importers.base import WriteOutcome, run_import

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "shelters"
LEVELS = ("emergency", "short", "medium", "long")


def _load_city(engine: Any, units: int, shelters: int, spacing: float = 100.0) -> SyntheticCity:
    side = max(1, round(units**0.5 * spacing / 140.0))  # blocks of 140 m; units `spacing` apart
    city = SyntheticCity(seed=7, blocks_x=side, blocks_y=side)
    per_side = round(units**0.5)
    srid = 4547

    def ewkb(x: float, y: float) -> str:
        point = shapely.set_srid(shapely.Point(x, y), srid)
        return str(shapely.to_wkb(point, hex=True, include_srid=True))

    def population(session: Any, dataset: Any) -> WriteOutcome:
        rows = (
            [dataset.id, code, ewkb(x, y), persons, "{}"]
            for code, x, y, persons in city.population(per_side, per_side)
        )
        count = copy_rows(
            session,
            table="population_unit",
            columns=["dataset_id", "code", "geom", "population", "attrs"],
            rows=rows,
        )
        return WriteOutcome(counts={"units": count})

    def shelter(session: Any, dataset: Any) -> WriteOutcome:
        rows = (
            [dataset.id, name, LEVELS[i % 4], ewkb(x, y), capacity, '{"capacity_source": "given"}']
            for i, (name, x, y, capacity) in enumerate(city.shelters(shelters))
        )
        count = copy_rows(
            session,
            table="shelter",
            columns=["dataset_id", "name", "level", "geom", "capacity", "attrs"],
            rows=rows,
        )
        return WriteOutcome(counts={"shelters": count})

    for kind, write in (("population", population), ("shelters", shelter)):
        source = DatasetSource(
            kind=kind,
            name=f"bench {kind}",
            source_name="generated",
            source_sha256=f"{kind}-{units}-{shelters}".ljust(64, "0")[:64],
        )
        run_import(engine, source=source, write=write, replace=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE population_unit; ANALYZE shelter")
    return city


def _load_roads(engine: Any, city: SyntheticCity, road_spacing: float) -> dict[str, Any]:
    """A grid of unnoded straight roads every ``road_spacing`` m over the city, via the importer."""
    import tempfile

    from importers.roads import import_roads

    x0, y0 = city.origin
    width, height = city.blocks_x * city.pitch, city.blocks_y * city.pitch
    xs = np.arange(x0, x0 + width + 1e-6, road_spacing)
    ys = np.arange(y0, y0 + height + 1e-6, road_spacing)
    lines = [[[x0, y], [x0 + width, y]] for y in ys] + [[[x, y0], [x, y0 + height]] for x in xs]
    features = [
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": c}}
        for c in lines
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"grid_roads_{road_spacing:g}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        started = time.perf_counter()
        result = import_roads(engine, path, crs="EPSG:4547", replace=True)
        seconds = time.perf_counter() - started
    return {
        "road_lines": len(lines),
        "road_segments": result.dataset.counts["segments"],
        "roads_import_s": round(seconds, 2),
    }


def _scale(
    url: str | None, units: int, shelters: int, spacing: float, road_spacing: float | None
) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    figures: dict[str, Any] = {}
    with bench_database(url, srid=4547) as engine:
        city = _load_city(engine, units, shelters, spacing)
        with Session(engine) as session:
            started = time.perf_counter()
            plan = create_plan(session, params=PlanParameters(name="bench"))
            seconds = time.perf_counter() - started
            session.rollback()
        if road_spacing is not None:
            figures.update(_load_roads(engine, city, road_spacing))
            figures.update(_network_plan(engine))
    stats = plan.stats
    return figures | {
        "units": stats["units"],
        "shelters": stats["shelters"],
        "pairs": stats["pairs"],
        "plan_s": round(seconds, 2),
        "query_s": stats["seconds"]["query"],
        "solve_s": stats["solver"]["seconds"],
        "store_s": stats["seconds"]["store"],
        "zones_s": stats["seconds"]["zones"],
        "pairs_and_solve_s": round(stats["seconds"]["query"] + stats["solver"]["seconds"], 2),
        "coverage": round(stats["coverage_ratio"], 4),
    }


def _network_plan(engine: Any) -> dict[str, Any]:
    """The same plan along the roads: first run (graph built) and second run (graph cached)."""
    from sqlalchemy.orm import Session

    figures: dict[str, Any] = {}
    for run in ("network", "network_cached"):
        with Session(engine) as session:
            started = time.perf_counter()
            plan = create_plan(session, params=PlanParameters(name="bench", distance="network"))
            seconds = time.perf_counter() - started
            session.rollback()
        stats = plan.stats
        figures |= {
            f"{run}_plan_s": round(seconds, 2),
            f"{run}_query_s": stats["seconds"]["query"],
            f"{run}_graph_load_s": stats["network"]["graph"]["load_seconds"],
            f"{run}_dijkstra_s": stats["network"]["seconds"]["dijkstra"],
            f"{run}_solve_s": stats["solver"]["seconds"],
        }
        figures["network_pairs"] = stats["pairs"]
        figures["network_coverage"] = round(stats["coverage_ratio"], 4)
        figures["network_mean_distance_m"] = round(stats["mean_distance_m"], 1)
    return figures


def _sf_instance() -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    def read(name: str) -> list[dict[str, str]]:
        with open(SAMPLES / name, newline="") as handle:
            return list(csv.DictReader(handle))

    demand, sites = read("spopt_SF_demand_205_tracts.csv"), read("spopt_SF_candidate_sites_16.csv")
    project = Transformer.from_crs(4326, 32610, always_xy=True)
    dx, dy = project.transform(
        [float(r["long"]) for r in demand], [float(r["lat"]) for r in demand]
    )
    sx, sy = project.transform([float(r["long"]) for r in sites], [float(r["lat"]) for r in sites])
    cost = np.hypot(np.subtract.outer(dx, sx), np.subtract.outer(dy, sy))
    return np.array([float(r["POP2000"]) for r in demand]), cost


def _median_time(run: Callable[[], float], repeat: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def _sf(repeat: int) -> dict[str, Any]:
    import pulp
    from spopt.locate import MCLP

    weights, cost = _sf_instance()
    radius, k, capacity = 1500.0, 4, 40_000.0

    def ours_mclp() -> float:
        demand, site = np.nonzero(cost <= radius)
        return solve_mclp(weights, demand, site, cost.shape[1], k).covered

    def spopt_mclp() -> float:
        model = MCLP.from_cost_matrix(cost, weights, radius, k)
        model.solve(pulp.PULP_CBC_CMD(msg=False))
        return float(pulp.value(model.problem.objective))

    def ours_assign() -> float:
        demand, site = np.nonzero(cost <= radius)
        problem = PairProblem(
            weights,
            np.full(cost.shape[1], capacity),
            demand.astype(np.int64),
            site.astype(np.int64),
            cost[demand, site],
        )
        solution = solve_split(problem)
        return solution.covered * 1e12 + solution.person_distance

    def pulp_assign() -> float:
        pairs = list(zip(*np.nonzero(cost <= radius), strict=True))
        results = []
        for phase in (1, 2):
            model = pulp.LpProblem("a", pulp.LpMaximize if phase == 1 else pulp.LpMinimize)
            x = {p: pulp.LpVariable(f"x_{p[0]}_{p[1]}", lowBound=0) for p in pairs}
            for i in range(len(weights)):
                model += pulp.lpSum(x[p] for p in pairs if p[0] == i) <= weights[i]
            for j in range(cost.shape[1]):
                model += pulp.lpSum(x[p] for p in pairs if p[1] == j) <= capacity
            if phase == 1:
                model += pulp.lpSum(x.values())
            else:
                model += pulp.lpSum(x[p] * cost[p] for p in pairs)
                model += pulp.lpSum(x.values()) >= results[0] - 1e-6
            model.solve(pulp.PULP_CBC_CMD(msg=False))
            results.append(float(pulp.value(model.objective)))
        return results[0] * 1e12 + results[1]

    ours_t, ours_v = _median_time(ours_mclp, repeat)
    spopt_t, spopt_v = _median_time(spopt_mclp, repeat)
    ours_at, ours_av = _median_time(ours_assign, repeat)
    pulp_at, pulp_av = _median_time(pulp_assign, repeat)
    return {
        "sf_mclp_ms": round(ours_t * 1e3, 2),
        "spopt_mclp_ms": round(spopt_t * 1e3, 2),
        "mclp_equal": abs(ours_v - spopt_v) < 1e-6,
        "mclp_ratio": round(spopt_t / ours_t, 1),
        "sf_assign_ms": round(ours_at * 1e3, 2),
        "pulp_assign_ms": round(pulp_at * 1e3, 2),
        "assign_equal": abs(ours_av - pulp_av) <= 1e-6 * abs(pulp_av),
        "assign_ratio": round(pulp_at / ours_at, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--shelters", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spacing", type=float, default=100.0, help="m between units")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--distance",
        choices=("euclidean", "network"),
        default="euclidean",
        help="network: also plan along a generated grid of roads (--road-spacing m apart)",
    )
    parser.add_argument("--road-spacing", type=float, default=100.0)
    args = parser.parse_args()
    figures: dict[str, Any] = {"bench": "shelters"}
    figures.update(_sf(args.repeat))
    print(json.dumps(figures))
    road_spacing = args.road_spacing if args.distance == "network" else None
    figures.update(_scale(args.database_url, args.units, args.shelters, args.spacing, road_spacing))
    figures["goal"] = (
        "pairs + optimal solve <= 30 s (plan_s adds storage and zones); SF: equal objectives, "
        ">= 10x faster than spopt/PuLP"
    )
    figures["pass"] = bool(
        figures["pairs_and_solve_s"] <= 30
        and figures["mclp_equal"]
        and figures["assign_equal"]
        and figures["mclp_ratio"] >= 10
        and figures["assign_ratio"] >= 10
    )
    print("BENCH " + json.dumps(figures))


if __name__ == "__main__":
    main()
