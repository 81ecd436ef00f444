"""Bench: tile throughput on dask.distributed with 1 and 2 workers (``bench/tiles.py --dask``).

The synthetic city of ``bench/tiles.py`` (``bench.cities.load_tiles_city``) is built three
times: in this process (the local build), then with a LocalCluster of 1 and of 2
single-threaded worker processes. Each build's files are hashed, so the bench also checks that
the dask output is byte-identical to the local one. Goal: identical output, and 2 workers
>= 1.5x the features/s of 1 worker when two cores are free (on a shared, loaded machine the
ratio says more about the load than about dask).
Usage: ``python bench/tiles_dask.py [--blocks 20] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cities import SRID, load_tiles_city
from bench.common import bench_database
from bench.generator import SyntheticCity
from tiles.build import build_mesh_layer
from tiles.distributed import dask_renderer

LAYERS = ("buildings", "pipes")
GOAL_SPEEDUP = 1.5


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _build(engine: Any, workers: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cim-bench-dask-") as out:
        if workers is None:
            started = time.perf_counter()
            results = [build_mesh_layer(engine, Path(out), n, force=True) for n in LAYERS]
            seconds = time.perf_counter() - started
        else:
            with dask_renderer(workers=workers) as renderer:  # cluster start not timed
                started = time.perf_counter()
                results = [
                    build_mesh_layer(engine, Path(out), n, force=True, renderer=renderer)
                    for n in LAYERS
                ]
                seconds = time.perf_counter() - started
        features = sum(r.features for r in results)
        return {
            "features": features,
            "tiles": sum(r.tiles for r in results),
            "seconds": round(seconds, 2),
            "features_per_s": round(features / seconds),
            "digest": _digest(Path(out)),
        }


def run(blocks: int, database_url: str | None) -> dict[str, Any]:
    with bench_database(database_url, srid=SRID) as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset")
        load_tiles_city(engine, SyntheticCity(seed=7, blocks_x=blocks, blocks_y=blocks))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        local = _build(engine, None)
        one = _build(engine, 1)
        two = _build(engine, 2)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset")
    identical = local["digest"] == one["digest"] == two["digest"]
    speedup = two["features_per_s"] / one["features_per_s"]
    for name, figures in (("local", local), ("dask 1 worker", one), ("dask 2 workers", two)):
        print(
            f"{name:>15}: {figures['features']:,} features, {figures['tiles']:,} tiles in "
            f"{figures['seconds']} s = {figures['features_per_s']:,} features/s"
        )
    print(f"{'identical':>15}: {identical}; 2 workers / 1 worker = x{speedup:.2f}")
    return {
        "bench": "tiles_dask",
        "features": local["features"],
        "tiles": local["tiles"],
        "local_features_per_s": local["features_per_s"],
        "dask1_features_per_s": one["features_per_s"],
        "dask2_features_per_s": two["features_per_s"],
        "speedup_2_vs_1": round(speedup, 2),
        "byte_identical": identical,
        "goal": f"byte-identical to local; 2 workers >= {GOAL_SPEEDUP}x 1 worker",
        "pass": identical and speedup >= GOAL_SPEEDUP,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=20, help="city is blocks x blocks")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print("BENCH " + json.dumps(run(args.blocks, args.database_url)))


if __name__ == "__main__":
    main()
