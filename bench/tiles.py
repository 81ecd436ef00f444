"""Bench: 3D Tiles of a synthetic city (bench/generator.py) - features/s, triangles/s, size, memory.

Every generated building becomes five elements (four walls and a roof, 12 triangles each) of
an IFC-like dataset; every generated pipe segment and every valve/manhole becomes a feature of
the pipes layer. Both layers are built (3D Tiles 1.1) in a fresh process whose peak RSS is the
memory figure; a second city with a quarter of the blocks is built too, so the ratio of peak
memory to features shows whether memory stays bounded as the layer grows.
Baseline: pg2b3dm's published 1,400-3,800 features/s (3D BAG, IGN; large machines). Goal:
>= 5,000 features/s on this 2-core machine. Usage:
``python bench/tiles.py [--blocks 30] [--database-url URL] [--spec 1.1] [--dask]``
(``--dask``: 1 vs 2 dask workers, see bench/tiles_dask.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cities import SRID, load_tiles_city
from bench.common import bench_database
from bench.generator import SyntheticCity

BASELINE_FEATURES_PER_S = 3_800  # pg2b3dm on IGN France, its best published figure
GOAL = 5_000


def _build(url: str, out: str, spec: str, queue: Any) -> None:
    """Child process: build both layers and report figures with this process's peak RSS."""
    from cim.db.engine import make_engine
    from tiles.build import build_mesh_layer

    engine = make_engine(url)
    started = time.perf_counter()
    results = [
        build_mesh_layer(engine, Path(out), layer, spec=spec, force=True).to_dict()
        for layer in ("buildings", "pipes", "pipes_restricted")
    ]
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"results": results, "seconds": seconds, "peak_mb": peak_mb})
    engine.dispose()


def measure(engine: Any, blocks: int, spec: str) -> dict[str, Any]:
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM dataset")
    load_tiles_city(engine, SyntheticCity(seed=7, blocks_x=blocks, blocks_y=blocks))
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with tempfile.TemporaryDirectory(prefix="cim-bench-tiles-") as out:
        url = engine.url.render_as_string(hide_password=False)
        child = context.Process(target=_build, args=(url, out, spec, queue))
        child.start()
        figures = queue.get()
        child.join()
    features = sum(r["features"] for r in figures["results"])
    triangles = sum(r["triangles"] for r in figures["results"])
    return {
        "features": features,
        "triangles": triangles,
        "tiles": sum(r["tiles"] for r in figures["results"]),
        "seconds": round(figures["seconds"], 2),
        "features_per_s": round(features / figures["seconds"]),
        "triangles_per_s": round(triangles / figures["seconds"]),
        "output_mb": round(sum(r["bytes"] for r in figures["results"]) / 1e6, 1),
        "peak_rss_mb": round(figures["peak_mb"], 1),
        "largest_tile_kb": round(max(r["largest_tile_bytes"] for r in figures["results"]) / 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=30, help="city is blocks x blocks")
    parser.add_argument("--spec", default="1.1", choices=["1.1", "1.0"])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--dask", action="store_true", help="1 vs 2 dask workers instead")
    args = parser.parse_args()
    if args.dask:  # bench/tiles_dask.py: throughput on dask.distributed, same city
        from bench.tiles_dask import run

        print("BENCH " + json.dumps(run(args.blocks, args.database_url)))
        return
    with bench_database(args.database_url, srid=SRID) as engine:
        small = measure(engine, max(2, args.blocks // 2), args.spec)
        large = measure(engine, args.blocks, args.spec)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset")
    growth = large["features"] / small["features"]
    memory_growth = large["peak_rss_mb"] / small["peak_rss_mb"]
    result = {
        "bench": "tiles",
        "spec": args.spec,
        **{k: v for k, v in large.items() if v is not None},
        "small_city_features": small["features"],
        "small_city_peak_rss_mb": small["peak_rss_mb"],
        "features_x": round(growth, 2),
        "memory_x": round(memory_growth, 2),
        "ratio_vs_pg2b3dm": round(large["features_per_s"] / BASELINE_FEATURES_PER_S, 2),
        "goal": f">= {GOAL} features/s; memory grows far slower than features",
        "pass": large["features_per_s"] >= GOAL and memory_growth < growth / 2,
    }
    for key in (
        "features",
        "triangles",
        "tiles",
        "seconds",
        "features_per_s",
        "triangles_per_s",
        "output_mb",
        "peak_rss_mb",
    ):
        print(f"{key:>16}: {large[key]}")
    print(f"{'memory growth':>16}: x{memory_growth:.2f} for x{growth:.2f} features")
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
