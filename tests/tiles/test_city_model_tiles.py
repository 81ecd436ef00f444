"""City-model buildings (CityJSON) in the buildings tiles: one feature per building, LoD and
semantic class at each building's highest LoD, coloured by class, valid for 3D Tiles 1.1 and
the glTF validator, pickable by the building's source id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from importers.citymodel.importer import import_buildings
from tests.conftest import SHARED_SAMPLES, migrated_database
from tests.tiles.checks import check_tileset, content_path, content_tiles
from tests.tiles.conftest import validate_gltf
from tiles.build import build_mesh_layer


@pytest.fixture(scope="module")
def city_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_city_tiles", srid=3857))
    yield engine
    engine.dispose()


@pytest.mark.slow
def test_city_model_buildings_are_tiled_by_surface_class(
    city_engine: Engine, tmp_path: Path
) -> None:
    sample = SHARED_SAMPLES / "citymodels" / "DH_01_subs.city.json"
    import_buildings(city_engine, [sample], crs="EPSG:7415", replace=True)
    result = build_mesh_layer(city_engine, tmp_path, "buildings", force=True)
    folder = tmp_path / "buildings"
    tiles = check_tileset(folder)  # 3D Tiles 1.1 schema and bounding volumes
    files = [folder / content_path(t["content"]["uri"]) for t, _ in tiles if "content" in t]
    report = validate_gltf(files)
    assert {f: r for f, r in report.items() if r["errors"] or r["warnings"]} == {}
    with city_engine.connect() as conn:
        expected = conn.execute(
            text(
                "SELECT count(*) FROM building_surface s WHERE s.lod = (SELECT max(t.lod)"
                " FROM building_surface t WHERE t.building_id = s.building_id)"
            )
        ).scalar_one()
        roof = conn.execute(
            text(
                "SELECT s.id, b.source_id FROM building_surface s JOIN building b"
                " ON b.id = s.building_id WHERE s.semantic = 'RoofSurface' ORDER BY s.id LIMIT 1"
            )
        ).one()
    assert result.features == expected > 0
    found = False
    for rows, _, ids, colours in content_tiles(folder):
        for position, row in enumerate(rows):
            if row["element_id"] == -roof.id:
                assert (row["guid"], row["ifc_class"]) == (roof.source_id, "RoofSurface")
                red = colours[ids == position][:, :3]
                assert (red[:, 0] > red[:, 2]).all()  # roofs are drawn red
                found = True
    assert found, "the roof surface is in no tile"
    assert np.isfinite(result.seconds)
