"""The durable job queue over HTTP: GET /jobs, retries, and the tile refresh an import queues."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.jobs import queue
from tests.conftest import SHARED_SAMPLES

NET1 = SHARED_SAMPLES / "pipes" / "Net1.inp"
PIPES_FORM = {"kind": "pipes", "crs": "EPSG:4547", "origin": "534000,3380000", "utility": "JS"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(
    database_url: str, data_dir: Path, engine: Engine, clean_tables: None
) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=data_dir, collection_cache_seconds=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client
    with engine.begin() as conn:  # this module's jobs; other modules' rows stay
        conn.execute(text("DELETE FROM import_job WHERE options ? 'test_jobs'"))
        # refreshes our imports queued that no worker took before the app stopped
        conn.execute(text("DELETE FROM import_job WHERE task = 'tiles' AND status = 'queued'"))


def _wait(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(url, headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job did not finish: {job}")


def _finished_jobs(engine: Engine, marker: str) -> list[str]:
    """Five finished jobs of two tasks and two kinds, oldest first (no worker takes them)."""
    ids = []
    with Session(engine) as session, session.begin():
        for number, (task, kind, status) in enumerate(
            [("import", "pipes", "succeeded"), ("tiles", "pipes", "succeeded"),
             ("import", "terrain", "failed"), ("import", "pipes", "failed"),
             ("tiles", "terrain", "succeeded")]
        ):  # fmt: skip
            job = queue.enqueue(
                session, task=task, kind=kind, options={"test_jobs": marker, "n": number}
            )
            job.status = status
            job.created_at = job.created_at.replace(year=2001, second=number)
            ids.append(job.id)
    return ids


def test_jobs_are_listed_newest_first_filtered_and_paged(
    client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    ids = _finished_jobs(engine, uuid.uuid4().hex)
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs", headers={"X-API-Key": keys["reader"]}).status_code == 403
    analyst = {"X-API-Key": keys["analyst"]}

    def listed(**query: Any) -> dict[str, Any]:
        answer = client.get("/jobs", params=query, headers=analyst)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    everything = [j["id"] for j in listed(limit=500)["jobs"] if j["id"] in ids]
    assert everything == ids[::-1]
    failed = listed(status="failed", limit=500)
    assert {j["id"] for j in failed["jobs"]} & set(ids) == {ids[2], ids[3]}
    tiles = [j for j in listed(task="tiles", kind="terrain", limit=500)["jobs"] if j["id"] in ids]
    assert [j["id"] for j in tiles] == [ids[4]] and tiles[0]["task"] == "tiles"
    first = listed(kind="pipes", status="succeeded", limit=1)
    assert first["numberReturned"] == 1 and first["numberMatched"] >= 2
    next_link = [link["href"] for link in first["links"] if link["rel"] == "next"]
    assert next_link and "offset=1" in next_link[0]
    second = client.get(next_link[0], headers=analyst).json()
    assert second["jobs"][0]["id"] != first["jobs"][0]["id"]
    for bad in ({"status": "lost"}, {"task": "export"}, {"limit": 0}):
        assert client.get("/jobs", params=bad, headers=analyst).status_code == 400


def test_an_api_import_queues_a_tile_refresh_that_writes_the_layer(
    client: TestClient, keys: dict[str, str], data_dir: Path
) -> None:
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": (NET1.name, NET1.read_bytes(), "application/octet-stream")}
    started = client.post("/datasets", data=PIPES_FORM, files=files, headers=admin)
    assert started.status_code == 202, started.text
    imported = _wait(client, started.headers["location"], admin)
    assert imported["status"] == "succeeded" and imported["task"] == "import", imported
    assert imported["attempts"] == 1 and imported["options"]["refresh_tiles"] is True
    assert "upload_dir" not in imported["options"] and "worker" not in imported["options"]
    refreshes = [
        j
        for j in client.get("/jobs", params={"task": "tiles", "limit": 500}, headers=admin).json()[
            "jobs"
        ]
        if j["options"].get("import_job") == imported["id"]
    ]
    assert len(refreshes) == 1 and refreshes[0]["kind"] == "pipes"
    refreshed = _wait(client, f"/jobs/{refreshes[0]['id']}", admin)
    assert refreshed["status"] == "succeeded", refreshed
    assert refreshed["dataset_id"] == imported["dataset_id"]
    layers = {r["layer"]: r for r in refreshed["result"]["layers"]}
    assert set(layers) == {"pipes", "pipes_restricted"}
    assert layers["pipes"]["status"] == "built" and layers["pipes"]["features"] >= 13  # + nodes
    assert (data_dir / "tiles" / "pipes" / "tileset.json").is_file()
    assert not (data_dir / "uploads" / imported["id"]).exists()  # removed once imported
    served = client.get("/tiles/pipes/tileset.json")
    assert served.status_code == 200 and served.json()["asset"]["version"] == "1.1"


def test_a_failed_job_is_retried_explicitly(
    client: TestClient, keys: dict[str, str], engine: Engine, data_dir: Path
) -> None:
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": (NET1.name, b"[JUNCTIONS]\nnot an EPANET file", "text/plain")}
    form = {**PIPES_FORM, "name": f"retry {uuid.uuid4().hex}"}
    started = client.post("/datasets", data=form, files=files, headers=admin)
    failed = _wait(client, started.headers["location"], admin)
    assert failed["status"] == "failed" and failed["attempts"] == 1, failed
    url = f"/jobs/{failed['id']}/retry"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"X-API-Key": keys["analyst"]}).status_code == 403
    # the upload stays for a retry: put the real network in its place, then retry
    upload = data_dir / "uploads" / failed["id"]
    shutil.copyfile(NET1, upload / NET1.name)
    retried = client.post(url, headers=admin)
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "queued" and retried.json()["error"] is None
    done = _wait(client, url.removesuffix("/retry"), admin)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert done["max_attempts"] > done["attempts"]
    again = client.post(url, headers=admin)
    assert again.status_code == 400 and "only a failed job" in again.json()["detail"]
    assert client.post("/jobs/no-such-job/retry", headers=admin).status_code == 404
    with engine.connect() as conn:
        actions = conn.execute(
            text("SELECT count(*) FROM audit_log WHERE action = 'retry' AND resource = :r"),
            {"r": f"jobs/{failed['id']}"},
        ).scalar_one()
    assert actions == 1


def test_a_retry_without_the_upload_is_refused(
    client: TestClient, keys: dict[str, str], data_dir: Path
) -> None:
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": ("notes.tif", b"not a raster", "image/tiff")}
    started = client.post("/datasets", data={"kind": "terrain"}, files=files, headers=admin)
    failed = _wait(client, started.headers["location"], admin)
    assert failed["status"] == "failed"
    shutil.rmtree(data_dir / "uploads" / failed["id"])
    refused = client.post(f"/jobs/{failed['id']}/retry", headers=admin)
    assert refused.status_code == 400 and "upload them again" in refused.json()["detail"]


def test_a_restart_keeps_the_uploads_of_waiting_jobs_and_requeues_dead_workers_jobs(
    database_url: str, engine: Engine, data_dir: Path, keys: dict[str, str]
) -> None:
    """A server killed after queueing an upload: its folder stays for the job (any worker may
    run it), a finished job's folder goes, and a job its dead worker held is queued again."""
    # ``held`` is queued again with run_after = now: this app's worker may take it (and fail
    # it: its upload folder is empty), so only "not the dead worker's any more" is asserted
    marker, later = uuid.uuid4().hex, datetime(2100, 1, 1, tzinfo=UTC)
    dead = f"{socket.gethostname()}:{2**22 + 17}"  # no such process
    with Session(engine, expire_on_commit=False) as session, session.begin():
        waiting, finished, held = (
            queue.enqueue(session, task="import", kind="terrain", options={"test_jobs": marker})
            for _ in range(3)
        )
        waiting.run_after = held.run_after = later  # no worker of this test takes them
        finished.status = "succeeded"
        held.status, held.worker, held.attempts = "running", f"{dead}:abcdef", 1
        ids = [waiting.id, finished.id, held.id]
    for job_id in ids:
        (data_dir / "uploads" / job_id).mkdir(parents=True)
        (data_dir / "uploads" / job_id / ".worker").write_text(dead)
    settings = CimSettings(database_url=database_url, data_dir=data_dir)
    try:
        with TestClient(create_app(settings)) as client:
            kept = sorted(p.name for p in (data_dir / "uploads").iterdir())
            assert kept == sorted([waiting.id, held.id])
            shown = client.get(f"/jobs/{held.id}", headers={"X-API-Key": keys["admin"]}).json()
            assert (shown["status"], shown["worker"]) != ("running", held.worker), shown
            assert shown["status"] != "queued" or "re-queued" in shown["error"], shown
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM import_job WHERE id = ANY(:ids)"), {"ids": ids})
