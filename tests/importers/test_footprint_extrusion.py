"""Blocks of many footprints at once (``extrusion.block_surfaces``) against one-by-one ``extrude``,
earcut's convex pattern against earcut itself, and the binary EWKB/text[] encoders against
shapely and PostgreSQL; chunked footprint reading against the whole file.

The oracles: ``mapbox_earcut`` on each ring, :func:`extrude` (the one-by-one extrusion the
importer used before, kept for the footprints the array path does not take), ``shapely.to_wkb``
and the server's own parsing of the binary values.
"""

from __future__ import annotations

import json
from pathlib import Path

import mapbox_earcut
import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.errors import ImportFailed
from importers.citymodel import footprints as footprint_module
from importers.citymodel import import_buildings
from importers.citymodel.binary_rows import multipolygon_z_ewkb, text_arrays
from importers.citymodel.extrusion import block_surfaces, extrude
from importers.citymodel.triangulate import convex_pattern
from importers.citymodel.writer import BuildingBatch, BuildingWriter
from importers.pipes.binary_columns import tuples

X0, Y0 = 534000.0, 3380000.0


def _convex_ring(rng: np.random.Generator, n: int, clockwise: bool) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    angles = angles[::-1] if clockwise else angles
    radius = rng.uniform(2, 40)
    return np.column_stack([np.cos(angles), np.sin(angles)]) * radius + [X0, Y0]


