"""``build_terrain``: every imported DEM -> quantized-mesh tiles + ``layer.json`` (atomic swap).

Levels 0 .. max zoom are written, the max zoom being the first level whose 218-sample grid is
at least as fine as the finest DEM (``max_zoom`` overrides it). Level 0 always has both root
tiles (CesiumJS needs them); below it only tiles meeting a DEM are written and listed in
``available``, so CesiumJS upsamples the parent everywhere else. Tiles are stored
gzip-compressed (the API sends them with ``Content-Encoding: gzip``), and the build is
recorded in the ``tileset`` table.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from cim.errors import TilingError
from tiles.atomic import atomic_layer
from tiles.record import save, version_of
from tiles.terrain.grid import (
    level_max_error,
    max_zoom_for_resolution,
    tile_range,
)
from tiles.terrain.mesh import encode_tile, grid_lonlat, mesh_grid
from tiles.terrain.sampler import HeightSampler, load_dems

Progress = Callable[[int, int], None]
FORMAT = "quantized-mesh-1.0"


def plan_tiles(
    bounds: list[tuple[float, float, float, float]], max_zoom: int
) -> tuple[list[tuple[int, int, int]], list[list[dict[str, int]]]]:
    """Tiles to write and the ``available`` ranges per level for DEMs with these lon/lat boxes."""
    tiles: set[tuple[int, int, int]] = {(0, 0, 0), (0, 1, 0)}
    available: list[list[dict[str, int]]] = [[{"startX": 0, "startY": 0, "endX": 1, "endY": 0}]]
    for z in range(1, max_zoom + 1):
        ranges: list[dict[str, int]] = []
        for box in bounds:
            start_x, start_y, end_x, end_y = tile_range(z, box)
            entry = {"startX": start_x, "startY": start_y, "endX": end_x, "endY": end_y}
            if entry not in ranges:
                ranges.append(entry)
            tiles.update(
                (z, tx, ty) for tx in range(start_x, end_x + 1) for ty in range(start_y, end_y + 1)
            )
        available.append(ranges)
    return sorted(tiles), available


def build_terrain(
    engine: Engine,
    out_dir: Path,
    *,
    progress: Progress | None = None,
    max_zoom: int | None = None,
) -> dict[str, Any]:
    """Write the terrain layer into ``out_dir`` (replaced atomically); returns a summary."""
    started = time.perf_counter()
    srid, dems = load_dems(engine)
    if not dems:
        return {"layer": "terrain", "status": "empty: no terrain imported", "path": str(out_dir)}
    sampler = HeightSampler(srid, dems)
    warnings = [
        f"terrain dataset {d.dataset_id} cannot be placed on the globe (local coordinates); "
        "left out of the terrain tiles"
        for d in dems
        if d.lonlat_bounds is None
    ]
    if not sampler.dems:
        raise TilingError("no terrain dataset can be placed on the globe; " + warnings[0])
    finest = min(d.resolution for d in sampler.dems)
    top = max_zoom if max_zoom is not None else max_zoom_for_resolution(finest)
    if top < 0:
        raise TilingError("max_zoom must be at least 0")
    boxes = [d.lonlat_bounds for d in sampler.dems if d.lonlat_bounds is not None]
    tiles, available = plan_tiles(boxes, top)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    triangles = 0
    size = 0
    worst: dict[int, float] = {}
    with atomic_layer(out_dir) as folder:
        for done, (z, x, y) in enumerate(tiles, start=1):
            lon, lat = grid_lonlat(z, x, y)
            mesh = mesh_grid(sampler.heights(lon, lat), z)
            data = gzip.compress(encode_tile(z, x, y, mesh), compresslevel=6, mtime=0)
            path = folder / str(z) / str(x) / f"{y}.terrain"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            triangles += len(mesh.triangles)
            size += len(data)
            worst[z] = max(worst.get(z, 0.0), mesh.max_error)
            if progress is not None:
                progress(done, len(tiles))
        layer = _layer_json(version, top, available, boxes)
        (folder / "layer.json").write_text(json.dumps(layer, indent=1))
        for child in folder.rglob("*"):
            child.chmod(0o755 if child.is_dir() else 0o644)
    summary: dict[str, Any] = {
        "layer": "terrain",
        "status": "built",
        "format": FORMAT,
        "features": len(sampler.dems),
        "tiles": len(tiles),
        "triangles": triangles,
        "bytes": size,
        "levels": [0, top],
        "max_error": {str(z): level_max_error(z) for z in range(top + 1)},
        "measured_error": {str(z): round(e, 4) for z, e in sorted(worst.items())},
        "seconds": round(time.perf_counter() - started, 2),
        "path": str(out_dir),
        "version": version,
        "warnings": warnings,
    }
    _record(engine, summary, [d.dataset_id for d in sampler.dems])
    return summary


def _layer_json(
    version: str,
    max_zoom: int,
    available: list[list[dict[str, int]]],
    boxes: list[tuple[float, float, float, float]],
) -> dict[str, Any]:
    west = min(b[0] for b in boxes)
    south = min(b[1] for b in boxes)
    east = max(b[2] for b in boxes)
    north = max(b[3] for b in boxes)
    return {
        "tilejson": "2.1.0",
        "name": "cim terrain",
        "description": "Imported DEMs; finest resolution wins where they overlap; 0 elsewhere",
        "version": version,
        "format": FORMAT,
        "scheme": "tms",
        "projection": "EPSG:4326",
        "tiles": ["{z}/{x}/{y}.terrain?v={version}"],
        "bounds": [-180.0, -90.0, 180.0, 90.0],
        "valid_bounds": [west, south, east, north],
        "minzoom": 0,
        "maxzoom": max_zoom,
        "extensions": ["octvertexnormals"],
        "available": available,
        "attribution": "",
    }


def _record(engine: Engine, summary: dict[str, Any], dataset_ids: list[int]) -> None:
    stats = {k: v for k, v in summary.items() if k not in {"path", "warnings"}}
    with engine.begin() as connection:
        rows = connection.execute(
            text("SELECT id, source_sha256, ready_at FROM dataset WHERE id = ANY(:ids)"),
            {"ids": dataset_ids},
        ).all()
        versions = {str(r.id): version_of(r) for r in rows}
        save(connection, "terrain", FORMAT, versions, stats)
