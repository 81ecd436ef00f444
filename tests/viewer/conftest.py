"""Session fixtures of the browser tests: cities in their own databases, served, in Chromium.

The demo city is loaded the way a user loads it - ``cim demo --no-serve`` - into a database
stored in EPSG:32616, then ``cim serve`` runs on a free loopback port and one headless
Chromium page opens the viewer for all tests (loading CesiumJS once keeps the suite short).
Cambridge MA (shelters, census blocks, flood zones; no terrain, no tiles) is imported with
``cim import`` into a database in EPSG:26986 and planned once with ``cim analyse``; its page
is a second page of the same browser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine

from cim.db.engine import make_engine
from tests.cli_support import run_cim as in_process
from tests.conftest import (
    CIM,
    REPO,
    SHARED_SAMPLES,
    cli_env,
    make_world_readable_tempdir,
    migrated_database,
)
from tests.viewer import harness

DEMO_SRID = 32616
CAMBRIDGE_SRID = 26986  # NAD83 / Massachusetts Mainland, metres
CAMBRIDGE_IMPORTS = (
    ("shelters", "cambridge_EmergencyShelters.geojson", "cambridge_shelters.yaml"),
    ("population", "cambridge_Blocks2000_population.geojson", "cambridge_population.yaml"),
    ("hazards", "cambridge_FEMA_FloodPlains100Year.geojson", "cambridge_flood.yaml"),
)


def run_cim(env: dict[str, str], *args: str) -> str:
    """``cim ARGS`` against ``env``'s database; its stdout (stderr in the failure message)."""
    result = in_process(*args, env=env)
    assert result.returncode == 0, f"cim {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result.stdout


@dataclass
class DemoCity:
    """The served demo city: base URL, database engine and the demo's step report."""

    base: str
    engine: Engine
    steps: list[dict[str, Any]]
    env: dict[str, str]

    def ran(self, step: str) -> bool:
        """Whether the demo step (e.g. ``import ifc``) imported or found its data."""
        return any(
            s["step"] == step and s["status"] in ("imported", "unchanged") for s in self.steps
        )


@pytest.fixture(scope="session")
def demo_city(server_url: str) -> Iterator[DemoCity]:
    url = migrated_database(server_url, "cim_viewer", srid=DEMO_SRID)
    engine = make_engine(url)
    data_dir = make_world_readable_tempdir("cim-viewer-")
    env = cli_env(url, CIM_DATA_DIR=str(data_dir))
    result = subprocess.run(
        [CIM, "demo", "--no-serve", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"cim demo failed:\n{result.stderr[-4000:]}"
    steps = json.loads(result.stdout)["steps"]
    try:
        with harness.served(CIM, env) as base:
            yield DemoCity(base=base, engine=engine, steps=steps, env=env)
    finally:
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class ServedCity:
    """A served city without the demo's steps: base URL, engine and the CLI environment."""

    base: str
    engine: Engine
    env: dict[str, str]


@pytest.fixture(scope="session")
def cambridge_city(server_url: str) -> Iterator[ServedCity]:
    """Cambridge imported and planned with the real CLI, then served."""
    url = migrated_database(server_url, "cim_viewer_cambridge", srid=CAMBRIDGE_SRID)
    engine = make_engine(url)
    data_dir = make_world_readable_tempdir("cim-viewer-cambridge-")
    env = cli_env(url, CIM_DATA_DIR=str(data_dir))
    samples, mappings = SHARED_SAMPLES / "shelters", REPO / "data" / "samples"
    try:
        for kind, sample, mapping in CAMBRIDGE_IMPORTS:
            run_cim(
                env, "import", kind, str(samples / sample), "--mapping", str(mappings / mapping)
            )
        # a CLI plan with a much shorter radius than the tool's default (some shelters stay
        # part-empty): the page opens on it
        run_cim(env, "analyse", "shelters", "plan", "--radius", "short=300", "--json")
        with harness.served(CIM, env) as base:
            yield ServedCity(base=base, engine=engine, env=env)
    finally:
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = harness.launch(playwright)
        yield browser
        browser.close()


@dataclass
class ViewerPage:
    page: Any
    watch: harness.PageWatch
    config: dict[str, Any]


@pytest.fixture(scope="session")
def viewer(browser: Any, demo_city: DemoCity) -> Iterator[ViewerPage]:
    """The viewer, loaded once; its tilesets settled on the initial (whole-city) view."""
    page, watch = harness.open_viewer(browser, demo_city.base)
    harness.wait_settled(page, globe=False)
    config = page.evaluate("() => cim.config")
    yield ViewerPage(page=page, watch=watch, config=config)
    page.close()


@pytest.fixture(scope="session")
def cambridge_viewer(browser: Any, cambridge_city: ServedCity) -> Iterator[ViewerPage]:
    """Cambridge's viewer: a second page of the same browser, with the newest plan shown."""
    page, watch = harness.open_viewer(browser, cambridge_city.base)
    page.evaluate("() => cim.newestPlanShown")  # a promise: evaluate waits for it
    harness.wait_settled(page, globe=False)  # and its polygons are built
    config = page.evaluate("() => cim.config")
    yield ViewerPage(page=page, watch=watch, config=config)
    page.close()
