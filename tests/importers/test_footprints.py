"""``cim import buildings FOOTPRINTS.geojson --mapping``: extruded LOD1 blocks, bases, bad input.

Footprints are written by the test in EPSG:4547 (the test database's storage CRS) near
534000, 3380000; the oracles are the input polygons themselves (area, ring edges) and the heights
given in the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from sqlalchemy import Engine, text

from cim.errors import InvalidInput, UnsupportedCRS
from importers.citymodel import import_buildings
from importers.citymodel.footprints import extrude
from importers.terrain import import_terrain
from tests.cli_support import run_cim
from tests.conftest import cli_env

X0, Y0 = 534000.0, 3380000.0
SQUARE = [[X0, Y0], [X0 + 20, Y0], [X0 + 20, Y0 + 10], [X0, Y0 + 10], [X0, Y0]]
HOLE = [[X0 + 5, Y0 + 3], [X0 + 5, Y0 + 6], [X0 + 10, Y0 + 6], [X0 + 10, Y0 + 3], [X0 + 5, Y0 + 3]]


def _ring(dx: float, dy: float, size: float) -> list[list[float]]:
    x, y = X0 + dx, Y0 + dy
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


FEATURES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"type": "Polygon", "coordinates": [SQUARE, HOLE]}, {"bid": "A", "h": 12.5, "fl": None}),
    (
        {"type": "MultiPolygon", "coordinates": [[_ring(40, 0, 8)], [_ring(60, 0, 6)]]},
        {"bid": "B", "h": None, "fl": 4, "use": "residential", "built": 1998},
    ),
    ({"type": "Polygon", "coordinates": [_ring(0, 40, 15)]}, {"bid": "C", "h": 30.0, "fl": 9}),
    ({"type": "Polygon", "coordinates": [_ring(0, 80, 5)]}, {"bid": "D", "h": None, "fl": None}),
]
MAPPING = "id: bid\nheight: h\nfloors: fl\nfunction: use\nyear: built\n"


def _geojson(path: Path, features: list[tuple[dict[str, Any], dict[str, Any]]], crs: bool) -> Path:
    document: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": g, "properties": p} for g, p in features],
    }
    if crs:
        document["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}}
    path.write_text(json.dumps(document))
    return path


def _files(tmp_path: Path, mapping: str = MAPPING, crs: bool = True) -> tuple[Path, Path]:
    source = _geojson(tmp_path / "footprints.geojson", FEATURES, crs)
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(mapping)
    return source, mapping_path


def _rows(engine: Engine, sql: str, **bind: object) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), bind).all())


def _count(engine: Engine) -> int:
    return int(_rows(engine, "SELECT count(*) FROM building")[0][0])


def _edges(geometry: dict[str, Any]) -> int:
    polygons = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    return sum(len(ring) - 1 for polygon in polygons for ring in polygon)


def test_blocks_have_heights_triangles_and_footprints(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    source, mapping = _files(tmp_path)
    result = import_buildings(engine, [source], mapping=mapping)
    dataset = result.dataset
    assert dataset.counts["buildings"] == 3
    assert dataset.qc["skipped_no_height"] == 1  # D has neither height nor floors
    assert dataset.qc["base_zero_no_terrain"] == 3
    rows = {
        r.source_id: r
        for r in _rows(
            engine,
            "SELECT source_id, lods, height, storeys, function, year, base_z, top_z, "
            "ST_Area(footprint) AS area FROM building WHERE dataset_id = :d",
            d=dataset.id,
        )
    }
    assert set(rows) == {"A", "B", "C"}
    expected_height = {"A": 12.5, "B": 4 * 3.0, "C": 30.0}
    for key, (geometry, _) in zip("ABC", FEATURES, strict=False):
        row = rows[key]
        assert row.lods == ["1"]
        assert row.base_z == 0.0
        assert row.top_z - row.base_z == pytest.approx(expected_height[key])
        assert row.height == pytest.approx(expected_height[key])
        assert row.area == pytest.approx(shapely.geometry.shape(geometry).area)
    assert (rows["B"].storeys, rows["B"].function, rows["B"].year) == (4, "residential", 1998)
    surfaces = _rows(
        engine,
        "SELECT b.source_id, s.semantic, s.triangle_count, ST_Area(s.geom) AS area "
        "FROM building_surface s JOIN building b ON b.id = s.building_id "
        "WHERE s.dataset_id = :d AND s.lod = '1'",
        d=dataset.id,
    )
    found = {(r.source_id, r.semantic): r for r in surfaces}
    for key, (geometry, _) in zip("ABC", FEATURES, strict=False):
        walls = found[(key, "WallSurface")].triangle_count
        assert walls == 2 * _edges(geometry)
        roof, ground = found[(key, "RoofSurface")], found[(key, "GroundSurface")]
        assert roof.triangle_count == ground.triangle_count
        assert roof.area == pytest.approx(shapely.geometry.shape(geometry).area)
    # A square with a square hole: 8 roof triangles; each square part of B: 2.
    assert found[("A", "RoofSurface")].triangle_count == 8
    assert found[("B", "RoofSurface")].triangle_count == 4


def test_floors_times_storey_height_and_base_field(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    source, mapping = _files(tmp_path, "id: bid\nfloors: fl\nstorey_height: 3.5\nbase: h\n")
    result = import_buildings(engine, [source], mapping=mapping)
    assert result.dataset.counts["buildings"] == 2  # B and C have floors
    rows = {
        r.source_id: r
        for r in _rows(engine, "SELECT source_id, base_z, top_z, height FROM building")
    }
    assert rows["C"].base_z == 30.0
    assert rows["C"].top_z == pytest.approx(30.0 + 9 * 3.5)
    assert rows["B"].base_z == 0.0  # no base value: no DEM either
    assert result.dataset.qc["base_from_field"] == 1


def test_same_files_again_is_a_no_op_and_mapping_is_part_of_identity(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    source, mapping = _files(tmp_path)
    assert import_buildings(engine, [source], mapping=mapping).created
    assert not import_buildings(engine, [source], mapping=mapping).created
    mapping.write_text(MAPPING + "storey_height: 4.0\n")
    assert import_buildings(engine, [source], mapping=mapping).created


@pytest.mark.parametrize("index", [0, 1, 2])
def test_blocks_are_closed_and_face_outwards(index: int) -> None:
    """Divergence theorem: the signed volume of outward-wound closed triangles is area x height."""
    footprint = shapely.geometry.shape(FEATURES[index][0])
    block = extrude(footprint, 7.0, 19.0)
    triangles = np.concatenate(list(block.values())) - np.array([X0, Y0, 0.0])
    volume = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2]))
    assert volume.sum() / 6 == pytest.approx(footprint.area * 12.0)
    roof = block[("1", "RoofSurface")]
    up = np.cross(roof[:, 1] - roof[:, 0], roof[:, 2] - roof[:, 0])[:, 2]
    assert (up > 0).all() and (roof[:, :, 2] == 19.0).all()


def _dem(path: Path, height: float) -> Path:
    profile = {
        "driver": "GTiff",
        "width": 20,
        "height": 20,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4547",
        "transform": from_origin(X0 - 50, Y0 + 150, 10.0, 10.0),
        "nodata": -9999.0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 20, 20), height, dtype=np.float32))
    return path


def test_base_from_the_dem_at_the_centroid(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    import_terrain(engine, _dem(tmp_path / "dem.tif", 42.0))
    source, mapping = _files(tmp_path)
    result = import_buildings(engine, [source], mapping=mapping)
    assert result.dataset.qc["base_from_terrain"] == 3
    rows = _rows(engine, "SELECT base_z, top_z, height FROM building")
    assert all(r.base_z == pytest.approx(42.0) for r in rows)
    assert all(r.top_z - r.base_z == pytest.approx(r.height) for r in rows)


def _shapefile(path: Path, crs: str | None = None) -> Path:
    """One footprint (A, 12.5 m) as a Shapefile or GeoPackage, with or without a CRS."""
    geometry = [shapely.to_wkb(shapely.geometry.shape(g)) for g, _ in FEATURES[:1]]
    pyogrio.raw.write(
        path,
        np.asarray(geometry, dtype=object),
        [np.asarray(["A"]), np.asarray([12.5])],
        fields=["bid", "h"],
        geometry_type="Polygon",
        crs=crs,
    )
    return path


def test_geopackage_with_its_crs(engine: Engine, clean_tables: None, tmp_path: Path) -> None:
    source = _shapefile(tmp_path / "footprints.gpkg", crs="EPSG:4547")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("id: bid\nheight: h\n")
    result = import_buildings(engine, [source], mapping=mapping)
    assert result.dataset.counts["buildings"] == 1
    [row] = _rows(engine, "SELECT source_id, height, ST_Area(footprint) AS area FROM building")
    assert (row.source_id, row.height) == ("A", 12.5)
    assert row.area == pytest.approx(shapely.geometry.shape(FEATURES[0][0]).area)


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("no_height_mapping", InvalidInput, "height or floors"),
        ("no_mapping", InvalidInput, "height or floors"),
        ("lines", InvalidInput, "Polygons or MultiPolygons"),
        ("no_crs", InvalidInput, "no CRS"),
        ("far_away", UnsupportedCRS, "area of use"),
        ("bad_number", InvalidInput, "not a number"),
        ("bad_storey_height", InvalidInput, "storey_height"),
    ],
)
def test_bad_input_stores_nothing(
    engine: Engine,
    clean_tables: None,
    tmp_path: Path,
    case: str,
    error: type[Exception],
    message: str,
) -> None:
    source, mapping = _files(tmp_path)
    chosen: Path | None = mapping
    crs = None
    if case == "no_height_mapping":
        mapping.write_text("id: bid\n")
    elif case == "no_mapping":
        chosen = None
    elif case == "lines":
        line = {"type": "LineString", "coordinates": SQUARE}
        _geojson(source, [*FEATURES, (line, {"bid": "L", "h": 3.0})], crs=True)
    elif case == "far_away":
        crs = "EPSG:4326"  # the same numbers read as lon/lat are nowhere
        tokyo = [[139.70, 35.68], [139.71, 35.68], [139.71, 35.69], [139.70, 35.68]]
        _geojson(
            source, [({"type": "Polygon", "coordinates": [tokyo]}, {"bid": "F", "h": 3})], False
        )
    elif case == "bad_storey_height":
        mapping.write_text(MAPPING + "storey_height: high\n")
    elif case == "no_crs":  # a Shapefile without .prj (a GeoJSON without crs is WGS 84)
        source = _shapefile(tmp_path / "footprints.shp")
    elif case == "bad_number":
        _geojson(source, [(FEATURES[0][0], {"bid": "A", "h": "tall", "fl": None})], crs=True)
    with pytest.raises(error, match=message):
        import_buildings(engine, [source], mapping=chosen, crs=crs)
    assert _count(engine) == 0
    assert _rows(engine, "SELECT count(*) FROM dataset WHERE kind = 'buildings'")[0][0] == 0


@pytest.mark.slow
def test_cli_imports_footprints_with_mapping(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    source, mapping = _files(tmp_path)
    env = cli_env(database_url)
    run = run_cim("import", "buildings", str(source), "--mapping", str(mapping), "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["dataset"]["counts"]["buildings"] == 3
    again = run_cim("import", "buildings", str(source), env=env)
    assert again.returncode != 0
    assert "height or floors" in again.stderr + again.stdout


def _index_definitions(engine: Engine) -> list[str]:
    return [
        r[0]
        for r in _rows(
            engine,
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid IN ('building'::regclass, 'building_surface'::regclass)"
            " ORDER BY 1",
        )
    ]


def test_a_bulk_load_rebuilds_the_indexes_it_dropped(
    engine: Engine, clean_tables: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load larger than the tables drops their secondary indexes for the COPY and rebuilds
    them before the commit (thresholds lowered so four features are a bulk load: the path
    of a million-footprint import); the rows answer a spatial query afterwards."""
    import cim.db.copy
    import importers.citymodel.footprints as footprints
    import importers.citymodel.writer as writer

    monkeypatch.setattr(footprints, "CHUNK_ROWS", 2)
    monkeypatch.setattr(cim.db.copy, "DEFER_INDEXES_MIN_ROWS", 1)
    dropped: list[str] = []

    def recording(*args: Any, **kwargs: Any) -> list[str]:
        definitions = cim.db.copy.defer_indexes(*args, **kwargs)
        dropped.extend(definitions)
        return definitions

    monkeypatch.setattr(writer, "defer_indexes", recording)
    before = _index_definitions(engine)
    source, mapping = _files(tmp_path)
    dataset = import_buildings(engine, [source], mapping=mapping).dataset
    assert dataset.counts["buildings"] == 3
    assert {d.split(" ON ")[0] for d in dropped} >= {
        "CREATE INDEX idx_building_footprint",
        "CREATE INDEX ix_building_surface_building_id",
    }
    assert _index_definitions(engine) == before  # every one back, the same
    near = _rows(
        engine,
        "SELECT source_id FROM building WHERE ST_Intersects(footprint,"
        " ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4547)) ORDER BY 1",
        x0=X0 - 1,
        y0=Y0 + 39,
        x1=X0 + 16,
        y1=Y0 + 56,
    )
    assert [r[0] for r in near] == ["C"]