@pytest.mark.parametrize("n", [3, 4, 5, 6, 9, 17])
def test_convex_pattern_is_what_earcut_answers(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(50):
        ring = _convex_ring(rng, n, clockwise=False)
        expected = mapbox_earcut.triangulate_float64(ring, np.array([n], dtype=np.uint32))
        assert convex_pattern(n).reshape(-1).tolist() == expected.tolist()


def _footprints() -> list[shapely.Geometry]:
    """Convex rings both ways round, concave, holes, several parts, collinear and repeated
    vertices, a sliver: every path of ``block_surfaces``."""
    rng = np.random.default_rng(7)
    shapes = []
    for k in range(60):
        ring = _convex_ring(rng, 3 + k % 8, clockwise=bool(k % 2)) + np.array([50.0 * k, 0.0])
        shapes.append(shapely.Polygon(ring))
    shapes += [
        shapely.Polygon([(0, 0), (20, 0), (20, 5), (5, 5), (5, 20), (0, 20)]),  # concave
        shapely.box(0, 0, 20, 20).difference(shapely.box(5, 5, 10, 10)),  # a hole
        shapely.MultiPolygon([shapely.box(0, 0, 5, 5), shapely.box(10, 0, 15, 5)]),
        shapely.Polygon([(0, 0), (10, 0), (20, 0), (20, 8), (0, 8)]),  # collinear vertex
        shapely.Polygon([(0, 0), (10, 0), (10, 0), (10, 8), (0, 8)]),  # repeated vertex
        shapely.Polygon([(0, 0), (1e-4, 0), (1e-4, 1e-4)]),  # too small for a roof
    ]
    return [shapely.multipolygons(shapely.get_parts(s)) for s in shapes]


def test_blocks_at_once_equal_one_by_one() -> None:
    footprints = np.array(_footprints(), dtype=object)
    base = np.linspace(0.0, 9.0, len(footprints))
    top = base + np.linspace(3.0, 60.0, len(footprints))
    rows = block_surfaces(footprints, base, top)
    expected_triangles, expected_rows = [], []
    for i, footprint in enumerate(footprints):
        surfaces = extrude(footprint, float(base[i]), float(top[i]))
        for (lod, semantic), block in sorted(surfaces.items(), key=lambda item: item[0][1] or ""):
            expected_rows.append((i, lod, semantic, len(block)))
            expected_triangles.append(block)
    found_rows = list(
        zip(rows.building.tolist(), rows.lod, rows.semantic, rows.sizes.tolist(), strict=True)
    )
    assert found_rows == expected_rows
    assert np.array_equal(rows.triangles, np.concatenate(expected_triangles))
    # The sliver has walls only; every other footprint has ground, roof and walls.
    assert [r[2] for r in found_rows if r[0] == len(footprints) - 1] == ["WallSurface"]


def test_multipolygon_ewkb_is_shapely_s() -> None:
    triangles = np.random.default_rng(1).uniform(0, 100, size=(5, 3, 3))
    column = multipolygon_z_ewkb(triangles, np.array([2, 3]), 4547)
    first = shapely.set_srid(shapely.multipolygons(shapely.polygons(triangles[:2])), 4547)
    expected = shapely.to_wkb(first, include_srid=True, byte_order=1, flavor="extended")
    assert bytes(column.data[: column.lengths[0]]) == expected


def test_text_arrays_read_back_by_the_server(engine: Engine) -> None:
    column = text_arrays([(), ("1",), ("1", "2.2"), ('a"b',)])
    buffer = b"PGCOPY\n\xff\r\n\x00" + bytes(8) + bytes(tuples([column])) + b"\xff\xff"
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE lods_probe (lods text[])"))
        driver = conn.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy("COPY lods_probe (lods) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(buffer)
        found = [r[0] for r in conn.execute(text("SELECT lods FROM lods_probe")).all()]
    assert found == [[], ["1"], ["1", "2.2"], ['a"b']]


def test_chunks_give_the_rows_of_one_read(
    engine: Engine, clean_tables: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Footprints read 7 at a time: every row kept, default ids numbered from the file's
    start, skips counted across chunks, a bad value named by its row in the file."""
    features = []
    for k in range(23):
        ring = shapely.box(X0 + 30 * k, Y0, X0 + 30 * k + 10 + k % 3, Y0 + 8)
        height = None if k % 5 == 4 else 3.0 + k
        features.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(ring),
                "properties": {"h": height},
            }
        )
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}},
        "features": features,
    }
    source = tmp_path / "blocks.geojson"
    source.write_text(json.dumps(document))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("height: h\n")
    monkeypatch.setattr(footprint_module, "CHUNK_ROWS", 7)
    result = import_buildings(engine, [source], mapping=mapping)
    assert result.dataset.counts["buildings"] == 19
    assert result.dataset.qc["skipped_no_height"] == 4
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT source_id, height, ST_Area(footprint) FROM building ORDER BY id")
        ).all()
    kept = [k for k in range(23) if k % 5 != 4]
    assert [r[0] for r in rows] == [f"blocks/{k + 1}" for k in kept]
    assert [r[1] for r in rows] == pytest.approx([3.0 + k for k in kept])
    assert [r[2] for r in rows] == pytest.approx([8.0 * (10 + k % 3) for k in kept])
    features[17]["properties"]["h"] = "tall"
    source.write_text(json.dumps(document))
    with pytest.raises(Exception, match="row 18: height 'tall' is not a number"):
        import_buildings(engine, [source], mapping=mapping, replace=True)


def test_references_checked_when_row_triggers_were_off(session: Session) -> None:
    """With the per-row foreign-key triggers off for the COPY, a surface naming no building of
    the dataset is still refused, once, when the writer finishes."""
    dataset = session.execute(
        text(
            "INSERT INTO dataset (kind, name, source_name, source_sha256, status)"
            " VALUES ('buildings', 'probe', 'probe', 'x', 'loading')"
            " RETURNING id"
        )
    ).scalar_one()
    writer = BuildingWriter(session, dataset, 4547)
    footprints = np.array([shapely.MultiPolygon([shapely.box(X0, Y0, X0 + 5, Y0 + 5)])])
    base, top = np.zeros(1), np.full(1, 6.0)
    batch = BuildingBatch(
        source_ids=["a"], names=[None], footprints=footprints, base_z=base, top_z=top,
        attrs=[{}], lods=[("1",)], height=top - base, storeys=np.full(1, np.nan),
        function=[None], year=np.full(1, np.nan), surfaces=block_surfaces(footprints, base, top),
    )  # fmt: skip
    writer.add_batch(batch)
    assert writer.bulk  # the test database's role is a superuser
    session.execute(
        text(
            "INSERT INTO building_surface (dataset_id, building_id, lod, semantic, geom)"
            " SELECT dataset_id, building_id + 1000, lod, semantic, geom FROM building_surface"
            " WHERE dataset_id = :d LIMIT 1"
        ),
        {"d": dataset},
    )
    with pytest.raises(ImportFailed, match="1 dangling reference"):
        writer.finish()
