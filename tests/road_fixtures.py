"""A hand-made river town for along-road shelter distances, with answers worked out by hand.

Local metres, shifted to EPSG:4547 (the test storage CRS) by ``X0, Y0`` so files need no
transform. The river runs east-west along y = 0; one road on each bank (y = +100 and y = -100,
x 0..3000) and a single bridge at x = 2000. The north road is a MultiLineString of two parts,
and the bridge ends in the interior of both bank roads: with ``vertices`` noding it is not joined
to them.

    U4 (2000, 700)            . 600 m from every road: off the network (access_max 500)
    U1 (1000, 150)   B (1600, 150)          C diamond around (2600, 250), U5 inside, U6 (2400, 150)
    ====== north road y=100 =========+==========================
                 ~~~~ river ~~~~      | bridge x=2000
    ====== south road y=-100 ========+==========================
    A (1000, -150)
    U2 (1000, -170)

Straight lines: U1-A 300, U1-B 600, U2-A 20, U2-B hypot(600, 320), U4-B hypot(400, 550).
Along the roads: U1-B 50+600+50 = 700; U2-A 70+0+50 = 120 (same road point); U1-A 50 + 1000
east + 200 bridge + 1000 west + 50 = 2300; U2-B 70+1000+200+400+50 = 1720; U6-C 50+200+50 = 300.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from cim.db.engine import make_engine
from importers.roads import import_roads
from importers.shelters import import_population, import_shelters
from tests.conftest import migrated_database

X0, Y0 = 500_000.0, 2_540_000.0
SRID = 4547

ROADS: list[tuple[str, str, list[list[tuple[float, float]]]]] = [
    ("North Bank Road", "primary", [[(0, 100), (1500, 100)], [(1500, 100), (3000, 100)]]),
    ("South Bank Road", "primary", [[(0, -100), (3000, -100)]]),
    ("Old Bridge", "bridge", [[(2000, 100), (2000, -100)]]),
]
SHELTERS_AB = [("A", (1000, -150), 100), ("B", (1600, 150), 200)]
SHELTER_A_ALONE = [("A alone", (1000, -150), 100)]
DIAMOND = [(2600, 150), (2700, 250), (2600, 350), (2500, 250), (2600, 150)]
UNITS_NORTH_SOUTH = [("U1", (1000, 150), 100), ("U2", (1000, -170), 50), ("U4", (2000, 700), 10)]
UNITS_DIAMOND = [("U5", (2600, 250), 20), ("U6", (2400, 150), 30)]


def shifted(points: list[tuple[float, float]]) -> list[list[float]]:
    return [[X0 + x, Y0 + y] for x, y in points]


def _write(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    return path


def write_roads(path: Path, **extra: Any) -> Path:
    """The river town's roads; ``extra`` properties make a file with another checksum."""
    return _write(
        path,
        [
            {
                "type": "Feature",
                "properties": {"street": name, "highway": kind, "lanes": 2, **extra},
                "geometry": {"type": "MultiLineString", "coordinates": [shifted(p) for p in parts]}
                if len(parts) > 1
                else {"type": "LineString", "coordinates": shifted(parts[0])},
            }
            for name, kind, parts in ROADS
        ],
    )


def write_shelters(path: Path, rows: list[tuple[str, Any, float]]) -> Path:
    features = []
    for name, site, capacity in rows:
        geometry = (
            {"type": "Point", "coordinates": shifted([site])[0]}
            if isinstance(site, tuple)
            else {"type": "Polygon", "coordinates": [shifted(site)]}
        )
        features.append(
            {
                "type": "Feature",
                "properties": {"name": name, "level": "short", "capacity": capacity},
                "geometry": geometry,
            }
        )
    return _write(path, features)


def write_units(path: Path, rows: list[tuple[str, tuple[float, float], float]]) -> Path:
    return _write(
        path,
        [
            {
                "type": "Feature",
                "properties": {"code": code, "population": people},
                "geometry": {"type": "Point", "coordinates": shifted([xy])[0]},
            }
            for code, xy, people in rows
        ],
    )


@pytest.fixture(scope="session")
def river(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A database in EPSG:4547 holding the river town; dataset ids by name."""
    folder = tmp_path_factory.mktemp("river")
    engine = make_engine(migrated_database(server_url, "cim_test_river", srid=SRID))
    crs = f"EPSG:{SRID}"

    def dataset(result: Any) -> int:
        return int(result.dataset.id)

    ids = {
        "roads": dataset(import_roads(engine, write_roads(folder / "roads.geojson"), crs=crs)),
        "roads_vertices": dataset(
            import_roads(
                engine,
                write_roads(folder / "roads_v.geojson", copy="vertices"),
                crs=crs,
                noding="vertices",
            )
        ),
        "shelters_ab": dataset(
            import_shelters(engine, write_shelters(folder / "ab.geojson", SHELTERS_AB), crs=crs)
        ),
        "shelter_a": dataset(
            import_shelters(engine, write_shelters(folder / "a.geojson", SHELTER_A_ALONE), crs=crs)
        ),
        "shelter_c": dataset(
            import_shelters(
                engine, write_shelters(folder / "c.geojson", [("C", DIAMOND, 1000)]), crs=crs
            )
        ),
        "units_ns": dataset(
            import_population(
                engine, write_units(folder / "ns.geojson", UNITS_NORTH_SOUTH), crs=crs
            )
        ),
        "units_c": dataset(
            import_population(engine, write_units(folder / "uc.geojson", UNITS_DIAMOND), crs=crs)
        ),
    }
    yield {"engine": engine, "ids": ids, "folder": folder}
    engine.dispose()


def engine_of(river: dict[str, Any]) -> Engine:
    engine: Engine = river["engine"]
    return engine
