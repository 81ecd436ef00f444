"""The shared sample networks and IFC buildings, imported by cim's importers, tile correctly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.conftest import SHARED_SAMPLES, TEST_SRID
from tests.tiles.checks import (
    assert_building_vertices,
    assert_pipe_solids,
    check_tileset,
    content_path,
    content_tiles,
)
from tests.tiles.conftest import validate_gltf
from tiles.build import build_mesh_layer

ORIGIN = (534_000.0, 3_380_000.0, 20.0)  # drawing coordinates placed in EPSG:4547


@pytest.fixture
def empty(engine: Engine) -> Iterator[None]:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM tileset"))


def _validated(folder: Path) -> None:
    tiles = check_tileset(folder)
    files = [folder / content_path(t["content"]["uri"]) for t, _ in tiles if "content" in t]
    report = validate_gltf(files)
    assert {f: r for f, r in report.items() if r["errors"] or r["warnings"]} == {}


def test_shared_pipe_networks_tile(engine: Engine, empty: None, tmp_path: Path) -> None:
    from importers.pipes import PipeImportOptions, import_pipes

    samples = SHARED_SAMPLES / "pipes"
    import_pipes(engine, [samples / "Net3.inp"], PipeImportOptions(origin=ORIGIN))
    import_pipes(engine, [samples / "swmm_Example1.inp"], PipeImportOptions(origin=ORIGIN))
    result = build_mesh_layer(engine, tmp_path, "pipes", max_triangles=4000)
    _validated(tmp_path / "pipes")
    with engine.connect() as conn:
        segments = conn.execute(text("SELECT count(*) FROM pipe_segment")).scalar_one()
        nodes = conn.execute(
            text(
                "SELECT count(*) FROM pipe_node WHERE kind <> 'junction' OR appurtenance IS NOT"
                " NULL OR (bottom_z IS NOT NULL AND coalesce(ground_z, ST_Z(geom)) > bottom_z)"
            )
        ).scalar_one()
        assert result.features == segments + nodes
        rows = [row for table, *_ in content_tiles(tmp_path / "pipes") for row in table]
        assert len(rows) == segments + nodes
        assert assert_pipe_solids(tmp_path / "pipes", conn, TEST_SRID) == segments
        known = conn.execute(
            text(
                "SELECT s.id, s.code, s.utility, s.diameter_mm, s.nominal_dn, d.name"
                " FROM pipe_segment s "
                "JOIN dataset d ON d.id = s.dataset_id ORDER BY s.id LIMIT 1"
            )
        ).one()
    row = next(r for r in rows if r["table_id"] == known.id)
    assert (row["code"], row["utility"], row["dataset"]) == (known.code, known.utility, known.name)
    # Net3 is in inches: the label is the nominal size, the exact diameter its own property
    assert row["section"] == f"DN{known.nominal_dn}"
    assert row["diameter"] == pytest.approx(known.diameter_mm, rel=1e-6)


def test_shared_ifc_building_tiles(engine: Engine, empty: None, tmp_path: Path) -> None:
    importer = pytest.importorskip("importers.ifc.importer")
    georef = pytest.importorskip("importers.ifc.georef")
    importer.import_ifc(
        engine,
        SHARED_SAMPLES / "ifc" / "AC20-FZK-Haus.ifc",
        flags=georef.Flags(crs="EPSG:4547", origin=ORIGIN),
    )
    result = build_mesh_layer(engine, tmp_path, "buildings", max_triangles=3000)
    _validated(tmp_path / "buildings")
    with engine.connect() as conn:
        elements = conn.execute(
            text("SELECT count(*) FROM building_element WHERE NOT is_space")
        ).scalar_one()
        assert elements > 10
        assert result.features == elements
        assert assert_building_vertices(tmp_path / "buildings", conn, TEST_SRID) == elements
        known = conn.execute(
            text(
                "SELECT e.id, e.guid, e.ifc_class, e.name, s.name AS storey FROM building_element e"
                " LEFT JOIN building_storey s ON s.id = e.storey_id"
                " WHERE e.ifc_class = 'IfcWindow' ORDER BY e.id LIMIT 1"
            )
        ).one()
    rows = [row for table, *_ in content_tiles(tmp_path / "buildings") for row in table]
    row = next(r for r in rows if r["element_id"] == known.id)
    assert (row["guid"], row["ifc_class"]) == (known.guid, "IfcWindow")
    assert (row["name"], row["storey"]) == (known.name, known.storey)
