"""Bench: import the largest shared DEM (ky4, 587 x 402) and build its quantized-mesh terrain.

Figures: import seconds (read + exact bilinear warp to UTM 16N + COPY of in-db raster tiles),
terrain tiles per second of wall and of CPU time (levels 0..12, the level the DEM's 27.7 m
pixels call for), peak
resident memory of the process. Baseline: a bare ``rasterio.warp.reproject`` of the whole DEM
in memory with GDAL's defaults (bilinear, 1/8-pixel approximation, no database) - the least
any importer of this file has to do. Usage:
``python bench/terrain.py [--dem PATH] [--srid 32616] [--max-zoom N] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_SAMPLES, bench_database
from importers.terrain import import_terrain
from tiles.terrain import build_terrain

GOAL_IMPORT_S = 3.0
GOAL_TILES_PER_S = 10.0
GOAL_PEAK_MB = 600.0


def _baseline_warp(dem: Path, srid: int) -> float:
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    started = time.perf_counter()
    with rasterio.open(dem) as src:
        transform, width, height = calculate_default_transform(
            src.crs, f"EPSG:{srid}", src.width, src.height, *src.bounds
        )
        out = np.empty((height, width), dtype="float32")
        reproject(
            src.read(1),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=src.nodata,
            dst_transform=transform,
            dst_crs=f"EPSG:{srid}",
            dst_nodata=src.nodata,
            resampling=Resampling.bilinear,
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--dem", type=Path, default=SHARED_SAMPLES / "terrain" / "ky4_elevation.tif"
    )
    parser.add_argument("--srid", type=int, default=32616)
    parser.add_argument("--max-zoom", type=int, default=None)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    baseline = min(_baseline_warp(args.dem, args.srid) for _ in range(3))
    with bench_database(args.database_url, srid=args.srid) as engine:
        started = time.perf_counter()
        result = import_terrain(engine, args.dem, name="bench-terrain", replace=True)
        import_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="cim-bench-terrain-") as folder:
            started = time.perf_counter()
            cpu_started = time.process_time()
            summary = build_terrain(engine, Path(folder) / "terrain", max_zoom=args.max_zoom)
            build_seconds = time.perf_counter() - started
            build_cpu_seconds = time.process_time() - cpu_started
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM dataset WHERE id = {int(result.dataset.id)}")
            conn.exec_driver_sql("DELETE FROM tileset WHERE layer = 'terrain'")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiles_per_s = summary["tiles"] / build_seconds
    tiles_per_cpu_s = summary["tiles"] / build_cpu_seconds
    qc = result.dataset.qc
    figures = {
        "bench": "terrain",
        "dem": args.dem.name,
        "pixels": qc["width"] * qc["height"],
        "raster_tiles": result.dataset.counts["terrain_raster"],
        "import_s": round(import_seconds, 2),
        "baseline_warp_s": round(baseline, 3),
        "ratio_import_vs_warp": round(import_seconds / baseline, 1),
        "terrain_levels": summary["levels"],
        "terrain_tiles": summary["tiles"],
        "terrain_tiles_per_s": round(tiles_per_s, 1),
        "terrain_tiles_per_cpu_s": round(tiles_per_cpu_s, 1),
        "terrain_mb": round(summary["bytes"] / 1e6, 2),
        "peak_rss_mb": round(peak_mb),
        "goal": (
            f"import <= {GOAL_IMPORT_S} s, >= {GOAL_TILES_PER_S} tiles per CPU second "
            f"(wall time swings with the shared machine's load), peak <= {GOAL_PEAK_MB:.0f} MB"
        ),
        "pass": import_seconds <= GOAL_IMPORT_S
        and tiles_per_cpu_s >= GOAL_TILES_PER_S
        and peak_mb <= GOAL_PEAK_MB,
    }
    print(f"import       : {figures['import_s']} s ({figures['pixels']:,} px)")
    print(f"baseline warp: {figures['baseline_warp_s']} s (x{figures['ratio_import_vs_warp']})")
    print(
        f"terrain      : {summary['tiles']} tiles, {figures['terrain_tiles_per_s']} tiles/s "
        f"({figures['terrain_tiles_per_cpu_s']} per CPU second)"
    )
    print(f"peak RSS     : {figures['peak_rss_mb']} MB")
    print("BENCH " + json.dumps(figures))


if __name__ == "__main__":
    main()
