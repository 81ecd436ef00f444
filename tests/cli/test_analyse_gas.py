"""``cim analyse gas adjacent`` (in-process, ``tests.cli_support``) against the committed
hand-made street of ``gas_fixtures``: the ranked table, JSON equal to the service's, sensors,
the alarm's valves, an area, and bad input with exit code 2."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.services.gas.adjacent import adjacent_spaces
from tests.cim.gas_fixtures import AS_OF, X0, Y0, write_gas_street
from tests.cli_support import run_cim
from tests.conftest import cli_env

RANKED = ["B3", "B1", "W9", "W1", "T1", "W7", "W10", "W5", "W2", "W3", "W4"]


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim(
        "analyse", "gas", "adjacent", "--as-of", str(AS_OF), *args, env=cli_env(database_url)
    )


@pytest.mark.slow  # seven in-process runs: about 2 s (call), 6 s with setup
def test_cli_gas_adjacent(engine: Engine, database_url: str, clean_tables: None) -> None:
    with Session(engine) as session, session.begin():
        street = write_gas_street(session)
    table = run(database_url)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["rank", "space", "type"]
    assert [row.split()[1] for row in rows[1:12]] == RANKED
    assert rows[1].split() == ["1", "B3", "basement", "5.00", "below", "4.80", "m", "aV1",
                               "medium_a", "8.764"]  # fmt: skip
    assert rows[12].startswith("11 spaces within 5 m of 5 gas pipes (300.0 m); 1 buildings")
    as_json = json.loads(run(database_url, "--json").stdout)
    with Session(engine) as session:
        direct = adjacent_spaces(session, as_of_year=AS_OF)
    assert as_json == direct.model_dump(mode="json")
    sensors = run(database_url, "--sensors", "2").stdout
    assert "sensor sites (k=2): " in sensors
    files = Path(tempfile.mkdtemp(prefix="cim-gas-"))
    written = run(database_url, "--sensors", "2", "--csv", str(files / "s.csv"),
                  "--xlsx", str(files / "s.xlsx"), "--lang", "en")  # fmt: skip
    assert written.returncode == 0, written.stderr
    lines = (files / "s.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Risk rank,Space type") and len(lines) == 12
    assert lines[1].split(",")[:3] == ["1", "basement", "building"]
    alarm = run(database_url, "--segment", str(street.gas_segments["V1b"]), "--alarm").stdout
    assert "alarm on V1b: close V1, V2" in alarm
    assert [row.split()[1] for row in alarm.splitlines()[1:4]] == ["B1", "W2", "W3"]
    south = f"POLYGON (({X0 - 10} {Y0 - 50}, {X0 + 210} {Y0 - 50}, {X0 + 210} {Y0 + 30}, " \
            f"{X0 - 10} {Y0 + 30}, {X0 - 10} {Y0 - 50}))"  # fmt: skip
    assert "10 spaces within 5 m of 4 gas pipes" in run(database_url, "--area", south).stdout
    bad = run(database_url, "--radius", "0")
    assert bad.returncode == 2 and "radius_m" in bad.stderr
