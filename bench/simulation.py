"""Bench: 24 h shutdown impact (关阀停水影响) on ky4 and on a generated 5,000-junction network.

Each network is imported with a strategic N-2 valve layer (``wntr.network.generate_valve_layer``)
into a throwaway database; one burst is isolated and ``shutdown_impact`` runs end to end (model
read from PostGIS, isolation, two 24 h pressure-driven runs, answer with GeoJSON). The engine is
EPANET 2.2 (PDA, the default); the baseline is the same call with WNTR's ``WNTRSimulator``
(``--wntr-baseline``, ky4 only: it takes tens of seconds on larger networks).

Goal (issue 19): each shutdown <= 10 s. Usage: ``python bench/simulation.py [--junctions N]
[--wntr-baseline] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_SAMPLES, bench_database
from cim.services.simulation.hydraulics import Engine as Solver
from cim.services.simulation.shutdown import shutdown_impact
from importers.pipes import PipeImportOptions, import_pipes

GOAL_S = 10.0
ORIGIN = (500_000.0, 3_400_000.0, 0.0)


def grid_network(path: Path, junctions: int) -> None:
    """A meshed square grid of ``junctions`` junctions (100 m blocks) fed by one reservoir, with
    a daily demand pattern; written as EPANET .inp through WNTR."""
    import wntr

    side = math.ceil(math.sqrt(junctions))
    wn = wntr.network.WaterNetworkModel()
    wn.add_pattern("day", [0.6, 0.5, 0.5, 0.6, 0.8, 1.1, 1.4, 1.5, 1.3, 1.2, 1.1, 1.1,
                           1.2, 1.1, 1.0, 1.0, 1.1, 1.3, 1.4, 1.3, 1.1, 0.9, 0.8, 0.7])  # fmt: skip
    for i in range(side):
        for j in range(side):
            wn.add_junction(
                f"J{i}_{j}",
                base_demand=0.0004,
                demand_pattern="day",
                elevation=10.0 + 0.02 * (i + j),
                coordinates=(i * 100.0, j * 100.0),
            )
    wn.add_reservoir("R", base_head=75.0, coordinates=(-200.0, -200.0))
    wn.add_pipe("MAIN", "R", "J0_0", length=300.0, diameter=1.0, roughness=120.0)
    for i in range(side):
        for j in range(side):
            trunk = 0.4 if i % 10 == 0 or j % 10 == 0 else 0.15
            if i + 1 < side:
                wn.add_pipe(f"X{i}_{j}", f"J{i}_{j}", f"J{i + 1}_{j}", 100.0, trunk, 110.0)
            if j + 1 < side:
                wn.add_pipe(f"Y{i}_{j}", f"J{i}_{j}", f"J{i}_{j + 1}", 100.0, trunk, 110.0)
    wn.options.time.duration = 24 * 3600
    wn.options.time.hydraulic_timestep = 3600
    wn.options.time.pattern_timestep = 3600
    wntr.network.write_inpfile(wn, str(path), units="LPS")


def import_with_layer(engine: Engine, path: Path, folder: Path, placement: dict[str, Any]) -> int:
    import wntr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = wntr.network.WaterNetworkModel(str(path))
    layer = wntr.network.generate_valve_layer(wn, placement_type="strategic", n=2, seed=1)
    valves = folder / f"{path.stem}_valves.csv"
    layer.to_csv(valves)
    options = PipeImportOptions(valves=valves, replace=True, **placement)
    [result] = import_pipes(engine, [path], options)
    return int(result.dataset.id)


def time_shutdown(engine: Engine, dataset: int, burst: str, solver: Solver) -> dict[str, Any]:
    with Session(engine) as session:
        segment = session.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = :c"),
            {"d": dataset, "c": burst},
        ).scalar_one()
        started = time.perf_counter()
        answer = shutdown_impact(session, segment_id=segment, duration_h=24, engine=solver)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "closed_links": len(answer.closed_links),
        "cut_off_nodes": len(answer.isolated_nodes),
        "affected_beyond": answer.affected_beyond_count,
        "not_served_m3": answer.demand.not_served_m3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junctions", type=int, default=5000)
    parser.add_argument("--wntr-baseline", action="store_true")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with bench_database(args.database_url) as engine, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ky4 = import_with_layer(
            engine, SHARED_SAMPLES / "pipes" / "ky4.inp", folder, {"crs": "EPSG:3547"}
        )
        figures["ky4"] = time_shutdown(engine, ky4, "P-100", "epanet")
        if args.wntr_baseline:
            figures["ky4_wntr_simulator"] = time_shutdown(engine, ky4, "P-100", "wntr")
        print(json.dumps(figures), flush=True)
        grid = folder / "grid.inp"
        grid_network(grid, args.junctions)
        dataset = import_with_layer(engine, grid, folder, {"origin": ORIGIN})
        side = math.ceil(math.sqrt(args.junctions))
        figures["grid"] = time_shutdown(engine, dataset, f"X{side // 2}_{side // 2}", "epanet")
        figures["grid"]["junctions"] = side * side
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dataset"))
    result = {
        "bench": "simulation",
        **figures,
        "baseline": "WNTRSimulator (--wntr-baseline, ky4)",
        "goal": f"24 h shutdown <= {GOAL_S:g} s each (ky4, {args.junctions} junctions)",
        "pass": figures["ky4"]["seconds"] <= GOAL_S and figures["grid"]["seconds"] <= GOAL_S,
    }
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
