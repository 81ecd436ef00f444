"""``POST /analysis/drainage/flood/hazards`` (issue 19): a flood saved as hazard zones, then a
shelter plan that excludes them.

Oracles: the zones must be the extents ``POST /analysis/drainage/flood`` answers for the same
request (same polygons, same areas; the extent itself is checked against the paraboloid's
closed form in ``tests/cim/test_simulation_flood.py``), and the shelter 3 m from the flooded
node must become unusable while the one 150 m away takes everyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.bulkhead import HEAVY_ROUTES
from api.main import create_app
from cim.config import CimSettings
from tests.flood_hazard_fixtures import FloodCity, build_flood_city

ROUTE = "/analysis/drainage/flood/hazards"


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def city(engine: Engine, clean_tables: None, tmp_path: Path) -> Iterator[FloodCity]:
    with engine.begin() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM shelter_plan")).scalar_one()
    yield build_flood_city(engine, tmp_path, (500_000.0, 3_400_000.0))
    with engine.begin() as conn:  # the plans of this test (datasets go with clean_tables)
        conn.execute(text("DELETE FROM shelter_plan WHERE id > :id"), {"id": before})


def _stored(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            int(conn.execute(text("SELECT count(*) FROM dataset WHERE kind = 'hazards'")).one()[0]),
            int(conn.execute(text("SELECT count(*) FROM hazard_zone")).one()[0]),
        )


def _plan(client: TestClient, key: str, exclude: list[str]) -> tuple[dict[str, Any], list[int]]:
    body = {"exclude_hazards": exclude, "split_units": False}
    created = client.post("/analysis/shelters/plans", json=body, headers={"X-API-Key": key})
    assert created.status_code == 201, created.text
    plan = created.json()
    zones = client.get(f"/analysis/shelters/plans/{plan['id']}/zones").json()
    return plan, sorted(int(f["id"]) for f in zones["features"])


def test_flood_saved_as_hazards_excludes_the_shelter_in_it(
    client: TestClient, engine: Engine, city: FloodCity, keys: dict[str, str]
) -> None:
    analyst = {"X-API-Key": keys["analyst"]}
    flood = client.post("/analysis/drainage/flood", json={"dataset_id": city.drainage})
    assert flood.status_code == 200, flood.text
    expected = [
        f for f in flood.json()["geojson"]["features"] if f["properties"]["role"] == "flood_extent"
    ]
    assert len(expected) == 1  # node 10, in the bowl

    body = {"dataset_id": city.drainage, "name": "Example 1 flood"}
    saved = client.post(ROUTE, json=body, headers=analyst)
    assert saved.status_code == 201, saved.text
    answer = saved.json()
    assert answer["created"] is True and answer["simulation_id"].startswith("flood-")
    dataset = answer["dataset"]
    assert dataset["kind"] == "hazards" and dataset["name"] == "Example 1 flood"
    assert dataset["counts"]["by_kind"] == {"flood": 1}
    assert dataset["options"]["simulation_id"] == answer["simulation_id"]
    [zone] = answer["zones"]
    [node] = answer["flood"]["flooded_nodes"]
    assert zone["code"] == node["code"] == "10" and zone["node_id"] == node["id"]
    assert answer["flood"]["totals"] == flood.json()["totals"]

    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT h.kind, h.severity, ST_Area(h.geom), h.attrs, GeometryType(h.geom),"
                " ST_Equals(h.geom, ST_SetSRID(ST_GeomFromGeoJSON(:extent), 4547))"
                " FROM hazard_zone h WHERE h.dataset_id = :d"
            ),
            {"d": dataset["id"], "extent": json.dumps(expected[0]["geometry"])},
        ).one()
    kind, severity, area, attrs, geometry_type, equal = row
    assert (kind, severity, geometry_type, equal) == ("flood", None, "MULTIPOLYGON", True)
    assert area == pytest.approx(expected[0]["properties"]["area_m2"], abs=0.01)
    assert area == pytest.approx(node["extent"]["area_m2"], abs=0.01) == zone["area_m2"]
    assert (
        attrs["simulation_id"] == answer["simulation_id"] and attrs["source"] == "flood_simulation"
    )
    assert attrs["return_period_years"] is None and attrs["duration_min"] is None  # own rain
    assert attrs["rain"] == "model" and attrs["drainage_dataset_id"] == city.drainage
    assert attrs["volume_m3"] == node["volume_m3"] == pytest.approx(511.3, rel=0.01)
    assert attrs["max_depth_m"] == node["extent"]["max_depth_m"]

    # the same run again: nothing new, the first dataset
    again = client.post(ROUTE, json={**body, "name": "again"}, headers=analyst)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False and again.json()["dataset"]["id"] == dataset["id"]
    assert again.json()["zones"] == answer["zones"]
    assert _stored(engine) == (1, 1)

    # a plan excluding flood zones: the shelter in the bowl is out, the hill takes everyone
    plan, zones = _plan(client, keys["analyst"], ["flood"])
    unusable = plan["stats"]["unusable_shelters"]
    assert unusable == {
        str(city.inside): {"name": "In the bowl", "reason": "in_hazard_zone", "hazards": ["flood"]}
    }
    assert zones == [city.outside]
    assert plan["stats"]["covered"] == pytest.approx(200.0)
    # excluding another kind only: both shelters serve (the west unit goes to the bowl)
    plan, zones = _plan(client, keys["analyst"], ["landslide"])
    assert plan["stats"]["unusable_shelters"] == {}
    assert zones == sorted([city.inside, city.outside])


def test_design_storm_attrs(
    client: TestClient, engine: Engine, city: FloodCity, keys: dict[str, str]
) -> None:
    storm = {"return_period_a": 10, "duration_min": 120}
    body = {"dataset_id": city.drainage, "storm": storm, "geojson": False}
    flood = client.post("/analysis/drainage/flood", json=body).json()
    with_extent = {n["id"]: n for n in flood["flooded_nodes"] if n["extent"]}
    saved = client.post(ROUTE, json={**body, "name": "P=10"}, headers={"X-API-Key": keys["admin"]})
    assert saved.status_code == 201, saved.text
    zones = saved.json()["zones"]
    assert {z["node_id"] for z in zones} == set(with_extent)
    for zone in zones:
        assert zone["area_m2"] == with_extent[zone["node_id"]]["extent"]["area_m2"]
    with engine.connect() as conn:
        attrs = conn.execute(text("SELECT attrs FROM hazard_zone")).scalars().all()
    assert len(attrs) == len(zones)
    for one in attrs:
        assert (one["return_period_years"], one["duration_min"], one["rain"]) == (
            10,
            120,
            "design_storm",
        )
        assert one["formula"] == flood["storm"]["formula"] and one["tail_h"] == 2.0


def test_refused_without_an_analyst_key_and_without_extents(
    client: TestClient, engine: Engine, city: FloodCity, keys: dict[str, str]
) -> None:
    body = {"dataset_id": city.drainage, "name": "not stored"}
    assert client.post(ROUTE, json=body).status_code == 401
    reader = client.post(ROUTE, json=body, headers={"X-API-Key": keys["reader"]})
    assert reader.status_code == 403
    assert _stored(engine) == (0, 0)
    with engine.begin() as conn:  # no DEM: the flooded node has no extent
        conn.execute(text("DELETE FROM dataset WHERE kind = 'terrain'"))
    empty = client.post(ROUTE, json=body, headers={"X-API-Key": keys["analyst"]})
    assert empty.status_code == 400 and "no DEM covers the flooded nodes" in empty.text
    blank = client.post(ROUTE, json={**body, "name": ""}, headers={"X-API-Key": keys["analyst"]})
    assert blank.status_code == 400 and "name" in blank.text
    assert _stored(engine) == (0, 0)
    assert ("POST", ROUTE) in HEAVY_ROUTES
