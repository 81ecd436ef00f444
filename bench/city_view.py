"""Bench: the buildings tiles of a generated footprint city, and what a whole-city view loads.

Generates ``--footprints N`` LOD1 footprints (``bench/buildings.py``'s city: 25 m plots on a
jittered square grid, 1-11 floors), imports them, builds the ``buildings`` layer in a fresh
process (buildings/s and that process's peak RSS), then *computes* the bytes a whole-city view
from ``--altitude`` metres (default 10 km, above the city's centre) would request: tileset.json
plus the content of every tile CesiumJS's screen-space-error rule visits, for a 1920 x 1080
viewport with a 60 degree vertical field of view,
``SSE = geometricError * 1080 / (2 * distance * tan(30 deg))``, refining while SSE > 16
(distance to the tile's region; no frustum culling, so tiles outside the view count too, and a
REPLACE tile's ancestors count since they are loaded first). Computed, not measured in a
browser. Goal of issue 17: <= 30 MB.
Usage: ``python bench/city_view.py [--footprints 100000] [--compress | --also-compressed]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.buildings import SRID, step, write_footprints
from bench.common import bench_database

VIEW_GOAL_MB = 30.0
HEIGHT_PX, FOV_DEG, MAX_SSE = 1080, 60.0, 16.0
WGS84_A, WGS84_E2 = 6_378_137.0, 6.694379990141317e-3


def _ecef(lon: float, lat: float, h: float) -> tuple[float, float, float]:
    """Geodetic radians and metres -> ECEF (WGS 84)."""
    n = WGS84_A / math.sqrt(1 - WGS84_E2 * math.sin(lat) ** 2)
    return (
        (n + h) * math.cos(lat) * math.cos(lon),
        (n + h) * math.cos(lat) * math.sin(lon),
        (n * (1 - WGS84_E2) + h) * math.sin(lat),
    )


def view_bytes(folder: Path, altitude: float) -> dict[str, Any]:
    """Bytes, tiles and features a view from ``altitude`` above the layer's centre requests."""
    tileset = json.loads((folder / "tileset.json").read_text())
    west, south, east, north = tileset["root"]["boundingVolume"]["region"][:4]
    lon, lat = (west + east) / 2, (south + north) / 2
    camera = _ecef(lon, lat, altitude)
    factor = HEIGHT_PX / (2 * math.tan(math.radians(FOV_DEG) / 2))

    def sse(error: float, region: list[float]) -> float:
        near = (min(max(lon, region[0]), region[2]), min(max(lat, region[1]), region[3]))
        point = _ecef(*near, min(max(altitude, region[4]), region[5]))
        distance = max(math.dist(camera, point), 1e-6)
        return error * factor / distance

    found = {"bytes": (folder / "tileset.json").stat().st_size, "tiles": 0, "deepest": 0}

    def visit(tile: dict[str, Any], depth: int) -> None:
        if "content" in tile:
            path = folder / tile["content"]["uri"].split("?", 1)[0]
            found["bytes"] += path.stat().st_size
            found["tiles"] += 1
            found["deepest"] = max(found["deepest"], depth)
        if sse(tile["geometricError"], tile["boundingVolume"]["region"]) > MAX_SSE:
            for child in tile.get("children", []):
                visit(child, depth + 1)

    if sse(tileset["geometricError"], tileset["root"]["boundingVolume"]["region"]) > MAX_SSE:
        visit(tileset["root"], 0)
    return {
        "view_mb": round(found["bytes"] / 1e6, 2),
        "view_tiles": found["tiles"],
        "view_deepest_level": found["deepest"],
        "tileset_json_mb": round((folder / "tileset.json").stat().st_size / 1e6, 2),
    }


def _imported(engine: Any) -> int:
    """How many buildings the database holds (a kept import is reused when the count matches)."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM building").scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footprints", type=int, default=100_000)
    parser.add_argument("--altitude", type=float, default=10_000.0)
    parser.add_argument("--compress", action="store_true", help="meshopt-compressed content")
    parser.add_argument(
        "--also-compressed", action="store_true", help="then build it compressed too"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="with --database-url: keep the import afterwards and reuse one of the same size "
        "(to iterate on the tiling alone)",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="cim-bench-city-view-") as tmp,
        bench_database(args.database_url, srid=SRID) as engine,
    ):
        folder = Path(tmp)
        url = engine.url.render_as_string(hide_password=False)
        if args.keep and _imported(engine) == args.footprints:
            imported = {"seconds": 0.0}
        else:
            gpkg, mapping = write_footprints(folder, args.footprints)
            imported = step(url, "import", str(gpkg), str(mapping))
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        tiles = step(url, "tiles", str(folder / "tiles"), "yes" if args.compress else "no")
        view = view_bytes(folder / "tiles" / "buildings", args.altitude)
        if args.also_compressed:
            packed = step(url, "tiles", str(folder / "packed"), "yes")
            packed_view = view_bytes(folder / "packed" / "buildings", args.altitude)
            view |= {
                "compressed_tiles_s": round(packed["seconds"], 1),
                "compressed_layer_mb": round(packed["bytes"] / 1e6, 1),
                "compressed_view_mb": packed_view["view_mb"],
            }
        if not args.keep:
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM dataset")
    result = {
        "bench": "city_view",
        "footprints": args.footprints,
        "compress": args.compress,
        "import_s": round(imported["seconds"], 1),
        "tiles_s": round(tiles["seconds"], 1),
        "tiles_buildings_per_s": round(args.footprints / tiles["seconds"]),
        "tiles_peak_rss_mb": tiles["peak_rss_mb"],
        "tiles": tiles["tiles"],
        "layer_mb": round(tiles["bytes"] / 1e6, 1),
        "altitude_m": args.altitude,
        **view,
        "goal": f"view <= {VIEW_GOAL_MB} MB (computed by the SSE rule, not in a browser)",
        "pass": view["view_mb"] <= VIEW_GOAL_MB,
    }
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
