"""Versions of shelters, population, city models and IFC: a re-import under the same name.

Each test imports a real sample, then a copy the test edits by hand — one feature removed, one
attribute changed, one feature added, one moved — under the same dataset name: that must be
version 2 of the same dataset with exactly those changes, the ids of the features kept, and
``datetime`` at version 1 reading the old feature set.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.engine import make_engine
from cim.services.ogc.crs import parse_ogc_crs
from cim.services.ogc.features import query_items
from cim.services.ogc.models import ItemsQuery
from cim.services.ogc.specs import collection_specs
from cim.services.versions.diff import dataset_diff
from cim.services.versions.history import version_time
from cim.services.versions.timetravel import spec_at
from importers.citymodel import import_buildings
from importers.shelters import import_population, import_shelters
from tests.conftest import REPO, SHARED_SAMPLES, migrated_database

MASSACHUSETTS = 26986  # Cambridge samples (WGS 84 GeoJSON) stored in metres
RD_NEW = 28992  # Rotterdam CityJSON (RD New + NAP)
EDITS = {"added": 1, "removed": 1, "changed": 2}


@pytest.fixture(scope="module")
def ma_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_versions_ma", srid=MASSACHUSETTS))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def rd_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_versions_rd", srid=RD_NEW))
    yield engine
    engine.dispose()


def _fresh(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))


def _rows(engine: Engine, sql: str, **bind: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), bind).all())


def _ids(engine: Engine, sql: str, dataset_id: int) -> dict[Any, int]:
    """key -> row id of a dataset's rows; ``sql`` selects the key column(s), then the id."""
    rows = _rows(engine, sql, d=dataset_id)
    return {(row[0] if len(row) == 2 else tuple(row[:-1])): row[-1] for row in rows}


def _version_two(engine: Engine, dataset_id: int) -> dict[str, Any]:
    rows = _rows(
        engine,
        "SELECT version, changes FROM dataset_version WHERE dataset_id = :d ORDER BY 1",
        d=dataset_id,
    )
    assert [version for version, _ in rows] == [1, 2]
    datasets = _rows(engine, "SELECT count(*) FROM dataset")[0][0]
    assert datasets == 1  # the re-import is no second dataset
    changes: dict[str, Any] = rows[1][1]
    return changes


def _items_then_and_now(
    engine: Engine, dataset_id: int, collection: str, srid: int, key: str
) -> tuple[set[Any], set[Any]]:
    """The ``key`` property of the collection's items at version 1's time and now."""
    specs = {spec.id: spec for spec in collection_specs([])}
    query = ItemsQuery(limit=5000, crs=parse_ogc_crs(None, srid))
    with Session(engine) as session:
        t1 = version_time(session, dataset_id, 1)
        spec = specs[collection]
        pages = [
            query_items(session, spec=s, query=query, storage_srid=srid)
            for s in (spec_at(spec, (t1, t1)), spec)
        ]
    then, now = ({f["properties"][key] for f in json.loads(f"[{page.features}]")} for page in pages)
    return then, now


# -- shelters and population (GeoJSON layers) ------------------------------------------------


def _edited_layer(source: Path, target: Path, key: str, attribute: str, value: Any) -> list[Any]:
    """Write ``source`` to ``target`` without feature 0, with ``attribute`` of feature 1 set to
    ``value``, a copy of feature 2 under a new key 200 m east, and feature 3 moved 50 m north.
    Returns the four features' keys and the moved feature's geometry before and after."""
    document = json.loads(source.read_text())
    features = document["features"]
    removed, changed, model, moved = features[:4]
    changed["properties"][attribute] = value
    added = copy.deepcopy(model)
    added["properties"][key] = f"{model['properties'][key]} (new)"
    before = shapely.geometry.shape(moved["geometry"])
    to_metres = Transformer.from_crs(4326, MASSACHUSETTS, always_xy=True)
    to_degrees = Transformer.from_crs(MASSACHUSETTS, 4326, always_xy=True)

    def shift(geometry: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
        shape = shapely.transform(
            shapely.geometry.shape(geometry), to_metres.transform, interleaved=False
        )
        shape = shapely.affinity.translate(shape, dx, dy)
        return dict(
            shapely.geometry.mapping(
                shapely.transform(shape, to_degrees.transform, interleaved=False)
            )
        )

    added["geometry"] = shift(model["geometry"], 200.0, 0.0)
    moved["geometry"] = shift(moved["geometry"], 0.0, 50.0)
    document["features"] = [*features[1:], added]
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(document))
    keys = [f["properties"][key] for f in (removed, changed, added, moved)]
    return [*keys, before, shapely.geometry.shape(moved["geometry"])]


