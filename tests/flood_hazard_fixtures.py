"""A small flooded city for the flood → shelters tests (API and viewer): SWMM's Example 1, whose
node 10 floods 511 m³ with its own rain, in a bowl-shaped DEM around that node, one shelter in
the bowl and one 150 m east of it, and two population points between them.

The bowl (ground rising as r²/400 m around node 10) holds the node's volume in a disc of about
19 m radius (``tests/cim/test_simulation_flood.py`` checks the extent against that closed form),
so the shelter 3 m from the node is in the flood extent and the other far outside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from importers.shelters import import_population, import_shelters
from importers.terrain import import_terrain
from tests.cim.test_simulation_flood import _bowl
from tests.conftest import SHARED_SAMPLES
from tests.importers.pipes_helpers import run

EXAMPLE1 = SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"
CRS = "EPSG:4547"
INSIDE_OFFSET_M = (2.0, 2.0)  # from node 10: in the ponded disc
OUTSIDE_OFFSET_M = (150.0, 0.0)  # well beyond it, and within the emergency level's 500 m


@dataclass(frozen=True)
class FloodCity:
    drainage: int
    node: tuple[float, float]  # node 10 in the storage CRS (EPSG:4547)
    inside: int  # shelter ids
    outside: int


def _points(path: Path, rows: list[tuple[float, float, dict[str, object]]]) -> Path:
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": p}
        for x, y, p in rows
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def build_flood_city(engine: Engine, folder: Path, origin: tuple[float, float]) -> FloodCity:
    """Import Example 1 at ``origin`` (EPSG:4547), the bowl DEM, two shelters and two units."""
    drainage = run(engine, EXAMPLE1, origin=(*origin, 0.0)).dataset.id
    with engine.connect() as conn:
        x, y = conn.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom) FROM pipe_node WHERE dataset_id = :d AND code = '10'"
            ),
            {"d": drainage},
        ).one()
    _bowl(folder / "bowl.tif", (x, y), 100.0)
    import_terrain(engine, folder / "bowl.tif")
    shelters = _points(
        folder / "flood_shelters.geojson",
        [
            (x + INSIDE_OFFSET_M[0], y + INSIDE_OFFSET_M[1], {"name": "In the bowl", "cap": 500}),
            (x + OUTSIDE_OFFSET_M[0], y + OUTSIDE_OFFSET_M[1], {"name": "On the hill", "cap": 500}),
        ],
    )
    shelter_mapping = folder / "flood_shelters.yaml"
    shelter_mapping.write_text("name: name\ncapacity: cap\nlevel: {value: emergency}\n")
    import_shelters(engine, shelters, mapping=shelter_mapping, crs=CRS)
    units = _points(
        folder / "flood_units.geojson",
        [(x - 40.0, y, {"code": "west", "pop": 100}), (x + 100.0, y, {"code": "east", "pop": 100})],
    )
    unit_mapping = folder / "flood_units.yaml"
    unit_mapping.write_text("code: code\npopulation: pop\n")
    import_population(engine, units, mapping=unit_mapping, crs=CRS)
    with engine.connect() as conn:
        ids = {str(r[0]): int(r[1]) for r in conn.execute(text("SELECT name, id FROM shelter"))}
    return FloodCity(
        drainage=drainage,
        node=(float(x), float(y)),
        inside=ids["In the bowl"],
        outside=ids["On the hill"],
    )
