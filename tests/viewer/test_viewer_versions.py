"""The changes view and the time slider (issue 18) in a real Chromium, on the hand-made survey of
``tests/version_fixtures.py`` imported twice (version 1, then version 2) and tiled with the CLI.

The oracle is the API itself (``/datasets/{id}/diff``, ``/datasets/{id}/versions``) and the
fixture's construction: what the page draws must be the diff's features in the colours of their
state, and version 1's instant must draw L1, L2 and L3 (L3 was removed by version 2)."""

from __future__ import annotations

import json
import math
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cim.db.engine import make_engine
from tests.conftest import CIM, cli_env, make_world_readable_tempdir, migrated_database
from tests.importers.pipes_helpers import run
from tests.version_fixtures import LINES_V1, LINES_V2, POINTS_V1, POINTS_V2, survey
from tests.viewer import harness
from tests.viewer.conftest import run_cim

pytestmark = pytest.mark.browser

VIEWER = Path(__file__).resolve().parents[2] / "api" / "static" / "viewer"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SRID = 4547  # CGCS2000 / 3-degree Gauss-Kruger CM 114E: the survey's own CRS
NEW_SCRIPTS = ("changes-tool.js", "time-travel.js", "simulation-tool.js")


@dataclass
class VersionedCity:
    base: str
    dataset_id: int


