"""The viewer on the real Cambridge MA shelter data: no terrain, no tiles; plans, uncovered units,
site suggestion - each figure shown checked against the API and against SQL on the tables."""

from __future__ import annotations

import colorsys
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.viewer import harness
from tests.viewer.conftest import CAMBRIDGE_SRID, ServedCity, ViewerPage, run_cim

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def api(city: ServedCity, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body``) ``path`` on the served city, outside the browser."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{city.base}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)


def shown_properties(page: Any) -> dict[str, str]:
    """The properties panel's rows, name → text (section rows left out)."""
    rows: dict[str, str] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#properties-table tr')]
            .filter(r => r.cells.length === 2)
            .map(r => [r.cells[0].textContent, r.cells[1].textContent]))"""
    )
    return rows


def entity_rows(page: Any, layer: str) -> list[dict[str, Any]]:
    """Each polygon entity of a GeoJSON layer: its properties and its fill colour (RGBA 0-1)."""
    rows: list[dict[str, Any]] = page.evaluate(
        """(layer) => cim.geojson[layer].entities.values.filter(e => e.polygon).map(e => {
            const now = Cesium.JulianDate.now();
            const c = e.polygon.material.color.getValue(now);
            const rgba = [c.red, c.green, c.blue, c.alpha];
            return {properties: e.properties.getValue(now), rgba};
        })""",
        layer,
    )
    return rows


def uncovered_in_sql(city: ServedCity, plan_id: int) -> tuple[set[int], float, dict[str, float]]:
    """Units with uncovered persons, their sum, and persons by reason: the stored assignment."""
    with city.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT unit_id, persons, reason FROM shelter_assignment"
                " WHERE plan_id = :p AND shelter_id IS NULL"
            ),
            {"p": plan_id},
        ).all()
    by_reason: dict[str, float] = {}
    for _, persons, reason in rows:
        by_reason[reason] = by_reason.get(reason, 0.0) + float(persons)
    return {int(r[0]) for r in rows}, sum(float(r[1]) for r in rows), by_reason


def load_ratio_rgb(ratio: float) -> tuple[float, float, float]:
    """The colour the README promises: hue from green (empty) to red (full), HSL(h, 85 %, 50 %)."""
    t = max(0.0, min(1.0, ratio))
    return colorsys.hls_to_rgb((1 - t) * 0.33, 0.5, 0.85)


def assert_zones_coloured_by_load_ratio(page: Any, city: ServedCity, plan_id: int) -> list[float]:
    """The fullest and the emptiest used zone are drawn in the README's colours for their
    stored load ratio; returns those two ratios."""
    with city.engine.connect() as connection:
        used = connection.execute(
            text(
                "SELECT shelter_id, load_ratio FROM shelter_zone"
                " WHERE plan_id = :p AND load_ratio > 0 ORDER BY load_ratio, shelter_id"
            ),
            {"p": plan_id},
        ).all()
    zones = entity_rows(page, "shelter_zones")
    assert {row["properties"]["plan_id"] for row in zones} == {plan_id}
    for shelter_id, ratio in (used[0], used[-1]):
        drawn = [row["rgba"] for row in zones if row["properties"]["shelter_id"] == shelter_id]
        assert drawn, f"zone of shelter {shelter_id} not drawn"
        for rgba in drawn:
            assert rgba == pytest.approx([*load_ratio_rgb(ratio), 0.45], abs=1e-6)
    return [float(used[0][1]), float(used[-1][1])]


def test_page_without_terrain_or_tiles_loads_clean_and_frames_the_data(
    cambridge_viewer: ViewerPage, cambridge_city: ServedCity
) -> None:
    page = cambridge_viewer.page
    assert cambridge_viewer.config["terrain"] is None
    assert cambridge_viewer.config["tilesets"] == []
    assert cambridge_viewer.watch.console_errors == []
    assert cambridge_viewer.watch.page_errors == []
    assert cambridge_viewer.watch.external_requests == []
    assert page.evaluate("() => cim.errors") == []
    # no pipes here: only the shelter tools are offered
    tools = page.evaluate(
        "() => [...document.querySelectorAll('button[id^=tool-]')].map(b => b.id)"
    )
    assert sorted(tools) == ["tool-shelter-plan", "tool-shelter-suggest"]
    with cambridge_city.engine.connect() as connection:
        lon, lat = connection.execute(
            text(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Transform(ST_SetSRID(ST_Centroid("
                "ST_Extent(geom)::geometry), :srid), 4326) AS c FROM population_unit) AS e"
            ),
            {"srid": CAMBRIDGE_SRID},
        ).one()
    # the camera flew to the data: the blocks' centre is on screen, in front of the camera
    centre = page.evaluate(
        """([lon, lat]) => {
            const p = Cesium.SceneTransforms.worldToWindowCoordinates(
                cim.viewer.scene, Cesium.Cartesian3.fromDegrees(lon, lat));
            const height = cim.viewer.camera.positionCartographic.height;
            return p && {x: p.x, y: p.y, height};
        }""",
        [lon, lat],
    )
    assert centre is not None
    assert 0 < centre["x"] < 1024 and 0 < centre["y"] < 640
    assert 500 < centre["height"] < 50_000  # a city view, not the whole globe


def test_page_opens_on_the_cli_plan_with_its_uncovered_units(
    cambridge_viewer: ViewerPage, cambridge_city: ServedCity
) -> None:
    with cambridge_city.engine.connect() as connection:
        plan_id = connection.execute(text("SELECT min(id) FROM shelter_plan")).scalar_one()
    units, _, _ = uncovered_in_sql(cambridge_city, plan_id)
    assert units, "the 300 m plan leaves people uncovered"
    shown = entity_rows(cambridge_viewer.page, "uncovered_units")
    assert {row["properties"]["plan_id"] for row in shown} == {plan_id}
    assert {row["properties"]["unit_id"] for row in shown} == units
    # with 300 m some shelters stay part-empty: the ramp's two ends really differ
    emptiest, fullest = assert_zones_coloured_by_load_ratio(
        cambridge_viewer.page, cambridge_city, plan_id
    )
    assert fullest - emptiest > 0.3


def test_plan_tool_shows_zones_by_load_ratio_and_the_uncovered_units(
    cambridge_viewer: ViewerPage, cambridge_city: ServedCity
) -> None:
    page = cambridge_viewer.page
    key = json.loads(
        run_cim(cambridge_city.env, "keys", "create", "viewer", "--role", "analyst", "--json")
    )["secret"]
    page.evaluate("(key) => sessionStorage.setItem('cim-api-key', key)", key)
    page.evaluate("() => { cim.lastPlan = null; }")
    page.click("#tool-shelter-plan")
    plan_id = harness.wait_for_tool(page, "lastPlan")["id"]
    with cambridge_city.engine.connect() as connection:
        assert connection.execute(text("SELECT max(id) FROM shelter_plan")).scalar_one() == plan_id
        zone_rows = connection.execute(
            text("SELECT shelter_id, load_ratio FROM shelter_zone WHERE plan_id = :p"),
            {"p": plan_id},
        ).all()
    units, persons, by_reason = uncovered_in_sql(cambridge_city, plan_id)
    zones_api = api(cambridge_city, f"/analysis/shelters/plans/{plan_id}/zones")
    uncovered_api = api(cambridge_city, f"/analysis/shelters/plans/{plan_id}/uncovered")

    # the summary: zone count, uncovered units and persons = API = SQL
    panel = shown_properties(page)
    assert page.evaluate("document.getElementById('properties-title').textContent") == (
        f"Shelter plan {plan_id}"
    )
    assert int(panel["zones"]) == len(zones_api["features"]) == len(zone_rows)
    api_units = {f["properties"]["unit_id"] for f in uncovered_api["features"]}
    assert int(panel["uncovered units"]) == len(api_units) == len(units)
    api_persons = sum(f["properties"]["uncovered"] for f in uncovered_api["features"])
    assert float(panel["uncovered persons"]) == pytest.approx(api_persons, abs=1e-3)
    assert api_persons == pytest.approx(persons, abs=1e-6)
    for reason, total in by_reason.items():
        label = {
            "out_of_reach": "out of reach",
            "in_hazard_zone": "only hazard-zone shelters in reach",
            "over_capacity": "shelters in reach full",
        }[reason]
        assert float(panel[label]) == pytest.approx(total, abs=1e-3)

    # the map: every uncovered unit drawn in the legend's colour, above the zones
    uncovered = entity_rows(page, "uncovered_units")
    assert {row["properties"]["unit_id"] for row in uncovered} == units
    legend_rgb = page.evaluate(
        "() => { const c = Cesium.Color.fromCssColorString(cim.uncoveredColour);"
        " return [c.red, c.green, c.blue]; }"
    )
    assert all(row["rgba"][:3] == pytest.approx(legend_rgb) for row in uncovered)
    legend = page.evaluate("() => document.getElementById('tool-legend').textContent")
    assert "uncovered units" in legend and "load ratio" in legend

    assert_zones_coloured_by_load_ratio(page, cambridge_city, plan_id)
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => cim.viewer.render()")
    page.screenshot(path=str(ARTIFACTS / "viewer-cambridge.png"))  # look at it


def test_clicking_an_uncovered_unit_shows_its_reason_and_persons(
    cambridge_viewer: ViewerPage, cambridge_city: ServedCity
) -> None:
    page = cambridge_viewer.page
    with cambridge_city.engine.connect() as connection:
        # the layer shows the newest plan: the CLI's, or the plan tool's when it ran
        plan_id = connection.execute(text("SELECT max(id) FROM shelter_plan")).scalar_one()
        # wholly uncovered units outside the flood zones: no zone or hazard polygon under them
        rows = connection.execute(
            text(
                """SELECT a.unit_id, a.persons, a.reason,
                          ST_X(ST_Transform(ST_PointOnSurface(u.geom), 4326)),
                          ST_Y(ST_Transform(ST_PointOnSurface(u.geom), 4326))
                   FROM shelter_assignment a JOIN population_unit u ON u.id = a.unit_id
                   WHERE a.plan_id = :p AND a.shelter_id IS NULL
                     AND NOT EXISTS (SELECT 1 FROM shelter_assignment b WHERE b.plan_id = :p
                                     AND b.unit_id = a.unit_id AND b.shelter_id IS NOT NULL)
                     AND NOT EXISTS (SELECT 1 FROM hazard_zone h
                                     WHERE ST_DWithin(h.geom, u.geom, 20))
                   ORDER BY ST_Area(u.geom) DESC LIMIT 1"""
            ),
            {"p": plan_id},
        ).all()
    if not rows:
        pytest.skip("every uncovered unit touches a zone or a flood plain")
    unit_id, persons, reason, lon, lat = rows[0]
    page.evaluate(
        """([lon, lat]) => {
            document.getElementById('properties').hidden = true;
            cim.viewer.camera.setView({
                destination: Cesium.Cartesian3.fromDegrees(lon, lat, 1500),
                orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 },
            });
            cim.viewer.scene.requestRender();
        }""",
        [lon, lat],
    )
    page.wait_for_function(
        "() => cim.viewer.scene.globe.tilesLoaded && cim.viewer.dataSourceDisplay.ready"
        " && (cim.viewer.scene.requestRender(), true)",
        timeout=60_000,
    )
    page.evaluate("() => { cim.selected = null; }")
    page.mouse.click(512, 320)
    page.wait_for_function("() => cim.selected !== null", timeout=10_000)
    selected = page.evaluate("() => cim.selected.properties")
    assert selected["unit_id"] == unit_id
    assert selected["reason"] == reason
    assert selected["uncovered"] == pytest.approx(float(persons))
    panel = shown_properties(page)
    assert panel["reason"] == reason
    assert page.evaluate("document.getElementById('properties-title').textContent").startswith(
        "uncovered"
    )


def test_suggestion_tool_marks_sites_whose_gain_sql_confirms(
    cambridge_viewer: ViewerPage, cambridge_city: ServedCity
) -> None:
    page = cambridge_viewer.page
    tool_plan = page.evaluate("() => cim.lastPlan ? cim.lastPlan.id : null")
    with cambridge_city.engine.connect() as connection:
        plan_id = connection.execute(text("SELECT max(id) FROM shelter_plan")).scalar_one()
    page.evaluate("() => { cim.lastSuggestion = null; }")
    page.click("#tool-shelter-suggest")
    page.fill("#suggest-k", "2")
    page.select_option("#suggest-level", "short")
    page.click("#suggest-run")
    shown = harness.wait_for_tool(page, "lastSuggestion")
    # the plan the tool ran, else (no plan_id) the API's latest
    expected = {"k": 2, "level": "short", **({"plan_id": tool_plan} if tool_plan else {})}
    assert shown["request"] == expected
    assert shown["answer"]["plan_id"] == plan_id
    answer = shown["answer"]
    again = api(cambridge_city, "/analysis/shelters/suggest", shown["request"])
    assert answer["gain"] == pytest.approx(again["gain"])
    assert len(answer["sites"]) == 2
    markers = page.evaluate(
        "() => cim.viewer.entities.values.filter(e => e.name && e.name.startsWith('suggested'))"
        ".length"
    )
    assert markers == 2
    panel = shown_properties(page)
    assert float(panel["gain (persons)"]) == pytest.approx(answer["gain"], abs=1e-3)
    # Independent: the uncovered persons whose unit lies within the radius of a chosen site.
    with cambridge_city.engine.connect() as connection:
        gain = connection.execute(
            text(
                """SELECT coalesce(sum(a.persons), 0) FROM shelter_assignment a
                   JOIN population_unit u ON u.id = a.unit_id
                   WHERE a.plan_id = :p AND a.shelter_id IS NULL
                     AND EXISTS (SELECT 1 FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]))
                                 AS s(x, y) WHERE ST_DWithin(ST_PointOnSurface(u.geom),
                                 ST_SetSRID(ST_MakePoint(s.x, s.y), ST_SRID(u.geom)), :r))"""
            ),
            {
                "p": plan_id,
                "xs": [s["x"] for s in answer["sites"]],
                "ys": [s["y"] for s in answer["sites"]],
                "r": answer["radius_m"],
            },
        ).scalar_one()
    assert answer["gain"] == pytest.approx(float(gain), abs=1e-6)
    assert answer["gain"] > 0
