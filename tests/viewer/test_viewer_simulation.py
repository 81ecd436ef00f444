"""The shutdown-impact and flood tools (issue 19) in a real Chromium: EPANET's Net3 with a
generated valve layer and SWMM's Example 1, imported, tiled with the CLI and served.

The oracle is the API's own answer to the same request (tested against WNTR and swmm5 in
tests/api and tests/cim): the page must draw what it answered, in the legend's colours, and put
its numbers and download buttons in the panel."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cim.db.engine import make_engine
from tests.cim.test_pipes_isolation import import_with_valves
from tests.conftest import (
    CIM,
    SHARED_SAMPLES,
    cli_env,
    make_world_readable_tempdir,
    migrated_database,
)
from tests.importers.pipes_helpers import run
from tests.viewer import harness
from tests.viewer.conftest import run_cim

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SRID = 4547


@dataclass
class SimulationCity:
    base: str
    water: int
    drainage: int
    burst: int  # the segment id of Net3's pipe 117


@pytest.fixture(scope="module")
def simulation_city(server_url: str) -> Iterator[SimulationCity]:
    url = migrated_database(server_url, "cim_viewer_simulation", srid=SRID)
    engine = make_engine(url)
    data_dir = make_world_readable_tempdir("cim-viewer-simulation-")
    env = cli_env(url, CIM_DATA_DIR=str(data_dir))
    try:
        _, _, water = import_with_valves(url, engine, data_dir, "Net3.inp", 1, via_cli=False)
        example1 = SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"
        drainage = run(engine, example1, origin=(520_000.0, 3_400_000.0, 0.0)).dataset.id
        with engine.connect() as conn:
            burst = conn.execute(
                text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = '117'"),
                {"d": water},
            ).scalar_one()
        run_cim(env, "tiles", "build", "--layer", "pipes")
        with harness.served(CIM, env) as base:
            yield SimulationCity(base=base, water=water, drainage=drainage, burst=int(burst))
    finally:
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser: Any, simulation_city: SimulationCity) -> Iterator[Any]:
    opened, watch = harness.open_viewer(browser, simulation_city.base)
    harness.wait_settled(opened, globe=False)
    opened.wait_for_function("() => cim.simulationToolsReady", timeout=30_000)
    yield opened
    assert watch.page_errors == [] and watch.external_requests == []
    opened.close()


def post(base: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def frame(page: Any, features: list[dict[str, Any]]) -> None:
    """Camera over the answer's points (the tools draw; they do not fly)."""
    points = [f["geometry"]["coordinates"] for f in features if f["geometry"]["type"] == "Point"]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    span_m = max(max(lons) - min(lons), max(lats) - min(lats)) * 111_000
    centre = ((min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2)
    harness.look_down_at(page, *centre, span_m * 1.6 + 150)


def test_shutdown_impact_draws_the_answer(page: Any, simulation_city: SimulationCity) -> None:
    body = {"segment_id": simulation_city.burst, "duration_h": 12, "service_pressure_m": 14}
    expected = post(
        simulation_city.base, "/analysis/pipes/shutdown", {**body, "geojson_crs": "EPSG:4326"}
    )
    page.click("#tool-shutdown")
    page.fill("#shutdown-hours", "12")
    page.evaluate(
        "(id) => cim.onPick({layer: 'pipes', properties: {table_id: id, code: '117'}})",
        simulation_city.burst,
    )
    found = harness.wait_for_tool(page, "lastShutdown")
    answer = found["answer"]
    assert answer["demand"] == expected["demand"]
    assert [n["code"] for n in answer["nodes"]] == [n["code"] for n in expected["nodes"]]
    frame(page, expected["geojson"]["features"])
    drawn = page.evaluate(
        """() => cim.viewer.entities.values.filter((e) => e.point).map((e) => ({
            role: e.properties.role.getValue(), code: e.properties.code.getValue(),
            colour: e.point.color.getValue(Cesium.JulianDate.now()).toCssHexString(),
        }))"""
    )
    points = [f for f in expected["geojson"]["features"] if f["geometry"]["type"] == "Point"]
    assert len(drawn) == len(points)
    colours = page.evaluate("() => cim.tools.shutdownColours")
    for d in drawn:
        if d["role"] in ("isolated", "close"):
            assert d["colour"].lower() == colours[d["role"]], d
    beyond = [n for n in expected["nodes"] if n["role"] != "isolated"]
    largest = max(beyond, key=lambda n: n["max_drop_m"])
    [top] = [d for d in drawn if d["code"] == largest["code"] and d["role"] != "close"]
    assert top["colour"].lower() == "#d7191c"  # the ramp's end: the largest fall beyond the ring
    # the outage area: one draped hull around the nodes cut off or below service
    outage = len(expected["isolated_nodes"]) + len(expected["below_service_nodes"])
    polygons = page.evaluate("() => cim.viewer.entities.values.filter((e) => e.polygon).length")
    assert polygons == (1 if outage >= 3 else 0)
    panel = page.inner_text("#properties")
    assert str(len(expected["isolated_nodes"])) in panel
    assert page.locator("#shutdown-downloads button.download").count() == 2
    rows = page.locator("#shutdown-nodes tbody tr").count()
    assert rows == min(200, len(expected["nodes"]))
    assert "pressure drop" in page.inner_text("#tool-legend")
    page.evaluate("() => cim.viewer.scene.requestRender()")
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-shutdown.png"))


def test_flood_draws_flooded_nodes_by_volume(page: Any, simulation_city: SimulationCity) -> None:
    page.click("#tool-flood")
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('#flood-dataset option')].some(o => o.value == id)",
        arg=simulation_city.drainage,
    )
    page.select_option("#flood-dataset", str(simulation_city.drainage))
    page.click("#flood-run")
    found = harness.wait_for_tool(page, "lastFlood")
    [node] = found["answer"]["flooded_nodes"]
    assert node["code"] == "10" and node["volume_m3"] == pytest.approx(511.3, rel=0.01)
    assert found["drawn"]["sizes"] == [{"code": "10", "size": 30}]  # the largest: full size
    frame(page, found["answer"]["geojson"]["features"])
    panel = page.inner_text("#properties")
    assert "511" in panel and "model's own rain" in panel
    assert page.locator("#flood-downloads button.download").count() == 2
    assert page.locator("#flood-nodes tbody tr").count() == 1
    page.evaluate("() => cim.viewer.scene.requestRender()")
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-flood.png"))
