"""Build the buildings and pipes layers from committed rows and check them independently.

Oracles: the 3D Tiles 1.1 JSON schemas (jsonschema), the Khronos glTF validator (npm), pyproj
transforms of the rows as PostGIS returns them, and the rows themselves for metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.utilities import colour_of
from tests.conftest import TEST_SRID
from tests.tiles.checks import (
    assert_building_vertices,
    check_tileset,
    content_path,
    property_table,
    read_b3dm,
    read_glb,
    vertices,
)
from tests.tiles.conftest import City, import_city, validate_gltf
from tiles.build import build_mesh_layer

BUDGET = 60  # triangles per tile: forces a few levels out of a small city
NONE: frozenset[str] = frozenset()

TO_LONLAT = Transformer.from_crs(f"EPSG:{TEST_SRID}", "EPSG:4326", always_xy=True)
TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


def ecef(points: np.ndarray) -> np.ndarray:
    """Storage (x, y, z) -> ECEF, with z taken as ellipsoidal height (as the tiles do)."""
    lon, lat = TO_LONLAT.transform(points[:, 0], points[:, 1])
    return np.column_stack(TO_ECEF.transform(lon, lat, points[:, 2]))


def srgb_byte_to_linear_byte(value: int) -> int:
    c = value / 255
    linear = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return round(linear * 255)


@pytest.fixture(scope="module")
def built(engine: Engine, city: City, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiles")
    for layer in ("buildings", "pipes"):
        # no sensitive classes here: every utility in one layer (the split is tested below)
        result = build_mesh_layer(engine, out, layer, max_triangles=BUDGET, sensitive=NONE)
        assert result.status == "built"
    return out


def decoded(folder: Path) -> list[tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]]:
    """(property rows, ECEF vertices, vertex feature ids, colours) of every content tile."""
    out = []
    for tile, world in check_tileset(folder):
        if "content" in tile:
            document, binary = read_glb(
                (folder / content_path(tile["content"]["uri"])).read_bytes()
            )
            rows = property_table(document, binary)
            points, ids, colours = vertices(document, binary, world, "_FEATURE_ID_0")
            out.append((rows, points, ids, colours))
    return out


@pytest.mark.parametrize("layer", ["buildings", "pipes"])
def test_tileset_is_valid_and_hierarchical(built: Path, layer: str) -> None:
    tiles = check_tileset(built / layer)
    assert len(tiles) > 3  # the small budget forced several levels
    assert any(tile.get("children") for tile, _ in tiles)
    leaves = [tile for tile, _ in tiles if not tile.get("children")]
    assert all(tile["geometricError"] == 0 for tile in leaves)


@pytest.mark.parametrize("layer", ["buildings", "pipes"])
def test_every_glb_passes_the_khronos_validator(built: Path, layer: str) -> None:
    files = sorted((built / layer).rglob("*.glb"))
    assert files
    report = validate_gltf(files)
    problems = {f: r for f, r in report.items() if r["errors"] or r["warnings"]}
    assert problems == {}


def test_building_vertices_match_postgis_within_1cm(built: Path, engine: Engine) -> None:
    with engine.connect() as conn:
        seen = assert_building_vertices(built / "buildings", conn, TEST_SRID)
    assert seen == 26


def test_feature_counts_equal_database_rows(built: Path, engine: Engine, city: City) -> None:
    with engine.connect() as conn:
        elements = conn.execute(
            text("SELECT count(*) FROM building_element WHERE NOT is_space")
        ).scalar_one()
        segments = conn.execute(text("SELECT count(*) FROM pipe_segment")).scalar_one()
    assert elements == city.elements
    building_rows = [row for table, *_ in decoded(built / "buildings") for row in table]
    assert len(building_rows) == elements
    assert len({r["guid"] for r in building_rows}) == elements
    assert "GUIDSPACE" not in {r["guid"] for r in building_rows}  # spaces left out
    pipe_rows = [row for table, *_ in decoded(built / "pipes") for row in table]
    # segments + the manhole (has depth) + the valve; plain junctions are not features
    assert len(pipe_rows) == segments + 2 == city.pipe_features
    assert sorted(r["code"] for r in pipe_rows) == ["MH1", "S1", "S2", "S3", "V1"]


def test_building_metadata_and_colours_match_rows(built: Path) -> None:
    for table, _, ids, colours in decoded(built / "buildings"):
        for feature, row in enumerate(table):
            if row["guid"] == "GUIDWINDOW":
                assert row["ifc_class"] == "IfcWindow"
                assert row["name"] == "window"
                assert row["storey"] == "Ground floor"
                assert row["building"] == "Test House"
                assert row["material"] == "Glass"
                expected = [srgb_byte_to_linear_byte(round(v * 255)) for v in (0.5, 0.7, 0.9)]
                window = colours[ids == feature]
                assert (np.abs(window[:, :3].astype(int) - expected) <= 1).all()
                assert (window[:, 3] == round(0.4 * 255)).all()  # alpha kept, blended
                return
    pytest.fail("window not found in any tile")


def test_pipe_metadata_colours_and_solids(built: Path, engine: Engine) -> None:
    with engine.connect() as conn:
        lines = {
            code: np.array(xyz, dtype=np.float64)
            for code, xyz in conn.execute(
                text(
                    "SELECT s.code, array_agg(ARRAY[ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom)] "
                    "ORDER BY p.path) FROM pipe_segment s, ST_DumpPoints(s.geom) p GROUP BY 1"
                )
            ).all()
        }
    found: dict[str, dict[str, Any]] = {}
    for table, points, ids, colours in decoded(built / "pipes"):
        for feature, row in enumerate(table):
            found[row["code"]] = row
            mine = points[ids == feature]
            if row["code"] in lines:
                radius = {"S1": 0.15, "S3": 0.6}.get(row["code"])
                centre = ecef(lines[row["code"]])
                for point in centre:  # a ring of vertices at the pipe radius around each vertex
                    distance = np.linalg.norm(mine - point, axis=1)
                    if radius is not None:
                        assert (np.abs(distance - radius) < 0.01).sum() >= 6
                    else:  # 800 x 600 box: corners at the half diagonal (0.5 m)
                        assert (np.abs(distance - 0.5) < 0.01).sum() >= 4
            rgb = colour_of(row["subclass"] or row["utility"])
            expected = [srgb_byte_to_linear_byte(v) for v in rgb]
            assert (np.abs(colours[ids == feature][:, :3].astype(int) - expected) <= 1).all()
    s2 = found["S2"]
    assert (s2["section"], s2["utility"], s2["year"], s2["material"]) == (
        "800x600",
        "JS",
        2010,
        "PE",
    )
    assert s2["depth"] == pytest.approx(21.2 - (19.5 + 0.3), abs=1e-4)
    assert s2["dataset"] == "test pipes"
    assert found["S3"]["year"] is None and found["S3"]["section"] == "DN1200"
    assert (found["MH1"]["feature"], found["MH1"]["depth"]) == ("manhole", pytest.approx(3.5))
    assert found["V1"]["feature"] == "valve" and found["V1"]["section"] is None


def test_manhole_is_a_cylinder_of_its_real_depth(built: Path) -> None:
    for table, points, ids, _ in decoded(built / "pipes"):
        for feature, row in enumerate(table):
            if row["code"] == "MH1":
                mine = points[ids == feature]
                x, y = 534_010.0, 3_380_060.0
                axis = ecef(np.array([[x, y, 17.5], [x, y, 21.0]]))
                direction = (axis[1] - axis[0]) / np.linalg.norm(axis[1] - axis[0])
                along = (mine - axis[0]) @ direction
                radial = np.linalg.norm(mine - axis[0] - np.outer(along, direction), axis=1)
                assert along.min() == pytest.approx(0.0, abs=0.01)
                assert along.max() == pytest.approx(3.5, abs=0.01)
                assert np.allclose(radial, 0.5, atol=0.01)
                return
    pytest.fail("manhole not found")


def test_spec_1_0_writes_valid_b3dm(engine: Engine, city: City, tmp_path: Path) -> None:
    result = build_mesh_layer(engine, tmp_path, "buildings", spec="1.0", max_triangles=BUDGET)
    tiles = check_tileset(tmp_path / "buildings")
    files = [
        tmp_path / "buildings" / content_path(t["content"]["uri"])
        for t, _ in tiles
        if "content" in t
    ]
    assert files and all(f.suffix == ".b3dm" for f in files)
    total = 0
    for tile, world in tiles:
        if "content" not in tile:
            continue
        feature_table, batch_table, glb = read_b3dm(
            (tmp_path / "buildings" / content_path(tile["content"]["uri"])).read_bytes()
        )
        count = feature_table["BATCH_LENGTH"]
        assert all(len(values) == count for values in batch_table.values())
        document, binary = read_glb(glb)
        assert "extensionsUsed" not in document
        _, batch_ids, _ = vertices(document, binary, world, "_BATCHID")
        assert batch_ids.max() < count
        total += count
    assert total == result.features == city.elements
    report = validate_gltf(files)
    assert {f: r for f, r in report.items() if r["errors"] or r["warnings"]} == {}


def test_unchanged_layers_are_not_rebuilt(engine: Engine, city: City, tmp_path: Path) -> None:
    first = build_mesh_layer(engine, tmp_path, "pipes", max_triangles=BUDGET, sensitive=NONE)
    assert first.status == "built"
    again = build_mesh_layer(engine, tmp_path, "pipes", max_triangles=BUDGET, sensitive=NONE)
    assert again.status == "up-to-date"
    with engine.connect() as conn:
        stats = conn.execute(text("SELECT stats FROM tileset WHERE layer = 'pipes'")).scalar_one()
    assert stats["features"] == city.pipe_features
    forced = build_mesh_layer(
        engine, tmp_path, "pipes", force=True, max_triangles=BUDGET, sensitive=NONE
    )
    assert forced.status == "built"
    # a new pipes dataset changes the layer's versions: rebuilt with both datasets
    extra = import_city(engine, tag="second")
    try:
        rebuilt = build_mesh_layer(engine, tmp_path, "pipes", max_triangles=BUDGET, sensitive=NONE)
        assert rebuilt.status == "built"
        assert rebuilt.features == 2 * city.pipe_features
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM dataset WHERE id IN (:a, :b)"),
                {"a": extra.building_dataset, "b": extra.pipe_dataset},
            )
    assert build_mesh_layer(engine, tmp_path, "pipes", sensitive=NONE).status == "built"


def test_sensitive_classes_go_to_the_restricted_layer(
    engine: Engine, city: City, tmp_path: Path
) -> None:
    public = build_mesh_layer(engine, tmp_path, "pipes", sensitive=frozenset({"DL", "RQ"}))
    restricted = build_mesh_layer(
        engine, tmp_path, "pipes_restricted", sensitive=frozenset({"DL", "RQ"})
    )
    assert public.features + restricted.features == city.pipe_features
    codes = sorted(r["code"] for table, *_ in decoded(tmp_path / "pipes") for r in table)
    assert codes == ["MH1", "S1", "S2", "V1"]  # S3 is power (DL)
    secret = [r for table, *_ in decoded(tmp_path / "restricted" / "pipes") for r in table]
    assert [(r["code"], r["utility"]) for r in secret] == [("S3", "DL")]
    # changing the sensitive classes changes the layer's inputs: rebuilt, S3 back in public
    again = build_mesh_layer(engine, tmp_path, "pipes", sensitive=NONE)
    assert again.status == "built" and again.features == city.pipe_features


def test_spaces_are_tiled_only_when_asked(engine: Engine, city: City, tmp_path: Path) -> None:
    with_spaces = build_mesh_layer(engine, tmp_path, "buildings", include_spaces=True)
    assert with_spaces.features == city.elements + 1
    guids = {r["guid"] for table, *_ in decoded(tmp_path / "buildings") for r in table}
    assert "GUIDSPACE" in guids
    # the option is an input of the layer: building without it again rebuilds without spaces
    again = build_mesh_layer(engine, tmp_path, "buildings")
    assert again.status == "built" and again.features == city.elements
