"""``cim import roads``: GeoPackage and Shapefile with a mapping, the two nodings, bad files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.errors import ImportFailed, InvalidInput
from importers.roads import import_roads
from tests.conftest import migrated_database

LON, LAT = 113.30, 23.10  # Guangzhou, inside EPSG:4547 (CM 114°E)


@pytest.fixture(scope="module")
def roads_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_roads_import", srid=4547))
    yield engine
    engine.dispose()


def _count(engine: Engine, sql: str, **bind: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), bind).scalar_one())


def _frame(crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    """A crossing street (shared vertex), a flyover (no shared vertex) and a side street."""
    d = 0.01  # about 1 km
    return gpd.GeoDataFrame(
        {
            "NAME": ["Main St", "Cross St", "Flyover", "Side St"],
            "TYPE": [1, 2, 1, 3],
            "ref": ["M1", None, "F1", "S9"],
        },
        geometry=[
            shapely.LineString([(LON, LAT), (LON + d, LAT), (LON + 2 * d, LAT)]),
            shapely.LineString([(LON + d, LAT - d), (LON + d, LAT), (LON + d, LAT + d)]),
            shapely.LineString([(LON + 1.5 * d, LAT - d), (LON + 1.5 * d, LAT + d)]),
            shapely.MultiLineString(
                [[(LON, LAT + d), (LON + d, LAT + d)], [(LON, LAT - d), (LON + d, LAT - d)]]
            ),
        ],
        crs=crs,
    )


def test_gpkg_with_mapping_is_noded_and_measured_in_storage_metres(
    roads_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "streets.gpkg"
    _frame().to_file(path, driver="GPKG")
    mapping = tmp_path / "roads.yaml"
    mapping.write_text(
        "name: NAME\nkind: {field: TYPE, values: {'1': primary, '2': secondary}}\n", "utf-8"
    )
    result = import_roads(roads_engine, path, mapping=mapping)
    counts, qc = result.dataset.counts, result.dataset.qc
    # Main St cut at Cross St and at the flyover, Cross St and the flyover at Main St; the side
    # streets end on Cross St's end points and stay whole: 3 + 2 + 2 + 2 = 9 pieces.
    assert counts["features"] == 4 and counts["segments"] == 9
    assert counts["by_kind"] == {"primary": 5, "secondary": 2, "3": 2}  # 3 is not in values
    assert qc["components"] == 1 and qc["noding"] == "intersections"
    assert result.dataset.options["noding"] == "intersections"
    # Lengths are planar metres in EPSG:4547: the projected source lines, measured by shapely.
    project = Transformer.from_crs(4326, 4547, always_xy=True)
    expected = sum(
        shapely.transform(
            g, lambda xy: np.column_stack(project.transform(xy[:, 0], xy[:, 1]))
        ).length
        for g in _frame().geometry
    )
    stored = _count(
        roads_engine,
        "SELECT round(sum(length) * 1000) FROM road_segment WHERE dataset_id = :d",
        d=result.dataset.id,
    )
    assert stored == round(expected * 1000)
    with roads_engine.connect() as conn:
        kind, attrs = conn.execute(
            text(
                "SELECT kind, attrs FROM road_segment WHERE dataset_id = :d "
                "AND name = 'Flyover' LIMIT 1"
            ),
            {"d": result.dataset.id},
        ).one()
    assert (kind, attrs) == ("primary", {"ref": "F1", "feature": 3})


def test_vertices_noding_keeps_a_flyover_apart(roads_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "osm.shp"
    _frame().to_file(path)  # Shapefile with a .prj
    result = import_roads(roads_engine, path, noding="vertices")
    counts, qc = result.dataset.counts, result.dataset.qc
    # Only Main St x Cross St share a vertex: 2 + 2 pieces, the flyover and the two side
    # street parts stay whole (the side streets end on Cross St's end points, so they join it).
    assert counts["segments"] == 7
    assert qc["components"] == 2 and qc["noding"] == "vertices"
    assert any("2 separate parts" in w for w in result.warnings)
    assert counts["by_kind"] == {"1": 3, "2": 2, "3": 2}  # no mapping: TYPE auto-detected


def test_bad_files_are_refused_and_write_nothing(roads_engine: Engine, tmp_path: Path) -> None:
    before = _count(roads_engine, "SELECT count(*) FROM dataset")
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(
        {"name": ["a", "b"]},
        geometry=[shapely.LineString([(LON, LAT), (LON, LAT + 0.01)]), shapely.Point(LON, LAT)],
        crs="EPSG:4326",
    ).to_file(points, driver="GeoJSON")
    with pytest.raises(InvalidInput, match=r"row 2: a road must be a LineString .* not Point"):
        import_roads(roads_engine, points)
    dots = tmp_path / "dots.geojson"
    dots.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "LineString", "coordinates": [[LON, LAT]] * 2},
                    }
                ],
            }
        ),
        "utf-8",
    )
    with pytest.raises(InvalidInput, match="no road line has a length"):
        import_roads(roads_engine, dots)
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', "utf-8")
    with pytest.raises(InvalidInput, match="no features"):
        import_roads(roads_engine, empty)
    lines = tmp_path / "lines.geojson"
    _frame().to_file(lines, driver="GeoJSON")
    with pytest.raises(InvalidInput, match="unknown noding 'snap'"):
        import_roads(roads_engine, lines, noding="snap")
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("name: STREET_NAME\n", "utf-8")
    with pytest.raises(InvalidInput, match="STREET_NAME"):
        import_roads(roads_engine, lines, mapping=mapping)
    no_crs = tmp_path / "nocrs.shp"
    _frame().to_file(no_crs)
    no_crs.with_suffix(".prj").unlink()
    with pytest.raises(InvalidInput, match="declares no CRS"):
        import_roads(roads_engine, no_crs)
    broken = tmp_path / "broken.gpkg"
    broken.write_bytes(b"not a geopackage")
    with pytest.raises(ImportFailed, match="cannot read"):
        import_roads(roads_engine, broken)
    assert _count(roads_engine, "SELECT count(*) FROM dataset") == before
