"""``cim import pipes`` as a user runs it: --json summary, QC shown by datasets show, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import Engine

from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env
from tests.importers.pipes_helpers import dataset_count
from tests.importers.test_pipes_cjj61 import LINES, POINTS, _write


def _cim(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return run_cim(*args, env=cli_env(url), cwd="/")


def test_import_then_show_qc(database_url: str, clean_tables: None, tmp_path: Path) -> None:
    files = [str(_write(tmp_path, "PS_POINT.csv", POINTS)),
             str(_write(tmp_path, "PS_LINE.csv", LINES))]  # fmt: skip
    done = _cim("import", "pipes", *files, "--crs", "EPSG:4547", "--json", url=database_url)
    assert done.returncode == 0, done.stderr
    [summary] = json.loads(done.stdout)
    dataset = summary["dataset"]
    assert dataset["counts"]["pipe_segment"] == 4 and dataset["qc"]["errors"] == 8
    shown = _cim("datasets", "show", str(dataset["id"]), "--json", url=database_url)
    assert json.loads(shown.stdout)["qc"]["by_rule"]["tee_degree"] == 1


def test_errors_exit_codes_and_nothing_stored(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    before = dataset_count(engine)
    bad = _cim("import", "pipes", str(SHARED_SAMPLES / "pipes" / "epanet_bad_syntax.inp"),
               "--origin", "500000,3400000", url=database_url)  # fmt: skip
    assert bad.returncode == 4
    assert "line 330" in bad.stderr and "[FOO]" in bad.stderr
    files = [str(_write(tmp_path, "PS_POINT.csv", POINTS)),
             str(_write(tmp_path, "PS_LINE.csv", LINES))]  # fmt: skip
    strict = _cim("import", "pipes", *files, "--crs", "EPSG:4547", "--strict", url=database_url)
    assert strict.returncode == 4 and "--strict refuses" in strict.stderr
    assert dataset_count(engine) == before
