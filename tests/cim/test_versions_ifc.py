"""Versions of IFC models: a re-import is version 2 matched by GlobalId; BIM-block links survive.

The IfcOpenHouse sample is edited with ifcopenshell — the footing removed, the east wall
renamed, a copy of the stair flight added (a new GlobalId), the north wall (no openings) moved
3 m — and
imported again under the same name. The FZK-Haus pair (IFC on its CityGML block) is re-imported
side by side to check that the block stays superseded by the same IFC building.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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
from tests.cim.test_versions_other_kinds import EDITS, _ids, _items_then_and_now, _version_two
from tests.conftest import SHARED_SAMPLES, migrated_database

ifcopenshell = pytest.importorskip("ifcopenshell")
ifc_importer = pytest.importorskip("importers.ifc")

HOUSE = SHARED_SAMPLES / "ifc" / "IfcOpenHouse_IFC4.ifc"
FOOTING, NORTH_WALL, EAST_WALL, STAIR = (
    "2W4bl$KK1Brv_UEOkAThqU", "3xUPAVO39FGgNkCUQqf4JV", "3hw7qrktPAl8j6w3qKhwKm",
    "2Ab2jpYsXCGu4_o2TnJmpB",
)  # fmt: skip
# As the IFC import tests: placed inside the test database's CRS (EPSG:4547), turned 30°.
ORIGIN = ifc_importer.Flags(origin=(500000.0, 3000000.0, 10.0), rotation=30.0)


def _edited_house(target: Path) -> str:
    """The house with the edits of the module doc (lengths in mm); the new stair's GlobalId."""
    import ifcopenshell.api

    model = ifcopenshell.open(str(HOUSE))
    ifcopenshell.api.run("root.remove_product", model, product=model.by_guid(FOOTING))
    model.by_guid(EAST_WALL).Name = "East wall (rebuilt)"
    stair = model.by_guid(STAIR)
    added = ifcopenshell.api.run("root.copy_class", model, product=stair)
    added.Representation = stair.Representation  # copy_class leaves the body out
    placement = model.by_guid(NORTH_WALL).ObjectPlacement.RelativePlacement
    x, y, z = placement.Location.Coordinates
    placement.Location = model.createIfcCartesianPoint((x + 3000.0, y, z))
    target.parent.mkdir(exist_ok=True)
    model.write(str(target))
    return str(added.GlobalId)


def test_an_ifc_model_reimported_is_version_two(
    engine: Engine, database_url: str, clean_tables: None, tmp_path: Path
) -> None:
    first = ifc_importer.import_ifc(engine, HOUSE, flags=ORIGIN, threads=2).result
    dataset_id = first.dataset.id
    by_guid = "SELECT guid, id FROM {} WHERE dataset_id = :d"
    tables = ("building", "building_storey", "building_element")
    v1 = {t: _ids(engine, by_guid.format(t), dataset_id) for t in tables}
    added = _edited_house(tmp_path / "v2" / HOUSE.name)

    second = ifc_importer.import_ifc(engine, tmp_path / "v2" / HOUSE.name, flags=ORIGIN).result
    assert second.created and second.dataset.id == dataset_id
    changes = _version_two(engine, dataset_id)
    elements = len(v1["building_element"])
    assert changes["building_element"] == {**EDITS, "unchanged": elements - 3}
    assert changes["building_storey"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 1}
    # the building's footprint is its elements' one: the moved wall widens it
    assert changes["building"] == {"added": 0, "removed": 0, "changed": 1, "unchanged": 0}
    v2 = {t: _ids(engine, by_guid.format(t), dataset_id) for t in tables}
    assert set(v2["building_element"]) == set(v1["building_element"]) - {FOOTING} | {added}
    for table in tables:  # every feature kept keeps its id, the changed ones too
        kept = set(v1[table]) - {FOOTING}
        assert {k: v2[table][k] for k in kept} == {k: v1[table][k] for k in kept}

    with Session(engine) as session:
        diff = dataset_diff(session, dataset_id=dataset_id, srid=4547)
    got = {
        f.code: (f.state, f.attributes, f.moved_m)
        for f in diff.features
        if f.table == "building_element"
    }
    assert got == {
        FOOTING: ("removed", [], None),
        EAST_WALL: ("changed", ["name"], None),
        added: ("added", [], None),
        NORTH_WALL: ("changed", ["bbox3d", "mesh", "footprint"], pytest.approx(3.0, abs=1e-6)),
    }
    values = {
        f.code: f.changes for f in diff.features if f.table == "building_element" and f.changes
    }
    assert values == {EAST_WALL: {"name": {"from": "East wall", "to": "East wall (rebuilt)"}}}
    then, now = _items_then_and_now(engine, dataset_id, "building_elements", 4547, "guid")
    assert then == set(v1["building_element"]) and now == set(v2["building_element"])
    names_then = _names_at_version_one(engine, dataset_id)
    assert names_then[EAST_WALL] == "East wall"
    _over_http(database_url, tmp_path, dataset_id, then)


