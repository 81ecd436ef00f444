"""The city of ``bench/load.py``: a generated pipe network and buildings loaded into a fresh
database, its buildings tiled, and the random requests drawn from it."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import Engine, text

from bench.cities import SRID, load_pipe_network
from bench.generator import SyntheticCity, city_for_segments
from bench.rows import copy_elements, ewkb
from cim.crs import transformer
from cim.db import migrate
from cim.db.copy import copy_rows
from cim.db.engine import make_engine
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import


def load_buildings(engine: Engine, count: int) -> int:
    """``count`` buildings (footprints) and their 5 elements each, as one dataset."""
    blocks = max(1, math.ceil(math.sqrt(count / 4)))
    city = SyntheticCity(seed=11, blocks_x=blocks, blocks_y=blocks, buildings_per_block=4)

    def write(session: Any, dataset: Any) -> WriteOutcome:
        chosen = list(city.buildings())[:count]
        copy_rows(
            session, table="building",
            columns=["dataset_id", "guid", "name", "footprint", "base_z", "top_z"],
            rows=([dataset.id, b.code, b.code, ewkb(shapely.MultiPolygon([shapely.Polygon(
                b.footprint)]), SRID), b.base_z, b.base_z + b.height] for b in chosen),
        )  # fmt: skip
        copy_elements(
            session, dataset_id=dataset.id, srid=SRID, buildings=chosen, name=lambda b, cls: cls
        )
        return WriteOutcome(counts={"building": len(chosen)})

    source = DatasetSource(kind="ifc", name="bench buildings", source_name="generated",
                           source_sha256=f"load-buildings-{count}")  # fmt: skip
    run_import(engine, source=source, write=write)
    return min(count, city.building_count)


class Requests:
    """Random requests of each kind, drawn from the loaded city."""

    def __init__(self, engine: Engine, dataset_id: int, city: SyntheticCity, tiles: list[str]):
        self.rng = random.Random(3)
        self.dataset_id = dataset_id
        self.city = city
        self.tiles = tiles
        with engine.connect() as conn:
            self.water = [
                int(r[0])
                for r in conn.execute(
                    text(
                        "SELECT id FROM pipe_segment WHERE dataset_id = :d AND utility = 'JS' "
                        "ORDER BY random() LIMIT 5000"
                    ),
                    {"d": dataset_id},
                )
            ]
        self.to_lonlat = transformer(SRID, 4326)
        x0, y0 = city.origin
        self.extent = (x0, y0, x0 + city.blocks_x * city.pitch, y0 + city.blocks_y * city.pitch)

    def make(self, kind: str) -> tuple[str, str, dict[str, Any] | None]:
        rng = self.rng
        x0, y0, x1, y1 = self.extent
        if kind == "items":
            x, y = rng.uniform(x0, x1 - 300), rng.uniform(y0, y1 - 300)
            b = self.to_lonlat.transform_bounds(x, y, x + 300, y + 300)
            bbox = ",".join(f"{v:.7f}" for v in b)
            return "GET", f"/collections/pipe_segments/items?bbox={bbox}&limit=100", None
        if kind == "tiles":
            return "GET", f"/tiles/buildings/{rng.choice(self.tiles)}", None
        if kind == "section":
            # across a vertical street: streets run along block edges
            i = rng.randrange(1, self.city.blocks_x)
            x = x0 + i * self.city.pitch - self.city.street_width / 2
            y = rng.uniform(y0, y1)
            line = {"type": "LineString", "coordinates": [[x - 30, y], [x + 30, y]]}
            return "POST", "/analysis/pipes/section", {"line": line, "dataset_id": self.dataset_id}
        body = {"segment_id": rng.choice(self.water), "dataset_id": self.dataset_id}
        return "POST", "/analysis/pipes/isolation", body


def tile_uris(tileset: dict[str, Any]) -> list[str]:
    """Every content URI of a tileset (with its ``?v=`` tag)."""
    out, stack = [], [tileset["root"]]
    while stack:
        tile = stack.pop()
        if "content" in tile:
            out.append(tile["content"]["uri"])
        stack.extend(tile.get("children", []))
    return out


def load(
    url: str, data_dir: Path, segments_wanted: int, buildings_wanted: int
) -> tuple[Requests, int, int]:
    """Migrate, load the city, build its buildings layer; the requests to draw from it."""
    engine = make_engine(url)
    migrate.upgrade(engine, srid=SRID, default_srid=SRID)
    started = time.perf_counter()
    city = city_for_segments(segments_wanted)
    dataset_id, segments = load_pipe_network(engine, city, tie_streets=True, name="load")
    buildings = load_buildings(engine, buildings_wanted)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"loaded {segments:,} segments, {buildings:,} buildings in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    from tiles.build import build_mesh_layer

    built = build_mesh_layer(engine, data_dir / "tiles", "buildings", force=True)
    tileset = json.loads((data_dir / "tiles" / "buildings" / "tileset.json").read_text())
    tiles = tile_uris(tileset)
    print(f"buildings layer: {built.tiles} tiles in {built.seconds} s", flush=True)
    requests = Requests(engine, dataset_id, city, tiles)
    engine.dispose()
    return requests, segments, buildings
