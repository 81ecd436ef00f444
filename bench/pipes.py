"""Bench: importing N synthetic pipe segments (with their nodes) vs a raw COPY of the same rows.

The synthetic city (``bench/generator.py``) is turned into the importer's network (in the
storage CRS, as a reader would leave it); the timed import runs what ``cim import pipes`` runs
after reading: CJJ 61 QC, 3D placement, spatially ordered COPY into the indexed, constrained
``pipe_node``/``pipe_segment`` through ``run_import`` (one transaction, commit included).
Baseline: the very same rows COPYed into bare tables (no index, no constraint) in one
transaction. Usage: ``python bench/pipes.py [--segments N] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_database
from bench.generator import city_for_segments
from cim.db.models import Dataset
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import
from importers.pipes import qc
from importers.pipes.network import Network, node_frame, segment_frame
from importers.pipes.topology import place
from importers.pipes.writer import NODE_COLUMNS, SEGMENT_COLUMNS, write_network

SRID = 4547


def synthetic_network(segments_wanted: int) -> Network:
    """The generator's city as the network a reader would produce (storage CRS, metres)."""
    city = city_for_segments(segments_wanted)
    nodes, segments = city.pipes()
    segments = segments[:segments_wanted]
    node_table = node_frame(
        len(nodes),
        code=[n.code for n in nodes],
        x=np.array([n.x for n in nodes]),
        y=np.array([n.y for n in nodes]),
        ground_z=np.array([n.ground_z for n in nodes]),
        kind=[n.kind for n in nodes],
        utility=[n.utility for n in nodes],
    )
    segment_table = segment_frame(
        len(segments),
        code=[s.code for s in segments],
        start=[s.start for s in segments],
        end=[s.end for s in segments],
        start_top=np.array([s.coords[0][2] for s in segments]),
        end_top=np.array([s.coords[1][2] for s in segments]),
        depth_ref="top",
        section_shape="circular",
        diameter_mm=np.array([s.diameter_mm for s in segments], dtype=np.float64),
        material=[s.material for s in segments],
        year=np.array([s.year for s in segments], dtype=np.float64),
        link_type="pipe",
        utility=[s.utility for s in segments],
    )
    return Network(nodes=node_table, segments=segment_table, source_format="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    network = synthetic_network(args.segments)
    print(
        f"generated {len(network.nodes):,} nodes, {len(network.segments):,} segments "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    with bench_database(args.database_url, srid=SRID) as engine:
        import_seconds, counts = timed_import(engine, network)
        raw_seconds = timed_raw_copy(engine, network)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset WHERE name = 'bench'")

    segments = int(counts["pipe_segment"])
    ratio = raw_seconds / import_seconds
    figures = {
        "bench": "pipes",
        "segments": segments,
        "nodes": int(counts["pipe_node"]),
        "import_s": round(import_seconds, 2),
        "import_segments_per_s": round(segments / import_seconds),
        "raw_copy_s": round(raw_seconds, 2),
        "raw_copy_segments_per_s": round(segments / raw_seconds),
        "ratio_vs_raw_copy": round(ratio, 3),
        "goal": "ratio >= 0.5 and <= 60 s per 1M segments (scaled to N)",
        "pass": ratio >= 0.5 and import_seconds <= 60.0 * segments / 1_000_000,
    }
    print(
        f"import       : {figures['import_segments_per_s']:>10,} segments/s "
        f"({import_seconds:.1f} s)"
    )
    print(
        f"raw COPY     : {figures['raw_copy_segments_per_s']:>10,} segments/s ({raw_seconds:.1f} s)"
    )
    print(f"ratio        : {figures['ratio_vs_raw_copy']}")
    print("BENCH " + json.dumps(figures))


def timed_import(engine: Engine, network: Network) -> tuple[float, dict[str, Any]]:
    """What ``cim import pipes`` runs after reading, in one transaction: seconds, counts."""

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        clean, issues = qc.check_source(network)
        placed = place(clean, default_cover=1.0, ground=None)
        report = qc.report(issues + qc.check_placed(placed))
        nodes, segments = write_network(session, dataset_id=dataset.id, srid=SRID, placed=placed)
        return WriteOutcome(counts={"pipe_node": nodes, "pipe_segment": segments}, qc=report)

    started = time.perf_counter()
    result = run_import(
        engine,
        source=DatasetSource(
            kind="pipes", name="bench", source_name="generated",
            source_sha256=f"bench-{time.time_ns()}",
        ),
        write=write,
    )  # fmt: skip
    return time.perf_counter() - started, result.dataset.counts


def timed_raw_copy(engine: Engine, network: Network) -> float:
    """Baseline: the same rows (same placement, ids and encodings) into bare tables."""
    clean, _ = qc.check_source(network)
    placed = place(clean, default_cover=1.0, ground=None)
    with engine.begin() as conn:
        for table, columns in (
            ("bench_raw_node", NODE_COLUMNS),
            ("bench_raw_segment", SEGMENT_COLUMNS),
        ):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            conn.exec_driver_sql(
                f"CREATE TABLE {table} AS SELECT dataset_id, {', '.join(columns)} FROM "
                f"{'pipe_node' if table.endswith('node') else 'pipe_segment'} LIMIT 0"
            )
    ids = (list(range(1, len(placed.nodes) + 1)), list(range(1, len(placed.segments) + 1)))
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        write_network(
            session, dataset_id=0, srid=SRID, placed=placed,
            tables=("bench_raw_node", "bench_raw_segment"), ids=ids,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_raw_node, bench_raw_segment")
    return seconds


if __name__ == "__main__":
    main()
