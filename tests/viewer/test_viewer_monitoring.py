"""The monitoring panel and the gas adjacent-space tool (issue 20) in a real Chromium against
``cim serve``: devices made through the SensorThings API beside the hand-made gas street of
``tests/cim/gas_fixtures``, alarms raised by threshold rules.

Oracles: the observations this test posts (how many fall in the last 24 h, which UTC hours they
fill over 30 days), the alarm's state read back from the API, and the API's own adjacent-space
answer to the request the page made (tested against hand-derived values in
tests/cim/test_gas_adjacent.py)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from cim.crs import transformer
from cim.db.engine import make_engine
from cim.services.access import create_key
from tests.cim.gas_fixtures import X0, Y0, write_gas_street
from tests.conftest import CIM, TEST_SRID, cli_env, make_world_readable_tempdir, migrated_database
from tests.viewer import harness

VIEWER = Path(__file__).resolve().parents[2] / "api" / "static" / "viewer"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCRIPTS = ("monitoring-chart.js", "monitoring-tool.js", "gas-adjacent-tool.js")
STREET = ["W1", "W2", "W3", "W4", "W5", "W7", "W9", "W10", "T1", "B1", "B3"]
"""Every space of the street within the default 5 m radius (tests/cim/gas_fixtures.EXPECTED)."""
HISTORY = [timedelta(minutes=30 * k) for k in range(2, 41)] + [
    timedelta(days=d, hours=3) for d in (5, 10, 20)
]
"""Ages of the methane device's older values: every 30 min from 1 h to 20 h, and three days."""
NEWEST = timedelta(minutes=5)  # the methane value over the alarm threshold


@dataclass
class Device:
    thing: int
    datastream: int


@dataclass
class MonitoringCity:
    base: str
    keys: dict[str, str]
    devices: dict[str, Device]
    methane_times: list[datetime]
    methane_alarm: int


def call(base: str, method: str, path: str, key: str | None, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def lon_lat(x: float, y: float) -> list[float]:
    lon, lat = transformer(TEST_SRID, 4326).transform(X0 + x, Y0 + y)
    return [lon, lat]


def make_device(base: str, key: str, name: str, utility: str, at: list[float], unit: str) -> Device:
    thing = {
        "name": name,
        "description": "viewer test device",
        "properties": {"cim:utility": utility},
        "Locations": [{
            "name": f"{name} site", "description": "beside the gas street",
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": at},
        }],
        "Datastreams": [{
            "name": f"{name} stream", "description": "test",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": unit, "symbol": unit, "definition": f"ucum:{unit}"},
            "ObservedProperty": {"name": f"{name} value", "definition": "https://example.org/v",
                                 "description": "test"},
            "Sensor": {"name": f"{name} sensor", "description": "test",
                       "encodingType": "text/html", "metadata": "https://example.org"},
        }],
    }  # fmt: skip
    created = call(base, "POST", "/sta/v1.1/Things", key, thing)
    streams = call(base, "GET", f"/sta/v1.1/Things({created['@iot.id']})/Datastreams", key)
    return Device(created["@iot.id"], streams["value"][0]["@iot.id"])


def observe(base: str, key: str, device: Device, rows: list[tuple[datetime, float]]) -> None:
    body = [{
        "Datastream": {"@iot.id": device.datastream},
        "components": ["phenomenonTime", "result"],
        "dataArray": [[moment.isoformat(), value] for moment, value in rows],
    }]  # fmt: skip
    answer = call(base, "POST", "/sta/v1.1/CreateObservations", key, body)
    assert "error" not in answer, answer


def threshold(base: str, key: str, device: Device, **levels: float) -> None:
    rule = {"name": "viewer test", "kind": "threshold", "datastream_id": device.datastream}
    call(base, "POST", "/alarms/rules", key, rule | levels)


@pytest.fixture(scope="module")
def city(server_url: str) -> Iterator[MonitoringCity]:
    url = migrated_database(server_url, "cim_viewer_monitoring", srid=TEST_SRID)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        write_gas_street(session)
        roles = ("analyst", "admin")
        keys = {
            role: create_key(session, name=f"monitoring {role}", role=role)[1] for role in roles
        }
    engine.dispose()
    data_dir = make_world_readable_tempdir("cim-viewer-monitoring-")
    try:
        with harness.served(CIM, cli_env(url, CIM_DATA_DIR=str(data_dir))) as base:
            analyst = keys["analyst"]
            devices = {
                name: make_device(base, analyst, label, utility, lon_lat(x, y), unit)
                for name, label, utility, x, y, unit in (
                    ("methane", "methane probe", "RQ", 20, 4, "%LEL"),
                    ("level", "sump level", "PS", 100, 30, "cm"),
                    ("quiet", "quiet gauge", "JS", 180, -25, "kPa"),
                )
            }
            threshold(base, keys["admin"], devices["methane"], notice=10, warning=20, alarm=25)
            threshold(base, keys["admin"], devices["level"], warning=50)
            now = datetime.now(UTC).replace(microsecond=0)
            times = [now - age for age in HISTORY]
            history = [(t, 3.0 + i % 4) for i, t in enumerate(times)]  # under every threshold
            observe(base, analyst, devices["methane"], history)
            observe(base, analyst, devices["methane"], [(now - NEWEST, 30.0)])  # raises "alarm"
            observe(base, analyst, devices["level"], [(now - timedelta(minutes=1), 12.5)])
            observe(base, analyst, devices["quiet"], [(now - timedelta(hours=3), 300.0)])
            [alarm] = call(base, "GET", "/alarms?state=open", analyst)
            yield MonitoringCity(base, keys, devices, [*times, now - NEWEST], alarm["id"])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser: Any, city: MonitoringCity) -> Iterator[Any]:
    opened, watch = harness.open_viewer(browser, city.base)  # en-US
    opened.wait_for_function("() => cim.monitoringToolReady && cim.gasToolReady", timeout=30_000)
    opened.fill("#api-key", city.keys["analyst"])  # acknowledging needs an analyst
    opened.dispatch_event("#api-key", "change")
    yield opened
    assert watch.page_errors == [] and watch.external_requests == []
    assert watch.console_errors == []
    opened.close()