@pytest.fixture(scope="module")
def versioned_city(server_url: str) -> Iterator[VersionedCity]:
    """The survey imported as version 1 then version 2, pipes tiled, served."""
    url = migrated_database(server_url, "cim_viewer_versions", srid=SRID)
    engine = make_engine(url)
    data_dir = make_world_readable_tempdir("cim-viewer-versions-")
    env = cli_env(url, CIM_DATA_DIR=str(data_dir))
    try:
        first = run(engine, *survey(data_dir / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
        run(engine, *survey(data_dir / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
        run_cim(env, "tiles", "build", "--layer", "pipes")
        with harness.served(CIM, env) as base:
            yield VersionedCity(base=base, dataset_id=first.dataset.id)
    finally:
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser: Any, versioned_city: VersionedCity) -> Iterator[Any]:
    opened, watch = harness.open_viewer(browser, versioned_city.base)
    harness.wait_settled(opened, globe=False)
    yield opened
    assert watch.page_errors == [] and watch.external_requests == []
    opened.close()


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=30) as response:
        return json.load(response)


def look_at_survey(page: Any, versioned_city: VersionedCity) -> None:
    diff = get(
        versioned_city.base, f"/datasets/{versioned_city.dataset_id}/diff?geojson_crs=EPSG:4326"
    )
    points = [f["geometry"]["coordinates"] for f in diff["geojson"]["features"]]
    xs = [c[0] for p in points for c in ([p] if isinstance(p[0], float) else p)]
    ys = [c[1] for p in points for c in ([p] if isinstance(p[0], float) else p)]
    lat = (min(ys) + max(ys)) / 2
    west_m = 15 / (111_000 * math.cos(math.radians(lat)))  # right of the layer panel
    harness.look_down_at(page, (min(xs) + max(xs)) / 2 - west_m, lat, 200)


def start_tool(page: Any, tool: str) -> None:
    page.wait_for_selector(f"#tool-{tool}", timeout=30_000)
    page.click(f"#tool-{tool}")


def test_new_scripts_use_only_keys_of_the_string_tables() -> None:
    """Like test_viewer_i18n for the scripts added by issues 18 and 19 (literal keys, keys
    built from listed names, prefixes of built keys)."""
    keys = set(json.loads((VIEWER / "i18n" / "en.json").read_text("utf-8")))
    prefixes = {"tool", "changes", "time", "shutdown", "flood", "properties", "download"}
    html = (VIEWER / "index.html").read_text("utf-8")
    for name in NEW_SCRIPTS:
        assert f'<script src="{name}"></script>' in html
        source = (VIEWER / name).read_text("utf-8")
        used = {
            literal
            for literal in re.findall(r"[\"'`]([a-z][A-Za-z]*(?:\.[A-Za-z0-9_-]+)+)[\"'`]", source)
            if literal.split(".")[0] in prefixes
        }
        mapped = r"\[([^\]]*)\]\.map\(\(c\) => `([a-z.]+)\$\{c\}`\)"
        for items, prefix in re.findall(mapped, source):
            used |= {prefix + item for item in re.findall(r"\"(\w+)\"", items)}
        assert used - keys == set(), name
        for prefix in re.findall(r"`([a-z][A-Za-z]*(?:\.[A-Za-z]+)*\.)\$\{", source):
            assert any(key.startswith(prefix) for key in keys), f"{name}: no key {prefix}*"


@pytest.mark.slow
def test_changes_view_draws_the_diff_in_state_colours(
    page: Any, versioned_city: VersionedCity
) -> None:
    expected = get(
        versioned_city.base,
        f"/datasets/{versioned_city.dataset_id}/diff?from=1&to=2&geojson_crs=EPSG:4326",
    )
    look_at_survey(page, versioned_city)
    start_tool(page, "changes")
    page.wait_for_function("() => document.querySelectorAll('#changes-to option').length === 2")
    assert page.input_value("#changes-from") == "1" and page.input_value("#changes-to") == "2"
    page.click("#changes-run")
    harness.wait_for_tool(page, "lastChanges", returned=False)
    drawn = page.evaluate(
        """() => cim.lastChanges.drawn.map((d) => ({
            code: d.code, state: d.state, layer: d.layer,
            colour: (d.entity.point ? d.entity.point.color : d.entity.polyline.material.color)
                .getValue(Cesium.JulianDate.now()).toCssHexString(),
        }))"""
    )
    colours = page.evaluate("() => cim.tools.changeColours")
    features = expected["geojson"]["features"]
    assert len(drawn) == len(features) == sum(expected["totals"].values()) == 7
    assert sorted((d["code"], d["state"]) for d in drawn) == sorted(
        (f["properties"]["code"], f["properties"]["state"]) for f in features
    )
    for d in drawn:
        assert d["colour"].lower() == colours[d["state"]].lower(), d
    by_state = {s: sum(d["state"] == s for d in drawn) for s in colours}
    assert by_state == expected["totals"] == {"added": 2, "removed": 2, "changed": 3}
    legend = page.inner_text("#tool-legend")
    assert all(f"({count})" in legend for count in by_state.values())
    panel = page.inner_text("#properties")
    assert "v1 → v2" in panel and "pipe segment" in panel

    # a click on W2 (moved 3 m) lists what changed
    page.wait_for_timeout(300)
    position = page.evaluate(
        """() => {
            const d = cim.lastChanges.drawn.find((d) => d.code === 'W2');
            const p = d.entity.position.getValue(Cesium.JulianDate.now());
            const w = Cesium.SceneTransforms.worldToWindowCoordinates(cim.viewer.scene, p);
            return [w.x, w.y];
        }"""
    )
    page.evaluate("() => { cim.lastChangeShown = null; }")
    page.mouse.click(*position)
    page.wait_for_function("() => cim.lastChangeShown !== null", timeout=10_000)
    shown = page.evaluate("() => cim.lastChangeShown")
    w2 = next(f["properties"] for f in features if f["properties"]["code"] == "W2")
    assert shown["code"] == "W2" and shown["moved_m"] == pytest.approx(3.0, abs=0.01)
    panel = page.inner_text("#properties")
    assert all(name in panel for name in w2["attributes"]) and "3" in panel

    def shown_value(value: object) -> str:
        return "–" if value is None else value if isinstance(value, str) else json.dumps(value)

    for name, change in w2["changes"].items():  # old and new values, as the diff gives them
        assert f"{name}: {shown_value(change['from'])} → {shown_value(change['to'])}" in panel
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-changes.png"))
    page.evaluate("() => window.i18n.setLocale('zh-CN')")
    assert "变更" in page.inner_text("#properties")
    page.screenshot(path=str(ARTIFACTS / "viewer-changes-zh.png"))
    page.evaluate("() => window.i18n.setLocale('en')")


@pytest.mark.slow
def test_time_slider_shows_version_one_then_now(page: Any, versioned_city: VersionedCity) -> None:
    versions = get(versioned_city.base, f"/datasets/{versioned_city.dataset_id}/versions")
    v1_time = versions["versions"][0]["created_at"]
    look_at_survey(page, versioned_city)
    start_tool(page, "time")
    page.wait_for_function("() => document.getElementById('time-slider').max === '2'")
    assert page.evaluate("() => cim.tilesets.pipes.tileset.show") is True
    page.evaluate(
        """() => { const s = document.getElementById('time-slider');
            s.value = '0';
            s.dispatchEvent(new Event('input'));
            s.dispatchEvent(new Event('change')); }"""
    )
    page.wait_for_function(
        "(at) => cim.timeTravel && cim.timeTravel.at === at", arg=v1_time, timeout=30_000
    )
    travel = page.evaluate("() => cim.timeTravel")
    assert sorted(travel["codes"]) == ["L1", "L2", "L3"]
    assert page.evaluate("() => cim.tilesets.pipes.tileset.show") is False
    assert "v1" in page.inner_text("#time-label")
    page.evaluate("() => cim.viewer.scene.requestRender()")
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-time-travel-v1.png"))

    page.click("#time-now")
    page.wait_for_function("() => cim.timeTravel.at === null")
    assert page.evaluate("() => cim.tilesets.pipes.tileset.show") is True
    assert page.evaluate("() => cim.viewer.entities.values.length") == 0
