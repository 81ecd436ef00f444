"""Bench: pipe analyses on generated networks - isolation, cross-section, city-wide clearance.

1. A generated water network (bench/generator.py, JS only, ~``--segments`` segments; each
   street's main is tied to the crossing street's main at every intersection by a short tee so
   the network is one meshed grid; every fifth node is an in-line valve). Burst isolation per
   request (``isolate_burst`` with its GeoJSON highlight, graph kept in memory) for random
   segments: p50/p95 ms, against the baseline of the same search as a recursive CTE in
   PostGIS (pgRouting is not part of the embedded PostGIS, so a recursive CTE is the
   database-side alternative). Cross-section p50/p95 ms on random 60 m lines across streets.
2. A generated city with all four utilities (~``--clearance-segments`` segments): the
   city-wide GB 50289 check (R-tree candidate pairs, vectorised GEOS), seconds.

Goals (issue 9): isolation p95 <= 200 ms, cross-section <= 50 ms, clearance on 1M segments
<= 60 s. Usage: ``python bench/analysis.py [--segments N] [--clearance-segments N]
[--requests N] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cities import SRID, load_pipe_network
from bench.common import bench_database
from bench.generator import SyntheticCity
from cim.services.pipes import graph as pipes_graph
from cim.services.pipes.clearance import check_clearances
from cim.services.pipes.isolation import isolate, isolate_burst
from cim.services.pipes.section import cross_section

CTE_ISOLATION = """
WITH RECURSIVE walk(node) AS (
    SELECT unnest(ARRAY[start_node_id, end_node_id]) FROM pipe_segment WHERE id = :seg
    UNION
    SELECT CASE WHEN s.start_node_id = w.node THEN s.end_node_id ELSE s.start_node_id END
    FROM walk w
    JOIN pipe_node n ON n.id = w.node
         AND NOT (n.kind = 'valve' AND COALESCE(n.valve_state, 'open') IN ('open', 'closed'))
    JOIN pipe_segment s ON s.start_node_id = w.node OR s.end_node_id = w.node
)
SELECT count(*) FROM walk
"""


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 2)


def water_bench(engine: Engine, segments: int, requests: int) -> dict[str, Any]:
    side = max(2, int(math.sqrt(segments / 8)))
    city = SyntheticCity(seed=7, blocks_x=side, blocks_y=side, utilities=("JS",))
    dataset, total = load_pipe_network(engine, city, tie_streets=True, name="bench-water")
    rng = np.random.default_rng(11)
    with Session(engine) as session:
        ids = [
            int(r)
            for r in session.execute(
                text("SELECT id FROM pipe_segment WHERE dataset_id = :d"), {"d": dataset}
            ).scalars()
        ]
        picks = [ids[i] for i in rng.integers(0, len(ids), requests)]
        started = time.perf_counter()
        pipes_graph.clear_cache()
        pipes_graph.load_graph(session, dataset)
        graph_seconds = time.perf_counter() - started
        graph = pipes_graph.load_graph(session, dataset)
        search_ms = []
        for seg in picks:
            t = time.perf_counter()
            isolate(graph, graph.segment_index(seg), frozenset())
            search_ms.append((time.perf_counter() - t) * 1000)
        iso_ms, sizes = [], []
        for seg in picks:
            t = time.perf_counter()
            answer = isolate_burst(session, segment_id=seg)
            iso_ms.append((time.perf_counter() - t) * 1000)
            sizes.append(answer.segment_count)
        cte_ms = []
        session.execute(text("SET jit = off"))
        for seg in picks[: max(10, requests // 10)]:
            t = time.perf_counter()
            session.execute(text(CTE_ISOLATION), {"seg": seg}).scalar_one()
            cte_ms.append((time.perf_counter() - t) * 1000)
        x0, y0 = city.origin
        width = side * city.pitch
        section_ms = []
        for _ in range(requests):
            cx, cy = x0 + rng.uniform(0, width), y0 + rng.uniform(0, width)
            line = (
                shapely.LineString([(cx - 30, cy), (cx + 30, cy)])
                if rng.random() < 0.5
                else shapely.LineString([(cx, cy - 30), (cx, cy + 30)])
            )
            t = time.perf_counter()
            cross_section(session, line=line.wkt, dataset_id=dataset)
            section_ms.append((time.perf_counter() - t) * 1000)
    return {
        "water_segments": total,
        "graph_load_s": round(graph_seconds, 2),
        "isolation_p50_ms": percentile(iso_ms, 50),
        "isolation_p95_ms": percentile(iso_ms, 95),
        "isolation_search_p95_ms": percentile(search_ms, 95),
        "isolation_mean_segments": round(float(np.mean(sizes)), 1),
        "cte_isolation_p95_ms": percentile(cte_ms, 95),
        "section_p50_ms": percentile(section_ms, 50),
        "section_p95_ms": percentile(section_ms, 95),
    }


def clearance_bench(engine: Engine, segments: int) -> dict[str, Any]:
    side = max(2, int(math.sqrt(segments / 32)))
    city = SyntheticCity(seed=5, blocks_x=side, blocks_y=side)
    dataset, total = load_pipe_network(engine, city, tie_streets=False, name="bench-city")
    with Session(engine) as session:
        started = time.perf_counter()
        answer = check_clearances(session, dataset_id=dataset, limit=100)
        seconds = time.perf_counter() - started
    return {
        "clearance_segments": total,
        "clearance_s": round(seconds, 1),
        "clearance_violations": answer.violation_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--clearance-segments", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with bench_database(args.database_url, srid=SRID) as engine:
        figures = water_bench(engine, args.segments, args.requests)
        print(json.dumps(figures), flush=True)
        if args.clearance_segments > 0:
            figures |= clearance_bench(engine, args.clearance_segments)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dataset WHERE name IN ('bench-water', 'bench-city')"))
    clearance_goal = (
        figures.get("clearance_s", 0) * 1_000_000 / max(figures.get("clearance_segments", 1), 1)
    )
    result = {
        "bench": "analysis",
        **figures,
        "baseline": "recursive CTE isolation in PostGIS (cte_isolation_p95_ms)",
        "ratio_isolation_vs_cte": round(
            figures["cte_isolation_p95_ms"] / max(figures["isolation_p95_ms"], 1e-9), 2
        ),
        "goal": "isolation p95 <= 200 ms, section p95 <= 50 ms, clearance <= 60 s per 1M segments",
        "pass": figures["isolation_p95_ms"] <= 200
        and figures["section_p95_ms"] <= 50
        and (args.clearance_segments <= 0 or clearance_goal <= 60),
    }
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