def look_at_street(page: Any, height: float, x: float = 100.0) -> None:
    """Straight down over the street at ``x`` m along it (clear of the left panel)."""
    lon, lat = lon_lat(x, 0)
    harness.look_down_at(page, lon, lat, height)


def open_monitoring(page: Any) -> None:
    page.click("#tool-monitoring")
    page.wait_for_function("() => cim.monitoringReady && cim.monitoring.streaming", timeout=30_000)


DEVICE_JS = """(id) => {
    const found = cim.monitoring.state.devices.get(id);
    const colour = found.entity.point.color.getValue(Cesium.JulianDate.now()).toCssHexString();
    return { state: found.state, colour, label: found.entity.label.text.getValue() };
}"""
WINDOW_JS = """(id) => {
    const entity = cim.monitoring.state.devices.get(id).entity;
    cim.viewer.render();
    const at = Cesium.SceneTransforms.worldToWindowCoordinates(
        cim.viewer.scene, entity.position.getValue(Cesium.JulianDate.now()));
    const box = cim.viewer.scene.canvas.getBoundingClientRect();
    return [box.left + at.x, box.top + at.y];
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_devices_alarms_acknowledge_and_chart(page: Any, city: MonitoringCity) -> None:
    look_at_street(page, 450, x=60)
    open_monitoring(page)
    colours = page.evaluate("() => cim.monitoring.colours")
    shown = {name: page.evaluate(DEVICE_JS, d.thing) for name, d in city.devices.items()}
    assert {name: s["state"] for name, s in shown.items()} == {
        "methane": "alarm", "level": "normal", "quiet": "silent"}  # fmt: skip
    assert all(s["colour"] == colours[s["state"]] for s in shown.values()), shown
    assert shown["methane"]["label"] == "methane probe\n30 %LEL"
    assert shown["quiet"]["label"] == "quiet gauge\n300 kPa"

    # the open alarm in the list; acknowledged from it, as the API then says
    item = f"#monitoring-alarms li[data-alarm-id='{city.methane_alarm}']"
    assert page.get_attribute(item, "data-level") == "alarm"
    assert page.get_attribute(item, "data-state") == "raised"
    page.click(f"{item} button.acknowledge")
    page.wait_for_function(
        "(item) => document.querySelector(item).dataset.state === 'acknowledged'", arg=item
    )
    stored = call(city.base, "GET", f"/alarms/{city.methane_alarm}", city.keys["analyst"])
    assert stored["state"] == "acknowledged" and "monitoring analyst" in stored["acknowledged_by"]

    # a new alarm arrives on the stream: listed and coloured without a reload, well before the
    # panel's 30 s re-read
    level = city.devices["level"]
    observe(city.base, city.keys["analyst"], level, [(datetime.now(UTC), 61.0)])
    page.wait_for_function(
        "(id) => cim.monitoring.state.devices.get(id).state === 'warning'",
        arg=level.thing,
        timeout=5000,
    )
    [raised] = call(
        city.base, "GET", f"/alarms?datastream_id={level.datastream}", city.keys["analyst"]
    )
    events = page.evaluate("() => cim.monitoring.state.events")
    assert {"id": raised["id"], "event": "raised", "state": "raised"} in events
    assert page.evaluate(DEVICE_JS, level.thing)["label"] == "sump level\n61 cm"
    levels = page.eval_on_selector_all(
        "#monitoring-alarms li", "(all) => all.map((l) => l.dataset.level)"
    )
    assert levels == ["warning", "alarm"]  # newest first

    # a click on the methane device: its last 24 h, then its 30 days of hourly roll-ups
    methane = city.devices["methane"]
    page.mouse.click(*page.evaluate(WINDOW_JS, methane.thing))
    page.wait_for_function("() => cim.lastChart && cim.lastChart.range === 'day'", timeout=30_000)
    now = datetime.now(UTC)
    day = [t for t in city.methane_times if t >= now - timedelta(hours=24)]
    assert page.evaluate("() => cim.lastChart") == {
        "thingId": methane.thing, "datastreamId": methane.datastream, "range": "day",
        "resolution": "raw", "points": len(day), "truncated": False}  # fmt: skip
    assert vertices(page) == len(day) == 40
    page.click("#monitoring-range-month")
    page.wait_for_function("() => cim.lastChart && cim.lastChart.range === 'month'")
    hours = {t.replace(minute=0, second=0) for t in city.methane_times}
    chart = page.evaluate("() => cim.lastChart")
    assert (chart["resolution"], chart["points"]) == ("hour", len(hours))
    assert vertices(page) == len(hours)
    screenshot(page, "viewer-monitoring.png")


def screenshot(page: Any, name: str) -> None:
    """test-artifacts/NAME once the scene has settled (look at it: colours, labels, panels)."""
    ARTIFACTS.mkdir(exist_ok=True)
    harness.wait_settled(page)
    # drawn lines and cylinders are built by workers: renderUntilBuilt (app.js) has finished
    page.wait_for_function(
        "() => cim.viewer.dataSourceDisplay.ready && cim.viewer.scene.requestRenderMode"
    )
    page.evaluate("() => cim.viewer.render()")
    page.screenshot(path=str(ARTIFACTS / name))


def vertices(page: Any) -> int:
    path: str = page.get_attribute("#monitoring-chart path", "d")
    return len(re.findall(r"[ML]", path))


@pytest.mark.browser
@pytest.mark.slow
def test_gas_pipe_picked_and_in_view(page: Any, city: MonitoringCity) -> None:
    look_at_street(page, 600)
    page.click("#tool-gas-adjacent")
    # a click on the ground beside gas pipe V1b (x 40..100): that pipe alone
    page.mouse.click(*page.evaluate(
        """([lon, lat]) => {
            cim.viewer.render();
            const at = Cesium.SceneTransforms.worldToWindowCoordinates(
                cim.viewer.scene, Cesium.Cartesian3.fromDegrees(lon, lat, 0));
            const box = cim.viewer.scene.canvas.getBoundingClientRect();
            return [box.left + at.x, box.top + at.y];
        }""",
        lon_lat(85, 0),
    ))  # fmt: skip
    picked = harness.wait_for_tool(page, "lastGasAdjacent")
    assert picked["answer"]["gas_pipe_count"] == 1
    assert {s["gas_pipe"]["code"] for s in picked["answer"]["spaces"]} == {"V1b"}
    page.evaluate("() => { cim.lastGasAdjacent = null; }")
    page.click("#gas-in-view")
    found = harness.wait_for_tool(page, "lastGasAdjacent")
    expected = call(city.base, "POST", "/analysis/gas/adjacent-spaces", city.keys["analyst"],
                    found["request"])  # fmt: skip
    assert found["answer"] == expected
    assert sorted(s["code"] for s in expected["spaces"]) == sorted(STREET)
    roles = [f["properties"]["role"] for f in expected["geojson"]["features"]]
    drawn = found["drawn"]
    assert (drawn["pipes"], drawn["spaces"], drawn["distances"]) == (
        roles.count("gas_pipe"), roles.count("space"), roles.count("distance"))  # fmt: skip
    assert (drawn["pipes"], drawn["spaces"]) == (5, 11)
    labels = page.evaluate(
        "() => cim.viewer.dataSources.getByName('gas-adjacent')[0].entities.values"
        ".filter((e) => e.label).map((e) => e.label.text.getValue())"
    )
    assert sorted(labels) == sorted(f"{s['distance_m']:g} m" for s in expected["spaces"])
    rows = page.eval_on_selector_all("#gas-spaces tbody tr", "(rows) => rows.length")
    assert rows == len(expected["spaces"])
    page.evaluate(  # from the south-west, 25 degrees down: wells at their depth, the lines
        """([lon, lat]) => {
            const camera = cim.viewer.camera;
            camera.lookAt(Cesium.Cartesian3.fromDegrees(lon, lat, 8),
                new Cesium.HeadingPitchRange(0.35, -0.5, 150));
            camera.lookAtTransform(Cesium.Matrix4.IDENTITY);
            document.getElementById('properties').hidden = true;
        }""",
        lon_lat(120, 5),
    )
    screenshot(page, "viewer-gas-adjacent.png")


def used_keys() -> tuple[set[str], set[str]]:
    """String-table keys the monitoring and gas scripts name, and the prefixes they build on."""
    literal: set[str] = set()
    prefixes: set[str] = set()
    for name in SCRIPTS:
        source = (VIEWER / name).read_text("utf-8")
        quoted = r"[\"'`]((?:tool|monitoring|gas|error)\.[A-Za-z0-9_.-]+)[\"'`]"
        literal |= set(re.findall(quoted, source))
        prefixes |= set(re.findall(r"`((?:monitoring|gas)\.[A-Za-z.]*\.)\$\{", source))
    return literal, prefixes


def test_every_key_of_the_monitoring_scripts_is_in_both_tables() -> None:
    literal, prefixes = used_keys()
    assert len(literal) > 40 and prefixes
    for locale in ("en", "zh-CN"):
        table = json.loads((VIEWER / "i18n" / f"{locale}.json").read_text("utf-8"))
        assert literal - set(table) == set(), locale
        for prefix in prefixes:
            assert any(key.startswith(prefix) for key in table), (locale, prefix)
    html = (VIEWER / "index.html").read_text("utf-8")
    assert all(f'<script src="{name}"></script>' in html for name in SCRIPTS)


TEXTS_JS = """() => {
    const texts = [];
    for (const root of [document.getElementById('panel'), document.getElementById('properties')]) {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const el = walker.currentNode.parentElement;
            const text = walker.currentNode.textContent.trim();
            if (text && el.checkVisibility() && !el.closest('#datasets .name')) texts.push(text);
        }
    }
    return texts;
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_chinese_panels_show_no_english_and_no_key(browser: Any, city: MonitoringCity) -> None:
    zh = json.loads((VIEWER / "i18n" / "zh-CN.json").read_text("utf-8"))
    en = json.loads((VIEWER / "i18n" / "en.json").read_text("utf-8"))
    english = set(en.values()) - set(zh.values())
    page, watch = harness.open_viewer(browser, city.base, locale="zh-CN")
    try:
        page.wait_for_function("() => cim.monitoringToolReady && cim.gasToolReady", timeout=30_000)
        page.fill("#api-key", city.keys["analyst"])
        page.dispatch_event("#api-key", "change")
        look_at_street(page, 450)
        open_monitoring(page)
        page.evaluate("(id) => cim.monitoring.describe(id)", city.devices["methane"].thing)
        page.wait_for_function("() => cim.lastChart")
        texts = page.evaluate(TEXTS_JS)
        assert zh["monitoring.range.month"] in texts and zh["monitoring.state.silent"] in texts
        assert [t for t in texts if t in english or t in en] == []
        page.click("#tool-gas-adjacent")
        page.click("#gas-in-view")
        harness.wait_for_tool(page, "lastGasAdjacent")
        texts = page.evaluate(TEXTS_JS)
        assert zh["gas.spaceType.power_well"] in texts and zh["gas.legend.pipe"] in texts
        assert [t for t in texts if t in english or t in en] == []
        screenshot(page, "viewer-gas-adjacent-zh-CN.png")
        assert watch.page_errors == []
    finally:
        page.close()