def _moved_m(before: Any, after: Any) -> float:
    """Hausdorff distance in the storage CRS, computed apart from the database (the oracle)."""
    to_metres = Transformer.from_crs(4326, MASSACHUSETTS, always_xy=True)
    a, b = (shapely.transform(g, to_metres.transform, interleaved=False) for g in (before, after))
    return float(shapely.hausdorff_distance(a, b))


LAYERS = {
    "shelters": (
        import_shelters, "cambridge_EmergencyShelters.geojson", "cambridge_shelters.yaml",
        "shelter", "name", "Name", "Capacity", 999, "capacity", "shelters",
    ),
    "population": (
        import_population, "cambridge_Blocks2000_population.geojson",
        "cambridge_population.yaml", "population_unit", "code", "STFID", "POP_LAB", 12345.0,
        "population", "population_units",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_layer_reimported_is_version_two(ma_engine: Engine, tmp_path: Path, kind: str) -> None:
    importer, file, mapping, table, column, key, attribute, value, stored, collection = LAYERS[kind]
    _fresh(ma_engine)
    source = SHARED_SAMPLES / "shelters" / file
    mappings = REPO / "data" / "samples" / mapping
    first = importer(ma_engine, source, mapping=mappings)
    dataset_id = first.dataset.id
    by_key = f"SELECT {column}, id FROM {table} WHERE dataset_id = :d"
    ids_v1 = _ids(ma_engine, by_key, dataset_id)
    total = len(ids_v1)
    removed, changed, added, moved, before, after = _edited_layer(
        source, tmp_path / "v2" / file, key, attribute, value
    )

    second = importer(ma_engine, tmp_path / "v2" / file, mapping=mappings)
    assert second.created and second.dataset.id == dataset_id
    assert _version_two(ma_engine, dataset_id) == {table: {**EDITS, "unchanged": total - 3}}
    ids_v2 = _ids(ma_engine, by_key, dataset_id)
    assert set(ids_v2) == set(ids_v1) - {removed} | {added}
    kept = set(ids_v1) - {removed}
    assert {k: ids_v2[k] for k in kept} == {k: ids_v1[k] for k in kept}  # ids are stable

    with Session(ma_engine) as session:
        diff = dataset_diff(session, dataset_id=dataset_id, srid=MASSACHUSETTS)
    got = {f.code: (f.state, f.attributes, f.moved_m) for f in diff.features}
    assert diff.totals == EDITS
    assert got == {
        removed: ("removed", [], None),
        changed: ("changed", [stored], None),
        added: ("added", [], None),
        moved: ("changed", ["geom"], pytest.approx(_moved_m(before, after), abs=0.001)),
    }
    was = json.loads(source.read_text())["features"][1]["properties"][attribute]
    changes = {f.code: f.changes for f in diff.features if f.changes}
    assert changes == {changed: {stored: {"from": was, "to": value}}}  # the move is in moved_m
    then, now = _items_then_and_now(ma_engine, dataset_id, collection, MASSACHUSETTS, column)
    assert then == set(ids_v1) and now == set(ids_v2)


# -- city models (CityJSON) ------------------------------------------------------------------


ROTTERDAM = SHARED_SAMPLES / "citymodels" / "rotterdam_subset.city.json"


def _edited_city_model(target: Path) -> tuple[list[str], str]:
    """The Rotterdam subset without its first building, the second's ``bron_tex`` changed, a copy
    of the third 500 m east under a new id and the fourth moved 3 m east (vertices are integers
    of 1 mm: 3 m is 3000). Returns the ids of the removed, changed, added and moved buildings."""
    document = json.loads(ROTTERDAM.read_text())
    objects = document["CityObjects"]
    removed, changed, model, moved = list(objects)[:4]
    del objects[removed]
    objects[changed]["attributes"]["bron_tex"] = "survey 2026"
    vertices = document["vertices"]

    def shifted(item: Any, dx: int) -> Any:
        """``item`` (a boundary array) with every vertex index pointing at a shifted copy."""
        if isinstance(item, list):
            return [shifted(member, dx) for member in item]
        x, y, z = vertices[item]
        vertices.append([x + dx, y, z])
        return len(vertices) - 1

    added = "{00000000-0000-4000-8000-000000000001}"
    objects[added] = copy.deepcopy(objects[model])
    for name, dx in ((added, 500_000), (moved, 3000)):
        for geometry in objects[name]["geometry"]:
            geometry["boundaries"] = shifted(geometry["boundaries"], dx)
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(document))
    return [removed, changed, added, moved], model


def test_a_city_model_reimported_is_version_two(rd_engine: Engine, tmp_path: Path) -> None:
    _fresh(rd_engine)
    first = import_buildings(rd_engine, [ROTTERDAM], crs="EPSG:7415")
    dataset_id = first.dataset.id
    buildings = "SELECT guid, id FROM building WHERE dataset_id = :d"
    surfaces = (
        "SELECT b.guid, s.lod, s.semantic, s.id FROM building_surface s"
        " JOIN building b ON b.id = s.building_id WHERE s.dataset_id = :d"
    )
    buildings_v1, surfaces_v1 = (_ids(rd_engine, sql, dataset_id) for sql in (buildings, surfaces))
    (removed, changed, added, moved), model = _edited_city_model(tmp_path / "v2" / ROTTERDAM.name)

    second = import_buildings(rd_engine, [tmp_path / "v2" / ROTTERDAM.name], crs="EPSG:7415")
    assert second.created and second.dataset.id == dataset_id

    def faces(guid: str) -> int:  # surfaces (LoD, semantic) of a version 1 building
        return sum(1 for k in surfaces_v1 if k[0] == guid)

    assert _version_two(rd_engine, dataset_id) == {
        "building": {**EDITS, "unchanged": len(buildings_v1) - 3},
        "building_surface": {
            "added": faces(model), "removed": faces(removed), "changed": faces(moved),
            "unchanged": len(surfaces_v1) - faces(removed) - faces(moved),
        },
    }  # fmt: skip
    buildings_v2, surfaces_v2 = (_ids(rd_engine, sql, dataset_id) for sql in (buildings, surfaces))
    assert set(buildings_v2) == set(buildings_v1) - {removed} | {added}
    kept = set(buildings_v1) - {removed}
    assert {k: buildings_v2[k] for k in kept} == {k: buildings_v1[k] for k in kept}
    kept_faces = {k for k in surfaces_v1 if k[0] != removed}
    assert {k: surfaces_v2[k] for k in kept_faces} == {k: surfaces_v1[k] for k in kept_faces}

    with Session(rd_engine) as session:
        diff = dataset_diff(session, dataset_id=dataset_id, srid=RD_NEW)
    got = {
        f.code: (f.state, f.attributes, f.moved_m) for f in diff.features if f.table == "building"
    }
    assert got == {
        removed: ("removed", [], None),
        changed: ("changed", ["attrs"], None),
        added: ("added", [], None),
        moved: ("changed", ["footprint"], 3.0),
    }
    was = json.loads(ROTTERDAM.read_text())["CityObjects"][changed]["attributes"]["bron_tex"]
    changes = {f.code: f.changes for f in diff.features if f.table == "building" and f.changes}
    assert changes == {changed: {"attrs.bron_tex": {"from": was, "to": "survey 2026"}}}
    assert diff.summary["building_surface"][""]["changed"] == faces(moved)
    then, now = _items_then_and_now(rd_engine, dataset_id, "buildings", RD_NEW, "guid")
    assert then == set(buildings_v1) and now == set(buildings_v2)


def test_deleting_a_versioned_city_model_leaves_nothing(rd_engine: Engine, tmp_path: Path) -> None:
    _fresh(rd_engine)
    import_buildings(rd_engine, [ROTTERDAM], crs="EPSG:7415")
    _edited_city_model(tmp_path / "v2" / ROTTERDAM.name)
    import_buildings(rd_engine, [tmp_path / "v2" / ROTTERDAM.name], crs="EPSG:7415")
    assert _rows(rd_engine, "SELECT count(*) FROM feature_history")[0][0] > 0
    _fresh(rd_engine)
    left = [
        _rows(rd_engine, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("dataset_version", "feature_history", "building", "building_surface")
    ]
    assert left == [0, 0, 0, 0]
