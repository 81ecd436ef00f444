"""Tiles of a database in UTM 16N (EPSG:32616, the demo's storage CRS) line up within 1 cm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import
from tests.conftest import migrated_database
from tests.tiles.checks import assert_building_vertices, assert_pipe_solids, check_tileset
from tests.tiles.conftest import box_mesh, validate_gltf
from tiles.build import build_mesh_layer

SRID = 32616
E0, N0 = 640_000.0, 4_210_000.0  # Kentucky, near the KY4 network


@pytest.fixture(scope="module")
def utm_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_tiles_utm", srid=SRID))
    yield engine
    engine.dispose()


def _hex(geometry: shapely.Geometry) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geometry, SRID), hex=True, include_srid=True))


def _write(session, dataset):  # type: ignore[no-untyped-def]
    for k in range(3):
        session.execute(
            text(
                "INSERT INTO building_element (dataset_id, guid, ifc_class, mesh) "
                "VALUES (:d, :g, 'IfcWall', CAST(:m AS geometry))"
            ),
            {
                "d": dataset.id,
                "g": f"UTM{k}",
                "m": _hex(box_mesh(E0 + 400 * k, N0, 150, E0 + 400 * k + 20, N0 + 0.3, 160)),
            },
        )
    return WriteOutcome(counts={"building_element": 3})


def _write_pipes(session, dataset):  # type: ignore[no-untyped-def]
    ids = []
    for code, x in (("A", E0), ("B", E0 + 900)):
        ids.append(
            session.execute(
                text(
                    "INSERT INTO pipe_node (dataset_id, code, utility, geom, ground_z) VALUES "
                    "(:d, :c, 'JS', CAST(:g AS geometry), 150) RETURNING id"
                ),
                {"d": dataset.id, "c": code, "g": _hex(shapely.Point(x, N0 - 5, 150))},
            ).scalar_one()
        )
    session.execute(
        text(
            "INSERT INTO pipe_segment (dataset_id, code, utility, start_node_id, end_node_id, geom,"
            " diameter_mm) VALUES (:d, 'AB', 'JS', :a, :b, CAST(:g AS geometry), 600)"
        ),
        {
            "d": dataset.id,
            "a": ids[0],
            "b": ids[1],
            "g": _hex(shapely.LineString([(E0, N0 - 5, 148), (E0 + 900, N0 - 5, 147)])),
        },
    )
    return WriteOutcome(counts={"pipe_segment": 1})


def test_utm_tiles_match_pyproj_within_1cm(utm_engine: Engine, tmp_path: Path) -> None:
    for kind, write in (("ifc", _write), ("pipes", _write_pipes)):
        run_import(
            utm_engine,
            source=DatasetSource(kind=kind, name=kind, source_name=kind, source_sha256=kind),
            write=write,
            replace=True,
        )
    for layer in ("buildings", "pipes"):
        result = build_mesh_layer(utm_engine, tmp_path, layer, force=True, max_triangles=20)
        assert result.status == "built"
        tiles = check_tileset(tmp_path / layer)
        files = [
            tmp_path / layer / t["content"]["uri"].split("?")[0] for t, _ in tiles if "content" in t
        ]
        report = validate_gltf(files)
        assert {f: r for f, r in report.items() if r["errors"] or r["warnings"]} == {}
    with utm_engine.connect() as conn:
        assert assert_building_vertices(tmp_path / "buildings", conn, SRID) == 3
        assert assert_pipe_solids(tmp_path / "pipes", conn, SRID) == 1
