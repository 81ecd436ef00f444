"""``cim tiles build`` end to end, in-process: JSON result, skip when unchanged, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import Engine

from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.tiles.checks import check_tileset
from tests.tiles.conftest import City


def _cim(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("tiles", "build", *args, env=cli_env(database_url, CIM_DATA_DIR=str(data_dir)))


def test_cli_builds_all_layers_then_skips_them(
    engine: Engine, city: City, database_url: str, tmp_path: Path
) -> None:
    first = _cim(database_url, tmp_path, "--layer", "all", "--force", "--json")
    assert first.returncode == 0, first.stderr
    results = {r["layer"]: r for r in json.loads(first.stdout)}
    assert results["buildings"]["status"] == "built"
    assert results["buildings"]["features"] == city.elements
    # the power cable S3 (DL, sensitive by default) is in the restricted layer
    assert results["pipes"]["features"] == city.pipe_features - 1
    assert results["pipes_restricted"]["features"] == 1
    check_tileset(tmp_path / "tiles" / "restricted" / "pipes")
    assert results["terrain"]["status"].startswith("empty")  # no DEM in this city
    for layer in ("buildings", "pipes"):
        check_tileset(tmp_path / "tiles" / layer)

    second = _cim(database_url, tmp_path, "--layer", "pipes", "--json")
    assert second.returncode == 0, second.stderr
    assert [r["status"] for r in json.loads(second.stdout)] == ["up-to-date", "up-to-date"]

    old = _cim(database_url, tmp_path, "--layer", "buildings", "--spec", "1.0")
    assert old.returncode == 0, old.stderr
    assert "buildings: " in old.stdout and "features" in old.stdout
    assert list((tmp_path / "tiles" / "buildings" / "content").glob("*.b3dm"))

    bad = _cim(database_url, tmp_path, "--spec", "2.0")
    assert bad.returncode == 2
