"""Bench: a new version of a big pipe dataset, and ``datetime`` queries against plain ones.

A generated city (bench/generator.py) of ``--segments`` pipe segments is imported as one
dataset; then the same network is imported again under the same name with ``--changed`` (1 %)
of its segments changed (diameter) and as many moved 2 m — the versions merge
(cim/services/versions/merge.py) makes it version 2. Printed: the merge's import time against
the first import's, the rows version 2 wrote (history rows + rows rewritten in place) against the
total, then p50/p95 of OGC items on random 300 m bboxes of ``pipe_segments`` without
``datetime``, with an instant before version 2, and with the current instant.
Goals (issue 18): version 2 stores <= 2 % of the rows again; ``datetime`` p95 within 1.5x of the
same bbox query without it.
Usage: ``python bench/time_travel.py [--segments 200000] [--changed 0.01] [--queries 300]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.cities import SRID
from bench.common import bench_database
from bench.generator import SyntheticCity, city_for_segments
from bench.rows import NodeRow, SegmentRow, copy_nodes, copy_segments
from cim.services.datasets import DatasetSource
from cim.services.ogc.crs import parse_ogc_crs
from cim.services.ogc.features import query_items
from cim.services.ogc.models import ItemsQuery
from cim.services.ogc.specs import collection_specs
from cim.services.versions.timetravel import spec_at
from importers.base import WriteOutcome, run_import

GOAL_STORED_SHARE = 0.02
GOAL_P95_RATIO = 1.5
NAME = "bench-time-travel"


def _import(engine: Engine, city: SyntheticCity, changed: set[str], version: int) -> float:
    """Import the city's pipes under one name; ``changed`` segments get DN+100 and move 2 m."""
    nodes, segments = city.pipes()

    def write(session: Session, dataset: Any) -> WriteOutcome:
        rows = [
            NodeRow(n.code, n.x, n.y, n.ground_z, utility=n.utility, kind=n.kind) for n in nodes
        ]
        ids = copy_nodes(session, dataset_id=dataset.id, srid=SRID, nodes=rows)
        out = []
        for s in segments:
            line = shapely.LineString(s.coords)
            diameter = s.diameter_mm
            if s.code in changed:
                line = shapely.affinity.translate(line, xoff=2.0)
                diameter = (diameter or 100) + 100
            out.append(
                SegmentRow(s.code, s.start, s.end, line, utility=s.utility,
                           diameter_mm=diameter, material=s.material, year=s.year)
            )  # fmt: skip
        copy_segments(session, dataset_id=dataset.id, srid=SRID, segments=out, node_ids=ids)
        return WriteOutcome(counts={"pipe_node": len(nodes), "pipe_segment": len(segments)})

    source = DatasetSource(
        kind="pipes",
        name=NAME,
        source_name="generated",
        source_sha256=f"v{version}-{time.time_ns()}",
    )
    started = time.perf_counter()
    run_import(engine, source=source, write=write)
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("ANALYZE pipe_node; ANALYZE pipe_segment; ANALYZE feature_history"))
    return elapsed


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _queries(
    engine: Engine, boxes: list[tuple[float, float, float, float]], spec: Any
) -> tuple[float, float]:
    times = []
    crs = parse_ogc_crs(f"http://www.opengis.net/def/crs/EPSG/0/{SRID}", SRID)
    with Session(engine) as session:
        for box in boxes:
            query = ItemsQuery(limit=100, bbox=box, bbox_crs=crs, crs=crs)
            started = time.perf_counter()
            query_items(session, spec=spec, query=query, storage_srid=SRID)
            times.append((time.perf_counter() - started) * 1000)
    return _percentiles(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=200_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} (2-core machine)", flush=True)
    city = city_for_segments(args.segments)
    _, segments = city.pipes()
    rng = random.Random(7)
    changed = {s.code for s in rng.sample(segments, int(len(segments) * args.changed))}
    with bench_database(args.database_url) as engine:
        first = _import(engine, city, set(), 1)
        with engine.connect() as conn:
            v1_time = conn.execute(text("SELECT max(created_at) FROM dataset_version")).scalar_one()
            total = conn.execute(text("SELECT count(*) FROM pipe_segment")).scalar_one()
            total += conn.execute(text("SELECT count(*) FROM pipe_node")).scalar_one()
        second = _import(engine, city, changed, 2)
        with engine.connect() as conn:
            history = conn.execute(text("SELECT count(*) FROM feature_history")).scalar_one()
            datasets = conn.execute(text("SELECT count(*) FROM dataset")).scalar_one()
            rewritten = sum(
                conn.execute(
                    text(f"SELECT count(*) FROM {t} WHERE valid_from > :v1"), {"v1": v1_time}
                ).scalar_one()
                for t in ("pipe_node", "pipe_segment")
            )
        stored = history + rewritten  # old contents kept + rows rewritten in place or added
        print(f"version 1: {total:,} rows imported in {first:.1f} s")
        print(f"version 2: {len(changed):,} segments changed, merged in {second:.1f} s "
              f"({second / first:.2f}x the first import); datasets: {datasets}")  # fmt: skip
        share = stored / total
        verdict = "ok" if share <= GOAL_STORED_SHARE else "NOT MET"
        print(f"rows written again: {stored:,} of {total:,} = {share:.2%} "
              f"(goal <= {GOAL_STORED_SHARE:.0%}: {verdict})")  # fmt: skip
        x0, y0 = city.origin
        x1, y1 = x0 + city.blocks_x * city.pitch, y0 + city.blocks_y * city.pitch
        boxes = []
        for _ in range(args.queries):
            x, y = rng.uniform(x0, x1 - 300), rng.uniform(y0, y1 - 300)
            boxes.append((y, x, y + 300, x + 300))  # EPSG:4547 is northing first
        spec = {s.id: s for s in collection_specs([])}["pipe_segments"]
        before = v1_time + timedelta(seconds=0)
        plain = _queries(engine, boxes, spec)
        past = _queries(engine, boxes, spec_at(spec, (before, before)))
        later = v1_time + timedelta(days=3650)
        now = _queries(engine, boxes, spec_at(spec, (later, later)))
        print(
            f"items, 300 m bbox, p50/p95 ms: plain {plain[0]:.1f}/{plain[1]:.1f}, datetime=v1 "
            f"{past[0]:.1f}/{past[1]:.1f}, datetime=now {now[0]:.1f}/{now[1]:.1f}"
        )
        worst = max(past[1], now[1]) / plain[1]
        verdict = "ok" if worst <= GOAL_P95_RATIO else "NOT MET"
        print(f"datetime p95 / plain p95: {worst:.2f}x (goal <= {GOAL_P95_RATIO}x: {verdict})")


if __name__ == "__main__":
    main()
