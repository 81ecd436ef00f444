"""Flood → shelters in a real Chromium (issue 19): run the flood tool, save the flood as hazard
zones with an analyst key, run a shelter plan excluding flood zones; the shelter in the flood
is drawn grey with a cross, listed in the panel and in the legend, and the re-planned zones
are the other shelter's only.

The city is :mod:`tests.flood_hazard_fixtures` (Example 1 in a bowl-shaped DEM, one shelter in
the ponded extent, one outside); the oracle is the API (tested in tests/api/test_flood_hazards.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from cim.db.engine import make_engine
from cim.services.access import create_key
from tests.conftest import CIM, cli_env, make_world_readable_tempdir, migrated_database
from tests.flood_hazard_fixtures import FloodCity, build_flood_city
from tests.viewer import harness

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SRID = 4547


@dataclass
class ServedFloodCity:
    base: str
    city: FloodCity
    analyst_key: str


@pytest.fixture(scope="module")
def flood_city(server_url: str) -> Iterator[ServedFloodCity]:
    url = migrated_database(server_url, "cim_viewer_flood_shelters", srid=SRID)
    engine = make_engine(url)
    data_dir = make_world_readable_tempdir("cim-viewer-flood-")
    env = cli_env(url, CIM_DATA_DIR=str(data_dir))
    try:
        city = build_flood_city(engine, data_dir, (520_000.0, 3_400_000.0))
        with Session(engine) as session, session.begin():
            _, secret = create_key(session, name="viewer analyst", role="analyst")
        with harness.served(CIM, env) as base:
            yield ServedFloodCity(base=base, city=city, analyst_key=secret)
    finally:
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser: Any, flood_city: ServedFloodCity) -> Iterator[Any]:
    opened, watch = harness.open_viewer(browser, flood_city.base)  # en-US
    harness.wait_settled(opened, globe=False)
    opened.wait_for_function("() => cim.simulationToolsReady", timeout=30_000)
    yield opened
    assert watch.page_errors == [] and watch.external_requests == []
    opened.close()


def test_flood_saved_as_hazards_makes_a_shelter_unusable(
    page: Any, flood_city: ServedFloodCity
) -> None:
    city = flood_city.city
    page.fill("#api-key", flood_city.analyst_key)
    page.dispatch_event("#api-key", "change")
    page.click("#tool-flood")
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('#flood-dataset option')].some(o => o.value == id)",
        arg=city.drainage,
    )
    page.select_option("#flood-dataset", str(city.drainage))
    page.click("#flood-run")
    flood = harness.wait_for_tool(page, "lastFlood")["answer"]
    [node] = flood["flooded_nodes"]
    assert node["code"] == "10" and node["extent"] is not None

    assert (
        page.input_value("#flood-hazard-name")
        == f"Flood of dataset {city.drainage} (the model's own rain)"
    )
    page.click("#flood-save-hazards")
    saved = harness.wait_for_tool(page, "lastFloodHazards")
    assert saved["created"] is True and saved["dataset"]["kind"] == "hazards"
    [zone] = saved["zones"]
    assert zone["area_m2"] == node["extent"]["area_m2"]
    assert "saved as hazard dataset" in page.inner_text("#tool-hint")
    hazards = page.evaluate("() => cim.geojson.hazards.entities.values.length")
    assert hazards == 1

    page.select_option("#shelter-exclude", "flood")
    page.evaluate("() => { cim.lastPlan = null; }")
    page.click("#tool-shelter-plan")
    plan = harness.wait_for_tool(page, "lastPlan")
    assert plan["parameters"]["exclude_hazards"] == ["flood"]
    assert list(plan["stats"]["unusable_shelters"]) == [str(city.inside)]
    unusable = page.inner_text("#plan-unusable")
    assert "In the bowl" in unusable and "in an excluded hazard zone" in unusable
    assert "flood" in unusable
    marks = page.evaluate(
        """() => cim.viewer.entities.values.filter((e) => e.billboard && e.properties
            && e.properties.shelter_id).map((e) => ({
            id: e.properties.shelter_id.getValue(), reason: e.properties.reason.getValue(),
            image: e.billboard.image.getValue(Cesium.JulianDate.now()).slice(0, 22),
        }))"""
    )
    assert marks == [
        {"id": city.inside, "reason": "in_hazard_zone", "image": "data:image/png;base64,"}
    ]
    assert "unusable shelters" in page.inner_text("#tool-legend")
    zones = page.evaluate(
        """() => [...new Set(cim.geojson.shelter_zones.entities.values
            .map((e) => e.properties.shelter_id.getValue()))]"""
    )
    assert zones == [city.outside]  # re-planned: the hill's zone only
    [point] = [f for f in flood["geojson"]["features"] if f["properties"]["role"] == "flooded"]
    lon, lat = point["geometry"]["coordinates"][:2]
    harness.look_down_at(page, lon, lat, 700)
    page.evaluate("() => cim.viewer.scene.requestRender()")
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-flood-shelters.png"))
