"""``cim demo`` refuses what cannot hold the demo city, before touching anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import Engine, func, select

from cim.db.models import Dataset
from tests.cli_support import run_cim
from tests.conftest import cli_env


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("demo", "--no-serve", *args, env=env)


def count_datasets(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Dataset)).scalar_one())


def test_a_database_in_another_crs_is_refused_with_a_way_out(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    before = count_datasets(engine)
    result = run_demo(cli_env(database_url, CIM_DATA_DIR=str(tmp_path)))
    assert result.returncode == 6, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("cim: error: ")
    assert "EPSG:4547" in message and "EPSG:32616" in message
    assert "CIM_DATABASE_URL" in message
    assert count_datasets(engine) == before


def test_an_explicit_other_srid_is_refused(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url, CIM_DATA_DIR=str(tmp_path), CIM_SRID="4326")
    result = run_demo(env)
    assert result.returncode == 6
    assert "unset CIM_SRID" in result.stderr


def test_a_malformed_manifest_is_invalid_input(database_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "demo.yaml"
    manifest.write_text("name: x\nimports: [{kind: terrain}]\n", encoding="utf-8")
    result = run_demo(cli_env(database_url), "--manifest", str(manifest))
    assert result.returncode == 2
    assert "malformed" in result.stderr
