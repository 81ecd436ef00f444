"""SIGKILL of a ``cim worker`` during an import job: the job is resumed by another worker or
failed after its attempts, and the dataset is absent or complete, never half.

The first worker is paused inside the import (a :mod:`cim.faults` pause point) and killed
there; a second ``cim worker --drain`` finds the job's worker gone, re-queues the job and runs
it to the end - or, when the job had no attempt left, fails it with a clear error.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.models import ImportJob
from cim.jobs import queue
from tests.conftest import CIM, cli_env
from tests.faults.test_import_kill import KY4, _check, _kill, _wait_idle


def _queue_import(
    engine: Engine, uploads: Path, max_attempts: int, refresh_tiles: bool = False
) -> str:
    """An import job of ky4 as ``POST /datasets`` would queue it."""
    with Session(engine) as session, session.begin():
        job = queue.enqueue(session, task="import", kind="pipes", options={})
        folder = uploads / job.id
        folder.mkdir(parents=True)
        shutil.copyfile(KY4, folder / KY4.name)
        job.options = {
            "crs": "EPSG:3547",
            "files": [KY4.name],
            "upload_dir": str(folder),
            "refresh_tiles": refresh_tiles,
        }
        job.max_attempts = max_attempts
        return job.id


def _worker(database_url: str, data_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CIM, "worker", *args],
        env=cli_env(database_url, CIM_DATA_DIR=str(data_dir), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _killed_at(database_url: str, data_dir: Path, phase: str) -> int:
    """Start a worker that pauses at ``phase`` of its import, SIGKILL it there; its pid."""
    child = _worker(database_url, data_dir, CIM_TEST_PAUSE_AT=phase)
    assert child.stderr is not None
    line = ""
    while "CIM_PAUSED" not in line:
        line = child.stderr.readline()
        assert line or child.poll() is None, f"{phase}: the worker exited before pausing"
    assert line.strip() == f"CIM_PAUSED {phase}"
    _kill(child)
    return child.pid


def _job(engine: Engine, job_id: str) -> ImportJob:
    with Session(engine, expire_on_commit=False) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def _drain(database_url: str, data_dir: Path) -> None:
    child = _worker(database_url, data_dir, "--drain")
    _, err = child.communicate(timeout=240)
    assert child.returncode == 0, err


@pytest.mark.slow
def test_a_killed_workers_import_is_resumed_by_another_worker(
    utm_engine: Engine, utm_url: str, tmp_path: Path
) -> None:
    engine, data_dir = utm_engine, tmp_path / "data"
    job_id = _queue_import(engine, data_dir / "uploads", max_attempts=3)
    pid = _killed_at(utm_url, data_dir, "copy")
    running = _job(engine, job_id)
    assert running.status == "running" and running.attempts == 1
    assert running.worker is not None and f":{pid}:" in running.worker
    _wait_idle(engine)
    assert _check(engine) is None  # the COPY was never committed

    _drain(utm_url, data_dir)  # finds the dead worker's job, re-queues it and runs it
    done = _job(engine, job_id)
    assert done.status == "succeeded" and done.attempts == 2, (done.status, done.error)
    assert done.worker != running.worker and done.progress == 1.0
    dataset = _check(engine)
    assert dataset is not None and dataset["segments"] > 1000
    assert done.dataset_id == dataset["id"]
    assert not (data_dir / "uploads" / job_id).exists()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM import_job WHERE id = :id"), {"id": job_id})


@pytest.mark.slow
def test_a_killed_workers_import_without_attempts_left_is_failed(
    utm_engine: Engine, utm_url: str, tmp_path: Path
) -> None:
    engine, data_dir = utm_engine, tmp_path / "data"
    job_id = _queue_import(engine, data_dir / "uploads", max_attempts=1)
    _killed_at(utm_url, data_dir, "write")
    _wait_idle(engine)
    _drain(utm_url, data_dir)
    failed = _job(engine, job_id)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error is not None and "stopped during attempt 1 of 1" in failed.error
    assert f"cim jobs retry {job_id}" in failed.error
    assert _check(engine) is None
    assert (data_dir / "uploads" / job_id / KY4.name).is_file()  # kept for a retry
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM import_job WHERE id = :id"), {"id": job_id})


@pytest.mark.slow
def test_a_killed_tile_refresh_is_run_again_and_the_layer_is_whole(
    utm_engine: Engine, utm_url: str, tmp_path: Path
) -> None:
    """The import's worker is killed in its tile refresh, with the new layer staged and not yet
    swapped in; a second worker runs the refresh again and the layer is complete."""
    engine, data_dir = utm_engine, tmp_path / "data"
    import_id = _queue_import(engine, data_dir / "uploads", max_attempts=3, refresh_tiles=True)
    _killed_at(utm_url, data_dir, "tiles-swap")
    imported = _job(engine, import_id)
    assert imported.status == "succeeded" and imported.attempts == 1
    with engine.connect() as conn:
        refresh_id = conn.execute(
            text("SELECT id FROM import_job WHERE options->>'import_job' = :id"), {"id": import_id}
        ).scalar_one()
    assert _job(engine, refresh_id).status == "running"
    assert not (data_dir / "tiles" / "pipes" / "tileset.json").exists()  # never swapped in

    _drain(utm_url, data_dir)
    refreshed = _job(engine, refresh_id)
    assert refreshed.status == "succeeded" and refreshed.attempts == 2, refreshed.error
    assert refreshed.result is not None
    built = {layer["layer"]: layer for layer in refreshed.result["layers"]}
    dataset = _check(engine)
    assert dataset is not None and built["pipes"]["features"] >= dataset["segments"]
    assert (data_dir / "tiles" / "pipes" / "tileset.json").is_file()
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM import_job WHERE id IN (:a, :b)"), {"a": import_id, "b": refresh_id}
        )
        conn.execute(text("DELETE FROM tileset"))
