"""``cim jobs``, ``cim jobs show`` and ``cim jobs retry`` (in-process, ``tests.cli_support``),
and ``cim worker --drain`` (a subprocess) running what the queue holds."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.jobs import queue
from tests.cli_support import run_cim
from tests.conftest import CIM, cli_env


def cim(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim(*args, env=cli_env(database_url))


def data(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a command printed (its stderr when it failed)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def failed_job(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """A failed roads import whose upload (a tiny GeoJSON road) is still on disk."""
    folder = tmp_path / "uploads" / "roads"
    folder.mkdir(parents=True)
    road = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "a"},
                "geometry": {"type": "LineString", "coordinates": [[114.0, 30.5], [114.001, 30.5]]},
            }
        ],
    }
    (folder / "road.geojson").write_text(json.dumps(road))
    options = {"files": ["road.geojson"], "upload_dir": str(folder), "name": uuid.uuid4().hex}
    with Session(engine) as session, session.begin():
        job = queue.enqueue(session, task="import", kind="roads", options=options)
        job.status, job.error, job.attempts = "failed", "the database went away", 1
        job_id = job.id
    yield job_id
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM import_job WHERE id = :id"), {"id": job_id})
        conn.execute(text("DELETE FROM dataset WHERE name = :n"), {"n": options["name"]})


@pytest.mark.slow  # the worker subprocess
def test_list_show_retry_and_drain(database_url: str, failed_job: str, tmp_path: Path) -> None:
    listed = cim(database_url, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert any(
        line.startswith(failed_job) and "failed" in line for line in listed.stdout.splitlines()
    )
    as_json = data(cim(database_url, "jobs", "list", "--status", "failed", "--json"))
    assert failed_job in [row["id"] for row in as_json]
    shown = data(cim(database_url, "jobs", "show", failed_job, "--json"))
    assert shown["status"] == "failed" and shown["error"] == "the database went away"
    assert "upload_dir" not in shown["options"]
    missing = cim(database_url, "jobs", "show", "no-such-job")
    assert missing.returncode != 0 and "does not exist" in missing.stderr

    retried = cim(database_url, "jobs", "retry", failed_job)
    assert retried.returncode == 0 and "queued again" in retried.stdout, retried.stderr
    # A subprocess: `cim worker` is a process of its own, and its job's log line goes to stderr.
    drained = subprocess.run(
        [CIM, "worker", "--drain"], capture_output=True, text=True, timeout=180,
        env=cli_env(database_url, CIM_DATA_DIR=str(tmp_path / "data")),
    )  # fmt: skip
    assert drained.returncode == 0, drained.stderr
    assert f"job {failed_job}: import roads succeeded" in " ".join(drained.stderr.split())
    done = data(cim(database_url, "jobs", "show", failed_job, "--json"))
    assert done["status"] == "succeeded" and done["attempts"] == 2 and done["dataset_id"]
