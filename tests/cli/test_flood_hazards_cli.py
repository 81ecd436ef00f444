"""``cim analyse drainage flood --save-hazards NAME`` (issue 19): the flood's extents stored as
a hazard dataset from the command line, once; refused with ``--no-extents``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.flood_hazard_fixtures import build_flood_city

pytestmark = pytest.mark.slow


def test_save_hazards_flag(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    city = build_flood_city(engine, tmp_path, (500_000.0, 3_400_000.0))

    def cim(*args: str) -> subprocess.CompletedProcess[str]:
        command = ("analyse", "drainage", "flood", str(city.drainage), *args)
        return run_cim(*command, env=cli_env(database_url), cwd=tmp_path)

    done = cim("--save-hazards", "CLI flood")
    assert done.returncode == 0, done.stderr
    assert "saved as hazard dataset" in done.stdout and "1 flood zone(s)" in done.stdout
    again = json.loads(cim("--save-hazards", "CLI flood", "--json").stdout)
    assert again["created"] is False and again["dataset"]["name"] == "CLI flood"
    with engine.connect() as conn:
        area, kind = conn.execute(
            text("SELECT ST_Area(geom), kind FROM hazard_zone WHERE dataset_id = :d"),
            {"d": again["dataset"]["id"]},
        ).one()
    assert kind == "flood"
    assert area == pytest.approx(again["flood"]["flooded_nodes"][0]["extent"]["area_m2"], abs=0.01)
    refused = cim("--save-hazards", "x", "--no-extents")
    assert refused.returncode == 2 and "--no-extents" in refused.stderr
