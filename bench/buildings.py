"""Bench: a city's buildings - LOD1 footprints and LOD2 CityJSONSeq imported, then tiled.

Three figures of issue 17, each printed beside its goal in one run:
1. ``--footprints N`` generated LOD1 footprints (a GeoPackage of rectangles on a jittered grid,
   floors in a field) through ``cim import buildings --mapping``: buildings/s and peak RSS.
   Goal: >= 20,000 buildings/s and <= 1.5 GB at 1,000,000.
2. ``--lod2 N`` generated LOD2 houses (gable roofs: ground, 4 walls, 2 roof faces with their
   semantics) written by the bench as CityJSONSeq: buildings/s. Goal: >= 3,000 buildings/s.
3. The ``buildings`` tile layer of the footprint city: buildings/s and peak RSS.
   Goal: >= 20,000 buildings/s and <= 1.5 GB at 1,000,000.
Each step runs in a fresh process (spawn), whose peak RSS is the memory figure (the tiles'
forked rendering processes, :mod:`tiles.forked`, have theirs printed beside it); the database
is a throwaway embedded cluster unless ``--database-url`` names one. The whole-city view from
10 km (bytes requested, screenshot) is not measured here.
``--settle`` vacuums and checkpoints the database between the import and the tiles step
(untimed): without it the tiles step shares the machine with the autovacuum of the new rows
and sets every row's hint bits on its first scan, as a build run right after an import does.
Usage: ``python bench/buildings.py [--footprints 1000000] [--lod2 100000] [--skip-tiles]
[--settle]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_database

SRID = 4547
X0, Y0 = 500_000.0, 3_380_000.0  # inside EPSG:4547's area of use
PLOT_M = 25.0
GOALS = {"footprints_per_s": 20_000, "lod2_per_s": 3_000, "tiles_per_s": 20_000, "rss_mb": 1536}


def _grid(n: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], Any]:
    """Origins (x, y), sizes (w, d) and floors of ``n`` plots on a square grid."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    origin = np.column_stack([X0 + (i % side) * PLOT_M, Y0 + (i // side) * PLOT_M])
    origin += rng.uniform(0, 3, size=(n, 2))
    size = rng.uniform([8, 7], [18, 16], size=(n, 2))
    floors = rng.integers(1, 12, size=n)
    return origin, size, floors


def write_footprints(folder: Path, n: int) -> tuple[Path, Path]:
    import geopandas as gpd
    import shapely

    origin, size, floors = _grid(n, seed=1)
    boxes = shapely.box(
        origin[:, 0], origin[:, 1], origin[:, 0] + size[:, 0], origin[:, 1] + size[:, 1]
    )
    frame = gpd.GeoDataFrame(
        {"bid": [f"F{k}" for k in range(n)], "floors": floors}, geometry=boxes, crs=SRID
    )
    path = folder / "footprints.gpkg"
    frame.to_file(path, engine="pyogrio")
    mapping = folder / "footprints.yaml"
    mapping.write_text("id: bid\nfloors: floors\n")
    return path, mapping


def _house(w: float, d: float, h: float, r: float) -> tuple[list[list[float]], list[Any]]:
    """Vertices and Solid boundaries of a gable-roofed house at the origin."""
    v: list[list[float]]
    v = [[0, 0, 0], [w, 0, 0], [w, d, 0], [0, d, 0], [0, 0, h], [w, 0, h], [w, d, h], [0, d, h],
         [0, d / 2, h + r], [w, d / 2, h + r]]  # fmt: skip
    faces = [[0, 3, 2, 1], [0, 1, 5, 4], [1, 2, 6, 9, 5], [2, 3, 7, 6], [3, 0, 4, 8, 7],
             [4, 5, 9, 8], [7, 8, 9, 6]]  # fmt: skip
    return v, [[[f] for f in faces]]


def write_cityjsonseq(folder: Path, n: int) -> Path:
    """``n`` LOD2 houses as CityJSONSeq (integer vertices under one transform)."""
    origin, size, floors = _grid(n, seed=2)
    path = folder / "houses.city.jsonl"
    header = {
        "type": "CityJSON", "version": "2.0", "CityObjects": {}, "vertices": [],
        "transform": {"scale": [0.001, 0.001, 0.001], "translate": [X0, Y0, 0.0]},
        "metadata": {"referenceSystem": f"https://www.opengis.net/def/crs/EPSG/0/{SRID}"},
    }  # fmt: skip
    semantics = {
        "surfaces": [{"type": "GroundSurface"}, {"type": "WallSurface"}, {"type": "RoofSurface"}],
        "values": [[0, 1, 1, 1, 1, 2, 2]],
    }
    with path.open("w") as out:
        out.write(json.dumps(header) + "\n")
        for k in range(n):
            vertices, boundaries = _house(size[k, 0], size[k, 1], 3.0 * floors[k], 3.0)
            shifted = np.asarray(vertices) + np.array([origin[k, 0] - X0, origin[k, 1] - Y0, 0.0])
            ints = np.rint(shifted * 1000).astype(np.int64).tolist()
            building = {
                "type": "Building", "attributes": {"storeysAboveGround": int(floors[k])},
                "geometry": [{"type": "Solid", "lod": "2.2", "boundaries": boundaries,
                              "semantics": semantics}],
            }  # fmt: skip
            feature = {"type": "CityJSONFeature", "id": f"H{k}",
                       "CityObjects": {f"H{k}": building}, "vertices": ints}  # fmt: skip
            out.write(json.dumps(feature) + "\n")
    return path


