"""The Cambridge shelter data through the CLI only, as an operator runs it: import the three
layers, plan, list zones and uncovered units (GeoJSON files), suggest sites. Population is
conserved against an independent SQL sum of the imported blocks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import text

from cim.db.engine import make_engine
from tests.cli_support import run_cim
from tests.conftest import cli_env, migrated_database
from tests.shelter_fixtures import MAPPINGS, SHELTER_SAMPLES

TOTAL = 101_355.0  # persons in cambridge_Blocks2000_population.geojson (sum of POP100)


def test_cambridge_import_plan_zones_uncovered_suggest(server_url: str, tmp_path: Path) -> None:
    url = migrated_database(server_url, "cim_test_cambridge_cli", srid=26986)
    engine = make_engine(url)
    env = cli_env(url, CIM_DATA_DIR=str(tmp_path / "data"))

    def cim(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cim(*args, env=env, cwd="/")

    def data(*args: str) -> Any:
        done = cim(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    for kind, sample, mapping in (
        ("shelters", "cambridge_EmergencyShelters.geojson", "cambridge_shelters.yaml"),
        ("population", "cambridge_Blocks2000_population.geojson", "cambridge_population.yaml"),
        ("hazards", "cambridge_FEMA_FloodPlains100Year.geojson", "cambridge_flood.yaml"),
    ):
        data("import", kind, str(SHELTER_SAMPLES / sample), "--mapping", str(MAPPINGS / mapping))
    with engine.connect() as conn:
        imported = float(
            conn.execute(text("SELECT sum(population) FROM population_unit")).scalar_one()
        )
    assert imported == TOTAL

    plan = data("analyse", "shelters", "plan", "--radius", "short=800")
    stats = plan["stats"]
    assert stats["population"] == TOTAL
    assert stats["covered"] + sum(stats["uncovered_by_reason"].values()) == TOTAL
    assert data("analyse", "shelters", "show")["id"] == plan["id"]

    zones_file, uncovered_file = tmp_path / "zones.geojson", tmp_path / "uncovered.geojson"
    zones = data("analyse", "shelters", "zones", str(plan["id"]), "--geojson", str(zones_file))
    uncovered = data("analyse", "shelters", "uncovered", "--geojson", str(uncovered_file))
    assert json.loads(zones_file.read_text()) == zones
    assert json.loads(uncovered_file.read_text()) == uncovered
    zoned = sum(f["properties"]["population"] for f in zones["features"])
    left = sum(f["properties"]["uncovered"] for f in uncovered["features"])
    assert abs(zoned - stats["covered"]) < 1e-6
    assert abs(zoned + left - TOTAL) < 1e-6
    for feature in zones["features"]:
        p = feature["properties"]
        assert p["population"] <= p["capacity"] + 1e-6
        assert abs(p["load_ratio"] - p["population"] / p["capacity"]) < 1e-6
    by_reason: dict[str, float] = {}
    for f in uncovered["features"]:
        by_reason[f["properties"]["reason"]] = (
            by_reason.get(f["properties"]["reason"], 0) + f["properties"]["uncovered"]
        )
    assert by_reason == {k: v for k, v in stats["uncovered_by_reason"].items() if v}
    text_out = cim("analyse", "shelters", "uncovered")
    assert text_out.returncode == 0 and f"{left:,.0f} persons uncovered" in text_out.stdout

    suggestion = data("analyse", "shelters", "suggest", "-k", "2", "--grid", "250")
    assert len(suggestion["sites"]) == 2
    assert 0 < suggestion["gain"] <= left + 1e-6
    assert suggestion["gain"] <= sum(s["covers"] for s in suggestion["sites"]) + 1e-6

    missing = cim("analyse", "shelters", "zones", "999")
    assert missing.returncode != 0 and "no shelter plan 999" in missing.stderr
    engine.dispose()
