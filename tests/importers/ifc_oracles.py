"""Oracles and databases for the IFC import tests: ifcopenshell's own answers, computed here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import ifcopenshell
import ifcopenshell.geom
import numpy as np
import shapely
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from tests.conftest import SHARED_SAMPLES, migrated_database

IFC = SHARED_SAMPLES / "ifc"
UNOPENABLE = "KIT-Simple-Road-Test-Web-IFC4x3_RC2.ifc"
EMPTY = "Axis2PlacementError.ifc"
SLOW = {"Office_A_20110811.ifc", "ISSUE_021_Mini_Project.ifc"}


def sample_files() -> list[Path]:
    """Every shared IFC sample that ifcopenshell opens and that has content."""
    return sorted(
        p
        for p in IFC.iterdir()
        if p.suffix in {".ifc", ".ifczip"} and p.name not in {UNOPENABLE, EMPTY}
    )


@cache
def iterator_oracle(path: Path) -> tuple[Counter[str], int, set[str]]:
    """Per class, the distinct products the geometry iterator yields; triangles; their GUIDs."""
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    ifc = ifcopenshell.open(str(path))  # keep a reference: the iterator does not
    iterator = ifcopenshell.geom.iterator(
        settings,
        ifc,
        2,
        exclude=["IfcOpeningElement"],
        geometry_library="hybrid-cgal-simple-opencascade",
    )
    seen: dict[int, str] = {}
    guids: set[str] = set()
    triangles = 0
    if iterator.initialize():
        while True:
            shape = iterator.get()
            seen[shape.id] = shape.type
            guids.add(shape.guid)
            triangles += len(shape.geometry.faces) // 3
            if not iterator.next():
                break
    return Counter(seen.values()), triangles, guids


def world_vertices(ifc: ifcopenshell.file, guid: str) -> tuple[np.ndarray, Any]:
    """``create_shape`` (Open CASCADE) world vertices in metres and the triangulation."""
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    shape = ifcopenshell.geom.create_shape(settings, ifc.by_guid(guid))
    return np.asarray(shape.geometry.verts, dtype=float).reshape(-1, 3), shape.geometry


def stored_triangles(engine: Engine, dataset_id: int, guid: str) -> np.ndarray:
    """(n, 3, 3) triangles of a stored element mesh."""
    with engine.connect() as conn:
        wkb = conn.execute(
            text(
                "SELECT ST_AsBinary(mesh) FROM building_element WHERE dataset_id = :d AND guid = :g"
            ),
            {"d": dataset_id, "g": guid},
        ).scalar_one()
    mesh = shapely.from_wkb(bytes(wkb))
    rings = [np.asarray(p.exterior.coords)[:3] for p in mesh.geoms]
    return np.asarray(rings, dtype=float)


def mesh_area_volume(triangles: np.ndarray) -> tuple[float, float]:
    """Surface area and enclosed (signed, divergence theorem) volume of a triangle soup."""
    centred = triangles - triangles.reshape(-1, 3).mean(axis=0)
    a, b, c = centred[:, 0], centred[:, 1], centred[:, 2]
    cross = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(cross, axis=1).sum()
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    return float(area), float(abs(volume))


@contextmanager
def srid_engine(server_url: str, srid: int) -> Iterator[Engine]:
    """A fresh migrated database with storage SRID ``srid``, dropped contents afterwards."""
    engine = make_engine(migrated_database(server_url, f"cim_test_ifc_{srid}", srid=srid))
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dataset"))
        engine.dispose()


def delete_dataset_rows(engine: Engine, dataset_ids: list[int]) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset WHERE id = ANY(:ids)"), {"ids": dataset_ids})


def dataset_count(engine: Engine, source_name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM dataset WHERE source_name = :n"), {"n": source_name}
            ).scalar_one()
        )
