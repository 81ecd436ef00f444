"""Fixtures for the 3D Tiles tests: a small committed city (buildings + pipes) and validators."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, reserve_ids
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import
from tests.conftest import REPO, TEST_SRID

X0, Y0 = 534_000.0, 3_380_000.0  # near Wuhan in EPSG:4547, like bench/generator.py


def ewkb(geometry: shapely.Geometry) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geometry, TEST_SRID), hex=True, include_srid=True))


def box_faces(x0: float, y0: float, z0: float, x1: float, y1: float, z1: float) -> list[list]:
    """The 6 faces of a box as 4-corner rings (outward, counter-clockwise seen from outside)."""
    p = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return [[p[i] for i in quad] for quad in quads]


def box_mesh(*bounds: float) -> shapely.MultiPolygon:
    """A box as 12 triangles (the layout the IFC importer stores)."""
    triangles = []
    for a, b, c, d in box_faces(*bounds):
        triangles += [shapely.Polygon([a, b, c]), shapely.Polygon([a, c, d])]
    return shapely.MultiPolygon(triangles)


def quad_mesh(*bounds: float) -> shapely.MultiPolygon:
    """A box as 6 quads (exercises the fan-triangulation path)."""
    return shapely.MultiPolygon([shapely.Polygon(face) for face in box_faces(*bounds)])


@dataclass
class City:
    building_dataset: int
    pipe_dataset: int
    elements: int  # non-space elements (features of the buildings layer)
    pipe_features: int  # segments + non-junction / deep nodes


def _write_buildings(session: Session, dataset: Any) -> WriteOutcome:
    building_id, storey_id = reserve_ids(session, table="building", count=1)[0], None
    session.execute(
        text(
            "INSERT INTO building (id, dataset_id, guid, name) "
            "VALUES (:id, :d, 'BLDG', 'Test House')"
        ),
        {"id": building_id, "d": dataset.id},
    )
    storey_id = session.execute(
        text(
            "INSERT INTO building_storey (dataset_id, building_id, guid, name, elevation) "
            "VALUES (:d, :b, 'STOREY', 'Ground floor', 20) RETURNING id"
        ),
        {"d": dataset.id, "b": building_id},
    ).scalar_one()
    rows = []
    for k in range(24):  # walls and small boxes spread over ~200 m, various sizes
        x = X0 + (k % 6) * 35.0
        y = Y0 + (k // 6) * 45.0
        size = 12.0 if k % 4 == 0 else 1.5
        mesh = box_mesh(x, y, 20.0, x + size, y + 0.4 + size / 4, 20.0 + size / 2)
        rows.append(
            [
                f"GUID{k:04d}",
                "IfcWall" if size > 2 else "IfcFurnishingElement",
                f"element {k}",
                False,
                [0.8, 0.2, 0.1, 1.0],
                "Concrete",
                mesh,
            ]
        )
    rows.append(
        [
            "GUIDWINDOW",
            "IfcWindow",
            "window",
            False,
            [0.5, 0.7, 0.9, 0.4],
            "Glass",
            box_mesh(X0 + 3, Y0 - 1, 21.0, X0 + 5, Y0 - 0.9, 22.5),
        ]
    )
    rows.append(
        [
            "GUIDQUADS",
            "IfcSlab",
            "slab",
            False,
            None,
            None,
            quad_mesh(X0 - 20, Y0 - 20, 19.7, X0 - 2, Y0 - 2, 20.0),
        ]
    )
    rows.append(
        [
            "GUIDSPACE",
            "IfcSpace",
            "room",
            True,
            None,
            None,
            box_mesh(X0, Y0, 20.0, X0 + 5, Y0 + 5, 23.0),
        ]
    )
    copy_rows(
        session,
        table="building_element",
        columns=[
            "dataset_id",
            "building_id",
            "storey_id",
            "guid",
            "ifc_class",
            "name",
            "is_space",
            "color",
            "material",
            "mesh",
            "triangle_count",
        ],
        rows=(
            [
                dataset.id,
                building_id,
                storey_id,
                g,
                c,
                n,
                s,
                None if col is None else "{" + ",".join(map(str, col)) + "}",
                m,
                ewkb(mesh),
                len(mesh.geoms) * (2 if g == "GUIDQUADS" else 1),
            ]
            for g, c, n, s, col, m, mesh in rows
        ),
    )
    return WriteOutcome(counts={"building_element": len(rows)})


PIPE_NODES = [
    # code, utility, subclass, kind, x, y, ground, bottom
    ("MH1", "PS", "YS", "manhole", X0 + 10, Y0 + 60, 21.0, 17.5),
    ("V1", "JS", None, "valve", X0 + 60, Y0 + 60, 21.2, None),
    ("J1", "JS", None, "junction", X0 + 120, Y0 + 60, 21.4, None),
    ("J2", "DL", None, "junction", X0 + 180, Y0 + 60, 21.6, None),
    ("J3", "DL", None, "junction", X0 + 180, Y0 + 140, 21.6, None),
]


def _write_pipes(session: Session, dataset: Any) -> WriteOutcome:
    ids = reserve_ids(session, table="pipe_node", count=len(PIPE_NODES))
    copy_rows(
        session,
        table="pipe_node",
        columns=[
            "id",
            "dataset_id",
            "code",
            "utility",
            "subclass",
            "kind",
            "geom",
            "ground_z",
            "bottom_z",
        ],
        rows=(
            [i, dataset.id, c, u, s, k, ewkb(shapely.Point(x, y, g)), g, b]
            for i, (c, u, s, k, x, y, g, b) in zip(ids, PIPE_NODES, strict=True)
        ),
    )
    node = dict(zip([n[0] for n in PIPE_NODES], ids, strict=True))
    segments = [
        # code, utility, subclass, start, end, coords, shape, diameter, width, height, year
        (
            "S1",
            "PS",
            "YS",
            "MH1",
            "V1",
            [(X0 + 10, Y0 + 60, 17.8), (X0 + 35, Y0 + 62, 17.7), (X0 + 60, Y0 + 60, 17.6)],
            "circular",
            300,
            None,
            None,
            1995,
        ),
        (
            "S2",
            "JS",
            None,
            "V1",
            "J1",
            [(X0 + 60, Y0 + 60, 19.5), (X0 + 120, Y0 + 60, 19.4)],
            "rectangular",
            None,
            800,
            600,
            2010,
        ),
        (
            "S3",
            "DL",
            None,
            "J2",
            "J3",
            [(X0 + 180, Y0 + 60, 20.0), (X0 + 180, Y0 + 140, 20.1)],
            "circular",
            1200,
            None,
            None,
            None,
        ),
    ]
    copy_rows(
        session,
        table="pipe_segment",
        columns=[
            "dataset_id",
            "code",
            "utility",
            "subclass",
            "start_node_id",
            "end_node_id",
            "geom",
            "section_shape",
            "diameter_mm",
            "width_mm",
            "height_mm",
            "year",
            "material",
        ],
        rows=(
            [
                dataset.id,
                c,
                u,
                s,
                node[a],
                node[b],
                ewkb(shapely.LineString(xyz)),
                shape,
                d,
                w,
                h,
                yr,
                "PE",
            ]
            for c, u, s, a, b, xyz, shape, d, w, h, yr in segments
        ),
    )
    return WriteOutcome(counts={"pipe_segment": len(segments)})


def import_city(engine: Engine, tag: str = "") -> City:
    """Commit one IFC-like dataset and one pipes dataset; returns their ids and counts."""
    stamp = f"{tag}{time.time_ns()}"
    buildings = run_import(
        engine,
        source=DatasetSource(
            kind="ifc",
            name=f"test house {tag}".strip(),
            source_name="house.ifc",
            source_sha256=f"ifc{stamp}",
        ),
        write=_write_buildings,
    )
    pipes = run_import(
        engine,
        source=DatasetSource(
            kind="pipes",
            name=f"test pipes {tag}".strip(),
            source_name="pipes.csv",
            source_sha256=f"pipes{stamp}",
        ),
        write=_write_pipes,
    )
    # features: 26 non-space elements; 3 segments + MH1 (well) + V1 (valve)
    return City(buildings.dataset.id, pipes.dataset.id, 26, 5)


@pytest.fixture(scope="module")
def city(engine: Engine) -> Iterator[City]:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM tileset"))
    yield import_city(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM tileset"))


def validate_gltf(files: list[Path]) -> dict[str, dict[str, Any]]:
    """Run the Khronos glTF validator (npm) over ``files``; {file: {errors, warnings, ...}}."""
    script = Path(__file__).with_name("gltf_validate.js")
    out = subprocess.run(
        ["node", str(script), *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, dict[str, Any]] = json.loads(out.stdout)
    return result
