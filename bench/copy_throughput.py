"""Bench: writing generated pipe nodes through cim's import path vs a raw COPY into a bare table.

Baseline: ``COPY`` of the same rows into an unindexed, unconstrained table (the fastest the
server can take them). Prints rows/s for both and the ratio. Usage:
``python bench/copy_throughput.py [--nodes N] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_database
from bench.generator import city_for_segments
from cim.db.copy import copy_rows
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=200_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    city = city_for_segments(args.nodes)
    nodes, _ = city.pipes()
    nodes = nodes[: args.nodes]
    srid = 4547
    ewkb = [
        shapely.to_wkb(
            shapely.set_srid(shapely.Point(n.x, n.y, n.ground_z), srid), hex=True, include_srid=True
        )
        for n in nodes
    ]

    with bench_database(args.database_url, srid=srid) as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_raw_node")
            conn.exec_driver_sql(
                "CREATE TABLE bench_raw_node (dataset_id bigint, code text, utility text,"
                " kind text, geom geometry, attrs jsonb)"
            )
        from sqlalchemy.orm import Session

        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            copy_rows(
                session,
                table="bench_raw_node",
                columns=["dataset_id", "code", "utility", "kind", "geom", "attrs"],
                rows=(
                    [0, n.code, n.utility, n.kind, g, "{}"]
                    for n, g in zip(nodes, ewkb, strict=True)
                ),
            )
        raw_seconds = time.perf_counter() - started

        def write(session, dataset):  # type: ignore[no-untyped-def]
            count = copy_rows(
                session,
                table="pipe_node",
                columns=["dataset_id", "code", "utility", "kind", "geom", "attrs"],
                rows=(
                    [dataset.id, n.code, n.utility, n.kind, g, "{}"]
                    for n, g in zip(nodes, ewkb, strict=True)
                ),
            )
            return WriteOutcome(counts={"pipe_node": count})

        started = time.perf_counter()
        run_import(
            engine,
            source=DatasetSource(
                kind="pipes",
                name="bench",
                source_name="generated",
                source_sha256=f"bench-{time.time_ns()}",
            ),
            write=write,
        )
        cim_seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE bench_raw_node")
            conn.exec_driver_sql("DELETE FROM dataset WHERE name = 'bench'")

    result = {
        "bench": "copy_throughput",
        "rows": len(nodes),
        "raw_copy_rows_per_s": round(len(nodes) / raw_seconds),
        "cim_import_rows_per_s": round(len(nodes) / cim_seconds),
        "ratio_vs_raw_copy": round(raw_seconds / cim_seconds, 3),
        "goal": "ratio >= 0.5 (GiST + btree indexes and FK cost the rest)",
        "pass": raw_seconds / cim_seconds >= 0.5,
    }
    print(f"raw COPY     : {result['raw_copy_rows_per_s']:>10,} rows/s")
    print(f"cim import   : {result['cim_import_rows_per_s']:>10,} rows/s")
    print(f"ratio        : {result['ratio_vs_raw_copy']}")
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
