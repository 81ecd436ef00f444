"""``cim import roads`` and ``cim analyse shelters plan|suggest --distance network`` as run
(in-process, ``tests.cli_support``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from cim.db.engine import make_engine
from tests.cli_support import run_cim
from tests.conftest import cli_env, migrated_database
from tests.road_fixtures import (
    SHELTERS_AB,
    UNITS_NORTH_SOUTH,
    write_roads,
    write_shelters,
    write_units,
)


def test_import_roads_then_plan_and_suggest_along_them(server_url: str, tmp_path: Path) -> None:
    url = migrated_database(server_url, "cim_test_roads_cli", srid=4547)
    env = cli_env(url, CIM_DATA_DIR=str(tmp_path / "data"))

    def cim(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cim(*args, env=env, cwd="/")

    def data(done: subprocess.CompletedProcess[str]) -> Any:
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    crs = ("--crs", "EPSG:4547", "--json")
    data(cim("import", "shelters", str(write_shelters(tmp_path / "s.geojson", SHELTERS_AB)), *crs))
    data(
        cim(
            "import",
            "population",
            str(write_units(tmp_path / "u.geojson", UNITS_NORTH_SOUTH)),
            *crs,
        )
    )

    refused = cim("analyse", "shelters", "plan", "--distance", "network")
    assert refused.returncode == 2 and "cim import roads" in refused.stderr
    bad_metric = cim("analyse", "shelters", "plan", "--distance", "manhattan")
    assert bad_metric.returncode == 2 and "'euclidean' or 'network'" in bad_metric.stderr

    roads_file = write_roads(tmp_path / "roads.geojson")
    imported = data(cim("import", "roads", str(roads_file), *crs))
    dataset = imported["dataset"]
    assert dataset["kind"] == "roads" and dataset["counts"]["segments"] == 6
    again = cim("import", "roads", str(roads_file), "--noding", "vertices", "--crs", "EPSG:4547")
    assert again.returncode == 0 and "already imported (use --replace)" in again.stdout

    plan = data(cim("analyse", "shelters", "plan", "--distance", "network", "--json"))
    stats = plan["stats"]
    assert stats["distance"] == "network" and stats["network"]["road_datasets"] == [dataset["id"]]
    assert stats["covered"] == 150.0 and stats["person_distance_m"] == 76_000.0
    assert stats["max_distance_m"] == 700.0
    assert stats["uncovered_by_reason"]["out_of_reach"] == 10.0
    text_plan = cim("analyse", "shelters", "plan", "--distance", "network", "--access-max", "700")
    assert text_plan.returncode == 0 and "(network)" in text_plan.stdout
    # U4 is now on the network, but 600 + 400 + 50 = 1,050 m from B, beyond its 1,000 m.
    assert "150 of 160 persons covered" in text_plan.stdout

    unknown = cim("analyse", "shelters", "plan", "--distance", "network", "--roads", "987654")
    assert unknown.returncode == 3 and "987654" in unknown.stderr

    suggest = ["analyse", "shelters", "suggest", "-k", "1", "--radius", "650", "--all-population"]
    candidates = ["--candidates", str(_shelters_dataset(url))]
    suggested = data(cim(*suggest, *candidates, "--distance", "network", "--json"))
    assert suggested["distance"] == "network" and suggested["gain"] == 50.0


def _shelters_dataset(url: str) -> int:
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT id FROM dataset WHERE kind = 'shelters'")).scalar_one()
            )
    finally:
        engine.dispose()
