"""``cim analyse ... --at INSTANT``: the analyses answer on the network as it was then.

The hand-made survey of :mod:`tests.version_fixtures` is imported twice with ``cim import pipes``
(the second survey removes L3, adds L4 and makes L2 DN500); ``cim analyse pipes query`` at
version 1's time must find L3 at DN400, and without ``--at`` the current network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.version_fixtures import LINES_V1, LINES_V2, POINTS_V1, POINTS_V2, survey

BBOX = "499000,3399000,501000,3401000"
"""Around the survey in EPSG:4547 (x east, y north)."""


def _cim(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim(*args, env=cli_env(database_url))


def _json(database_url: str, *args: str) -> Any:
    done = _cim(database_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _pipes(database_url: str, *at: str) -> dict[str, Any]:
    """code -> diameter of the pipes ``cim analyse pipes query`` finds (at ``at`` if given)."""
    found = _json(database_url, "analyse", "pipes", "query", "--bbox", BBOX, *at)
    return {f["properties"]["code"]: f["properties"]["diameter_mm"] for f in found["features"]}


@pytest.mark.slow
def test_query_at_version_one_finds_the_removed_pipe(
    database_url: str, clean_tables: None, tmp_path: Path
) -> None:
    v1 = survey(tmp_path / "v1", POINTS_V1, LINES_V1)
    v2 = survey(tmp_path / "v2", POINTS_V2, LINES_V2)
    first = _json(database_url, "import", "pipes", *map(str, v1), "--crs", "EPSG:4547")
    _json(database_url, "import", "pipes", *map(str, v2), "--crs", "EPSG:4547")
    history = _json(database_url, "datasets", "history", str(first[0]["dataset"]["id"]))
    v1_time = history["versions"][0]["created_at"]

    assert _pipes(database_url, "--at", v1_time) == {"L1": 400, "L2": 400, "L3": 400}
    assert _pipes(database_url) == {"L1": 400, "L2": 500, "L4": 300}

    for bad in ("yesterday", f"{v1_time}/.."):
        done = _cim(database_url, "analyse", "pipes", "query", "--bbox", BBOX, "--at", bad)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("cim: error: --at") and done.stderr.count("\n") == 1