def _child(url: str, task: str, args: list[str], queue: Any) -> None:
    """A fresh process: run one step, report seconds, its answer and this process's peak RSS."""
    from cim.db.engine import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    if task == "import":
        from importers.citymodel import import_buildings

        mapping = Path(args[1]) if len(args) > 1 else None
        result = import_buildings(engine, [Path(args[0])], mapping=mapping, replace=True)
        answer: dict[str, Any] = {"buildings": result.dataset.counts.get("buildings")}
    else:
        from tiles.build import build_mesh_layer

        compress = len(args) > 1 and args[1] == "yes"
        answer = build_mesh_layer(
            engine, Path(args[0]), "buildings", force=True, compress=compress
        ).to_dict()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the tiles' forked rendering processes (tiles.forked), each a process of its own
    forks = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # the step's wall time (code loading included), not the layer's own ``seconds``
    queue.put(
        {**answer, "seconds": seconds, "peak_rss_mb": round(peak, 1),
         "forked_peak_rss_mb": round(forks, 1)}
    )  # fmt: skip
    engine.dispose()


def step(url: str, task: str, *args: str) -> dict[str, Any]:
    """One step in a fresh (spawned) process: ``import FILE [MAPPING]`` or
    ``tiles FOLDER [yes|no: compressed]``; its seconds, peak RSS and answer."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(url, task, list(args), queue))
    child.start()
    figures: dict[str, Any] = queue.get()
    child.join()
    return figures


def _timed(what: str, make: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = make()
    print(f"{what}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footprints", type=int, default=1_000_000)
    parser.add_argument("--lod2", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--skip-tiles", action="store_true", help="measure the two imports only (no tiles step)"
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="vacuum and checkpoint after the import, before the (timed) tiles step",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cim-bench-buildings-") as tmp,
        bench_database(args.database_url, srid=SRID) as engine,
    ):
        folder = Path(tmp)
        url = engine.url.render_as_string(hide_password=False)
        houses = _timed("write CityJSONSeq", lambda: write_cityjsonseq(folder, args.lod2))
        lod2 = step(url, "import", str(houses))
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset")
        gpkg, mapping = _timed(
            "write footprints", lambda: write_footprints(folder, args.footprints)
        )
        lod1 = step(url, "import", str(gpkg), str(mapping))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        if args.settle:
            _timed("settle (VACUUM, CHECKPOINT; untimed)", lambda: _settle(engine))
        tiles = {} if args.skip_tiles else step(url, "tiles", str(folder / "tiles"))
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM dataset")
    result = _figures(args, lod1, lod2, tiles)
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print("BENCH " + json.dumps(result))


def _settle(engine: Engine) -> None:
    """What the server does anyway after a bulk import, done before the tiles are timed: the
    autovacuum of the new rows (which otherwise runs beside the tiler on one of the two cores)
    and the hint bits of every new row (which the tiler's first full scan otherwise sets and
    writes back), then a checkpoint of the WAL that wrote."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM (ANALYZE) building, building_surface")
        conn.exec_driver_sql("CHECKPOINT")


def _figures(
    args: Any, lod1: dict[str, Any], lod2: dict[str, Any], tiles: dict[str, Any]
) -> dict[str, Any]:
    """The figures beside the goals; without a tiles step its figures are None and the pass
    verdict covers the imports only."""
    rate: dict[str, int] = {
        "footprints_per_s": round(args.footprints / lod1["seconds"]),
        "lod2_per_s": round(args.lod2 / lod2["seconds"]),
    }
    peaks = [lod1["peak_rss_mb"]]
    if tiles:
        rate["tiles_per_s"] = round(args.footprints / tiles["seconds"])
        peaks += [tiles["peak_rss_mb"], tiles["forked_peak_rss_mb"]]  # per process
    return {
        "bench": "buildings",
        "footprints": args.footprints,
        "footprint_import_s": round(lod1["seconds"], 1),
        "footprints_per_s": rate["footprints_per_s"],
        "footprint_import_peak_rss_mb": lod1["peak_rss_mb"],
        "lod2_buildings": args.lod2,
        "lod2_import_s": round(lod2["seconds"], 1),
        "lod2_per_s": rate["lod2_per_s"],
        "lod2_import_peak_rss_mb": lod2["peak_rss_mb"],
        "tiles_s": round(tiles["seconds"], 1) if tiles else None,
        "tiles_buildings_per_s": rate.get("tiles_per_s"),
        "tiles_peak_rss_mb": tiles.get("peak_rss_mb"),
        "tiles_forked_process_peak_rss_mb": tiles.get("forked_peak_rss_mb"),
        "tiles": tiles.get("tiles"),
        "tiles_mb": round(tiles.get("bytes", 0) / 1e6, 1) if tiles else None,
        "goal": ">= 20,000 footprints/s, >= 3,000 LOD2/s, tiles >= 20,000 buildings/s, "
        "RSS <= 1.5 GB",
        "pass": all(rate[k] >= GOALS[k] for k in rate) and max(peaks) <= GOALS["rss_mb"],
    }


if __name__ == "__main__":
    main()
