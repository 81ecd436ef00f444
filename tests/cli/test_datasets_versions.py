"""``cim import pipes`` twice, then ``cim datasets history|diff|purge`` (in-process,
``tests.cli_support``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.version_fixtures import (
    CHANGES,
    LINES_V1,
    LINES_V2,
    POINTS_V1,
    POINTS_V2,
    survey,
)


def _cim(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim(*args, env=cli_env(database_url))


def _json(database_url: str, *args: str) -> Any:
    done = _cim(database_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_reimport_history_diff_purge(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    v1 = survey(tmp_path / "v1", POINTS_V1, LINES_V1)
    v2 = survey(tmp_path / "v2", POINTS_V2, LINES_V2)
    first = _json(database_url, "import", "pipes", *map(str, v1), "--crs", "EPSG:4547")
    second = _json(database_url, "import", "pipes", *map(str, v2), "--crs", "EPSG:4547")
    dataset_id = first[0]["dataset"]["id"]
    assert second[0]["dataset"]["id"] == dataset_id

    history = _json(database_url, "datasets", "history", str(dataset_id))
    assert [v["version"] for v in history["versions"]] == [1, 2]
    text_history = _cim(database_url, "datasets", "history", str(dataset_id)).stdout
    assert "v2 (current)" in text_history and "pipe_segment +1 -1 ~2" in text_history

    geojson = tmp_path / "changes.geojson"
    diff = _json(database_url, "datasets", "diff", str(dataset_id), "--geojson", str(geojson))
    assert diff["totals"] == {"added": 2, "removed": 2, "changed": 3}
    assert len(json.loads(geojson.read_text(encoding="utf-8"))["features"]) == 7
    shown = _cim(database_url, "datasets", "diff", str(dataset_id)).stdout
    assert "moved 3 m" in shown and "removed  pipe_segment  L3" in shown
    assert "    ~ L2 diameter_mm 400 → 500\n" in shown
    assert {f["code"]: f["changes"] for f in diff["features"] if f["changes"]} == CHANGES

    unknown = _cim(database_url, "datasets", "diff", str(dataset_id), "--from", "7")
    assert unknown.returncode != 0 and "no version 7" in unknown.stderr

    purged = _json(database_url, "datasets", "purge", "--before", "2100-01-01")
    assert purged["history_rows"] == 5 and purged["versions"] == 1
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT count(*) FROM pipe_segment")).scalar_one()
    assert kept == 3  # the current version is untouched
