"""``cim analyse pipes shutdown`` as a user runs it (in-process, ``tests.cli_support``): text
answer, JSON, exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import Engine, text

from importers.pipes import PipeImportOptions, import_pipes
from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env


@pytest.mark.slow
def test_shutdown_command(database_url: str, engine: Engine, clean_tables: None) -> None:
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 0.0))
    [net1] = import_pipes(engine, [SHARED_SAMPLES / "pipes" / "Net1.inp"], options)
    with engine.connect() as conn:
        pipe = conn.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = '110'"),
            {"d": net1.dataset.id},
        ).scalar_one()  # the tank's only pipe: closing it leaves the pumps alone

    def cim(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cim("analyse", "pipes", "shutdown", *args, env=cli_env(database_url), cwd="/")

    done = cim("--pipe", str(pipe), "--hours", "6")
    assert done.returncode == 0, done.stderr
    assert "1 link(s) closed (110)" in done.stdout and "demand not served" in done.stdout
    as_json = cim("--pipe", str(pipe), "--hours", "6", "--json")
    answer = json.loads(as_json.stdout)
    assert answer["closed_links"][0]["link"] == "110" and answer["geojson"]["features"]
    refused = cim("--segment", str(pipe))
    assert refused.returncode == 2 and "has no valves" in refused.stderr
