"""Bench: urban flooding (城市内涝), a generated 1,000-node drainage network, 2 h design storm.

A square grid of junctions 50 m apart drains row by row into a trunk column, then down it
to one outfall (inverts falling 0.3 % along the flow, pipes sized by the rational method for
P = 2 a, :func:`design_diameter`), one 0.1 ha subcatchment per junction (60 % impervious);
written as a SWMM .inp, imported through the SWMM importer into a throwaway database with a
2 m DEM of the same area (a gentle slope with shallow dips, so flooded nodes get extents).
``flood_simulation`` runs end to end: the model read from PostGIS and written, a Shenzhen 2024
(中部) P = 5 a, 120 min Chicago storm (r = 0.4) plus 2 h of draining under dynamic wave
routing, the answer with DEM extents and GeoJSON. The baseline is SWMM alone (``run_swmm``:
pyswmm and the statistics read) on the generated file.

Goal (issue 19): <= 10 s. Usage: ``python bench/flood.py [--nodes N] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_database
from cim.services.simulation.flood import flood_simulation, run_swmm
from cim.services.simulation.storm import FORMULAS, chicago_storm, timeseries_lines
from importers.pipes import PipeImportOptions, import_pipes
from importers.terrain import import_terrain

GOAL_S = 10.0
ORIGIN = (500_000.0, 3_400_000.0, 0.0)
SPACING_M = 50.0
AREA_HA = 0.1
OPTIONS = """FLOW_UNITS LPS
INFILTRATION HORTON
FLOW_ROUTING DYNWAVE
LINK_OFFSETS DEPTH
START_DATE 01/01/2000
START_TIME 00:00:00
REPORT_START_DATE 01/01/2000
REPORT_START_TIME 00:00:00
END_DATE 01/01/2000
END_TIME 04:00:00
REPORT_STEP 00:05:00
WET_STEP 00:01:00
DRY_STEP 01:00:00
ROUTING_STEP 0:00:05
VARIABLE_STEP 0.75
MINIMUM_STEP 0.5
THREADS 1"""


def ground(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Ground height: 0.3 % down towards the outfall corner, with shallow dips (±0.4 m)."""
    return np.asarray(20.0 + 0.003 * (x + y) + 0.4 * np.sin(x / 90.0) * np.cos(y / 110.0))


def drainage_network(path: Path, nodes: int, storm_lines: list[str], gage: str) -> int:
    """Write the grid network; returns the number of junctions."""
    side = math.ceil(math.sqrt(nodes))
    names = {(i, j): f"J{i}_{j}" for i in range(side) for j in range(side)}
    xs = {k: k[0] * SPACING_M for k in names}
    ys = {k: k[1] * SPACING_M for k in names}
    # flow: along each row (decreasing i) to column 0, then down column 0 (decreasing j)
    downstream = {(i, j): (i - 1, j) if i > 0 else (0, j - 1) for i, j in names if (i, j) != (0, 0)}
    distance: dict[tuple[int, int], float] = {}
    for key in sorted(names, key=lambda k: (k[0], k[1])):
        i, j = key
        distance[key] = j * SPACING_M if i == 0 else distance[(i - 1, j)] + SPACING_M
    invert = {k: 15.0 + 0.003 * distance[k] for k in names}
    sections: dict[str, list[str]] = {
        "OPTIONS": OPTIONS.splitlines(),
        "RAINGAGES": [raingage_line_for(storm_lines, gage)],
        "TIMESERIES": storm_lines,
        "SUBCATCHMENTS": [],
        "SUBAREAS": [],
        "INFILTRATION": [],
        "JUNCTIONS": [],
        "OUTFALLS": ["OUT 14.5 FREE NO"],
        "CONDUITS": [],
        "XSECTIONS": [],
        "COORDINATES": [f"OUT 0 {-SPACING_M}"],
    }
    for key, name in names.items():
        depth = float(ground(np.array(xs[key]), np.array(ys[key]))) - invert[key]
        sections["JUNCTIONS"].append(f"{name} {invert[key]:.3f} {depth:.3f} 0 0 0")
        sections["COORDINATES"].append(f"{name} {xs[key]} {ys[key]}")
        sections["SUBCATCHMENTS"].append(f"S{name} {gage} {name} {AREA_HA} 60 30 0.5 0")
        sections["SUBAREAS"].append(f"S{name} 0.012 0.15 1.9 5.1 25 OUTLET")
        sections["INFILTRATION"].append(f"S{name} 76.2 12.7 4 7")
        target = downstream.get(key)
        to = names[target] if target else "OUT"
        upstream = side - key[0] if key[0] > 0 else side * (side - key[1])
        diameter = design_diameter(upstream * AREA_HA)
        sections["CONDUITS"].append(f"C{name} {name} {to} {SPACING_M} 0.013 0 0 0 0")
        sections["XSECTIONS"].append(f"C{name} CIRCULAR {diameter:.2f} 0 0 0 1")
    path.write_text("\n\n".join(f"[{k}]\n" + "\n".join(v) for k, v in sections.items()) + "\n")
    return len(names)


