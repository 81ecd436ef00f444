"""Bench: importing N synthetic pipe segments (with their nodes) vs a raw COPY of the same rows.

The synthetic city (``bench/generator.py``) is turned into the importer's network (in the
storage CRS, as a reader would leave it); the timed import runs what ``cim import pipes`` runs
after reading: CJJ 61 QC, 3D placement, spatially ordered COPY into the indexed, constrained
``pipe_node``/``pipe_segment`` through ``run_import`` (one transaction, commit included).
Baseline: the very same rows COPYed into bare tables (no index, no constraint) in one
transaction, by the same writer (same ids, same binary encoding, same row order, same
pipelining), after the import's background work (vacuum, analyse, checkpoint) is done.

Stages printed: generate (the bench's stand-in for parsing), QC, placement, encoding (client
CPU on the encoder thread, overlapped with the COPY), COPY (wall time of the two COPY
statements), of which index maintenance (COPY into the indexed tables minus the baseline's COPY
of the same rows into bare ones), index drop and build (when the import defers them), id
reservation, FK check (the one set-based check that
replaces the per-row triggers), version bookkeeping (dataset ready + version 1, until COMMIT is
sent) and commit. Usage: ``python bench/pipes.py [--segments N] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, event
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

    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    started = time.perf_counter()
    network = synthetic_network(args.segments)
    generate_seconds = time.perf_counter() - started
    print(
        f"generated {len(network.nodes):,} nodes, {len(network.segments):,} segments "
        f"in {generate_seconds:.1f} s",
        flush=True,
    )

    with bench_database(args.database_url, srid=SRID) as engine:
        stages: dict[str, float] = {}
        _checkpoint(engine)
        import_seconds, counts = timed_import(engine, network, stages)
        raw_stages: dict[str, float] = {}
        _settle(engine)
        raw_seconds = timed_raw_copy(
            engine, network, raw_stages, code_order_rows="rows_in_code_order" in stages
        )
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset WHERE name = 'bench'")

    segments = int(counts["pipe_segment"])
    ratio = raw_seconds / import_seconds
    copy_seconds = stages["copy_nodes"] + stages["copy_segments"]
    raw_copy = raw_stages["copy_nodes"] + raw_stages["copy_segments"]
    table = {
        "generate (parse)": generate_seconds,
        "QC": stages["qc"],
        "placement": stages["placement"],
        "encoding (thread)": stages["encoding"],
        "id reservation": stages["reserve_ids"],
        "COPY (wall)": copy_seconds,
        "  of which index maint.": copy_seconds - raw_copy,
        "index drop (deferred)": stages.get("defer_indexes", 0.0),
        "index build after COPY": stages.get("index_build", 0.0),
        "FK check": stages["fk_check"],
        "statistics (ANALYZE)": stages.get("statistics", 0.0),
        "version bookkeeping": stages["bookkeeping"],
        "commit": stages["commit"],
    }
    print(f"{'stage':<26}{'import s':>10}{'raw COPY s':>12}")
    raw_table = {
        "encoding (thread)": raw_stages["encoding"],
        "id reservation": raw_stages.get("reserve_ids", 0.0),
        "COPY (wall)": raw_copy,
        "commit": raw_stages["commit"],
    }
    for name, seconds in table.items():
        baseline = f"{raw_table[name]:>12.2f}" if name in raw_table else f"{'':>12}"
        print(f"{name:<26}{seconds:>10.2f}{baseline}")
    figures = {
        "bench": "pipes",
        "segments": segments,
        "nodes": int(counts["pipe_node"]),
        "import_s": round(import_seconds, 2),
        "import_segments_per_s": round(segments / import_seconds),
        "raw_copy_s": round(raw_seconds, 2),
        "raw_copy_segments_per_s": round(segments / raw_seconds),
        "ratio_vs_raw_copy": round(ratio, 3),
        "stages_s": {name.strip(): round(seconds, 2) for name, seconds in table.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "goal": "ratio >= 0.5 and <= 30 s per 1M segments (scaled to N)",
        "pass": ratio >= 0.5 and import_seconds <= 30.0 * segments / 1_000_000,
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


def _checkpoint(engine: Engine) -> None:
    """Flush the WAL the previous step wrote, so that neither timed step pays for the other's
    checkpoint (the import writes ~2 GB of WAL at 1M segments; a checkpoint it triggered
    used to land in the raw COPY that follows and slow the baseline by up to 4 s)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")


def _settle(engine: Engine) -> None:
    """Do now, untimed, what the server would do in the background after the import (vacuum
    and analyse the 2M new rows, checkpoint their WAL), so that the baseline's COPY does not
    share the two cores with an autovacuum worker (raw COPY 9.4 s beside it, vs ~5 s)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) pipe_node, pipe_segment")
    _checkpoint(engine)


def timed_import(
    engine: Engine, network: Network, stages: dict[str, float]
) -> tuple[float, dict[str, Any]]:
    """What ``cim import pipes`` runs after reading, in one transaction: seconds, counts.

    ``stages`` receives the seconds of each stage (see the module docstring).
    """
    marks: dict[str, float] = {}

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        began = time.perf_counter()
        clean, issues = qc.check_source(network)
        checked = time.perf_counter()
        placed = place(clean, default_cover=1.0, ground=None)
        placed_at = time.perf_counter()
        report = qc.report(issues + qc.check_placed(placed))
        stages["qc"] = checked - began + time.perf_counter() - placed_at
        stages["placement"] = placed_at - checked
        nodes, segments = write_network(
            session, dataset_id=dataset.id, srid=SRID, placed=placed, timings=stages
        )
        marks["written"] = time.perf_counter()
        return WriteOutcome(counts={"pipe_node": nodes, "pipe_segment": segments}, qc=report)

    def committing(_connection: Any) -> None:
        marks["commit"] = time.perf_counter()

    event.listen(engine, "commit", committing)
    started = time.perf_counter()
    try:
        result = run_import(
            engine,
            source=DatasetSource(
                kind="pipes", name="bench", source_name="generated",
                source_sha256=f"bench-{time.time_ns()}",
            ),
            write=write,
        )  # fmt: skip
    finally:
        event.remove(engine, "commit", committing)
    finished = time.perf_counter()
    stages["bookkeeping"] = marks["commit"] - marks["written"]
    stages["commit"] = finished - marks["commit"]
    return finished - started, result.dataset.counts


def timed_raw_copy(
    engine: Engine, network: Network, stages: dict[str, float], *, code_order_rows: bool
) -> float:
    """Baseline: the same rows (same placement, ids, encodings and order) into bare tables."""
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
            code_order_rows=code_order_rows, timings=stages,
        )  # fmt: skip
        committing = time.perf_counter()
    seconds = time.perf_counter() - started
    stages["commit"] = time.perf_counter() - committing
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_raw_node, bench_raw_segment")
    return seconds


if __name__ == "__main__":
    main()