def _over_http(database_url: str, tmp_path: Path, dataset_id: int, then: set[Any]) -> None:
    """The same answers from ``GET /datasets/{id}/diff`` and ``datetime`` on the items."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from cim.config import CimSettings

    settings = CimSettings(
        database_url=database_url, data_dir=tmp_path / "data", collection_cache_seconds=0
    )
    with TestClient(create_app(settings)) as client:
        diff = client.get(f"/datasets/{dataset_id}/diff").json()
        v1_time = client.get(f"/datasets/{dataset_id}/versions").json()["versions"][0]
        items = client.get(
            "/collections/building_elements/items",
            params={"datetime": v1_time["created_at"], "limit": 1000},
        ).json()
    assert diff["totals"] == {"added": 1, "removed": 1, "changed": 3}  # the building too
    assert {f["properties"]["guid"] for f in items["features"]} == then


def _names_at_version_one(engine: Engine, dataset_id: int) -> dict[str, Any]:
    spec = next(s for s in collection_specs([]) if s.id == "building_elements")
    with Session(engine) as session:
        t1 = version_time(session, dataset_id, 1)
        page = query_items(
            session, spec=spec_at(spec, (t1, t1)),
            query=ItemsQuery(limit=5000, crs=parse_ogc_crs(None, 4547)), storage_srid=4547,
        )  # fmt: skip
    features = json.loads(f"[{page.features}]")
    return {f["properties"]["guid"]: f["properties"]["name"] for f in features}


# -- BIM supersedes the block, across versions of either side ---------------------------------

FZK_GML = SHARED_SAMPLES / "citymodels" / "FZK-Haus-LoD2-KIT-IAI-KHH-B36-V1__v3.gml"
FZK_IFC = SHARED_SAMPLES / "ifc" / "AC20-FZK-Haus.ifc"
GML_CORNER = (457842.0, 5439083.0, 111.8)  # as tests/importers/test_bim_supersedes_block.py


@pytest.fixture(scope="module")
def utm_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_versions_supersede", srid=25832))
    yield engine
    engine.dispose()


def _link(engine: Engine) -> tuple[int | None, int, int]:
    """(the block's superseded_by, the IFC building's id, datasets)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT c.superseded_by, b.id, (SELECT count(*) FROM dataset)"
                " FROM building c JOIN dataset dc ON dc.id = c.dataset_id"
                " AND dc.kind = 'buildings', building b JOIN dataset db ON db.id = b.dataset_id"
                " AND db.kind = 'ifc'"
            )
        ).one()
    return row[0], int(row[1]), int(row[2])


@pytest.mark.slow
def test_block_links_survive_a_new_version_of_either_side(utm_engine: Engine) -> None:
    from importers.citymodel import import_buildings

    with utm_engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
    flags = ifc_importer.Flags(crs="EPSG:25832", origin=GML_CORNER)
    import_buildings(utm_engine, [FZK_GML])
    ifc_importer.import_ifc(utm_engine, FZK_IFC, flags=flags)
    superseded_by, ifc_building, datasets = _link(utm_engine)
    assert superseded_by == ifc_building and datasets == 2

    again = ifc_importer.import_ifc(utm_engine, FZK_IFC, flags=flags, replace=True).result
    assert again.created  # version 2 of the IFC dataset: its building kept its id
    assert _link(utm_engine) == (ifc_building, ifc_building, 2)
    import_buildings(utm_engine, [FZK_GML], replace=True)
    assert _link(utm_engine) == (ifc_building, ifc_building, 2)
    # placed by its own IfcSite the house moves a kilometre off its block: the link goes ...
    ifc_importer.import_ifc(utm_engine, FZK_IFC, flags=ifc_importer.Flags(), replace=True)
    assert _link(utm_engine) == (None, ifc_building, 2)
    # ... and comes back with the house (the same building id: version 4)
    ifc_importer.import_ifc(utm_engine, FZK_IFC, flags=flags, replace=True)
    assert _link(utm_engine) == (ifc_building, ifc_building, 2)
    with utm_engine.connect() as conn:
        versions = conn.execute(
            text("SELECT d.kind, max(v.version) FROM dataset_version v"
                 " JOIN dataset d ON d.id = v.dataset_id GROUP BY 1 ORDER BY 1")
        ).all()  # fmt: skip
    assert versions == [("buildings", 2), ("ifc", 4)]