DESIGN_FLOW_L_S_HA = 0.6 * 317.0
"""Rational method: runoff coefficient 0.6 x q of the Shenzhen (中部) P = 2 a formula at 15 min
(4728.6 / (15 + 18.446)^0.770 = 317 L/(s·hm²)): a network designed for P = 2 a, run at 5 a."""
SIZES_M = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0)


def design_diameter(area_ha: float) -> float:
    """The smallest standard pipe whose full-flow Manning capacity (n 0.013, slope 0.3 %)
    carries the design flow of ``area_ha``."""
    flow = DESIGN_FLOW_L_S_HA * area_ha / 1000.0
    for size in SIZES_M:
        capacity = (math.pi * size**2 / 4) * (size / 4) ** (2 / 3) * 0.003**0.5 / 0.013
        if capacity >= flow:
            return size
    return SIZES_M[-1]


def raingage_line_for(storm_lines: list[str], gage: str) -> str:
    return f"{gage} INTENSITY 0:05 1.0 TIMESERIES STORM"


def dem(path: Path, side: int) -> None:
    """A 2 m DEM (EPSG:4547) of the grid's area plus a 300 m margin."""
    import rasterio
    from rasterio.transform import from_origin

    margin, cell = 300.0, 2.0
    size = int((side * SPACING_M + 2 * margin) / cell)
    cols = -margin + cell / 2 + cell * np.arange(size)
    rows = side * SPACING_M + margin - cell / 2 - cell * np.arange(size)
    xx, yy = np.meshgrid(cols, rows)
    z = ground(xx, yy).astype("float32")
    west, north = ORIGIN[0] - margin, ORIGIN[1] + side * SPACING_M + margin
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
        crs="EPSG:4547", transform=from_origin(west, north, cell, cell), nodata=-9999.0,
    ) as out:  # fmt: skip
        out.write(z, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    storm = chicago_storm(
        FORMULAS["shenzhen-2024-central"], return_period=5, duration_min=120, peak_ratio=0.4
    )
    with bench_database(args.database_url) as engine, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        network = folder / "drainage.inp"
        junctions = drainage_network(
            network, args.nodes, timeseries_lines(storm, "STORM", us_units=False), "RG"
        )
        started = time.perf_counter()
        run_swmm(network)
        baseline = time.perf_counter() - started
        side = math.ceil(math.sqrt(args.nodes))
        dem(folder / "dem.tif", side)
        import_terrain(engine, folder / "dem.tif")
        [imported] = import_pipes(engine, [network], PipeImportOptions(origin=ORIGIN))
        with Session(engine) as session:
            started = time.perf_counter()
            answer = flood_simulation(session, imported.dataset.id, storm=storm, tail_h=2.0)
            seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dataset"))
    with_extent = [n for n in answer.flooded_nodes if n.extent is not None]
    result = {
        "bench": "flood",
        "junctions": junctions,
        "storm": f"shenzhen-2024-central P=5 a 120 min r=0.4, {storm.total_mm:.1f} mm, +2 h",
        "seconds": round(seconds, 2),
        "flooded_nodes": answer.totals.flooded_node_count,
        "extents": len(with_extent),
        "flood_volume_m3": answer.totals.flood_volume_m3,
        "surcharged_conduits": answer.totals.surcharged_conduit_count,
        "baseline": "SWMM alone (run_swmm) on the generated .inp",
        "baseline_seconds": round(baseline, 2),
        "goal": f"1,000-node drainage network, 2 h storm <= {GOAL_S:g} s",
        "pass": seconds <= GOAL_S,
    }
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
