"""Hostile uploads: the key is checked before the body is read, bad file names, limits, orphans."""

from __future__ import annotations

import os
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from tests.api.server import cim_serve
from tests.api.test_datasets import _wait

MAX_BODY = 8 * 1024 * 1024
BOUNDARY = "cimtestboundary"


def _settings(database_url: str, data_dir: Path, **values: Any) -> CimSettings:
    return CimSettings(
        database_url=database_url,
        data_dir=data_dir,
        collection_cache_seconds=0,
        max_body_bytes=MAX_BODY,
        **values,
    )


@pytest.fixture
def client(database_url: str, tmp_path: Path, clean_tables: None) -> Iterator[TestClient]:
    app = create_app(_settings(database_url, tmp_path / "data", ifczip_max_expanded_bytes=1 << 20))
    with TestClient(app) as test_client:
        yield test_client


def _raw_post(client: TestClient, headers: dict[str, str], body_size: int) -> tuple[int, int]:
    """POST /datasets straight to the ASGI app with a body of ``body_size`` bytes offered in
    64 KiB messages; the status and how many body bytes the app pulled."""
    pulled = 0
    status = 0

    async def call() -> None:
        nonlocal status
        offered = 0

        async def receive() -> dict[str, Any]:
            nonlocal offered, pulled
            if offered >= body_size:
                return {"type": "http.disconnect"}
            chunk = min(65536, body_size - offered)
            offered += chunk
            pulled += chunk
            return {"type": "http.request", "body": b"-" * chunk, "more_body": offered < body_size}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/datasets",
            "raw_path": b"/datasets",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                (b"content-length", str(body_size).encode()),
                *raw_headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "state": {},
        }
        await client.app(scope, receive, send)  # type: ignore[arg-type]

    assert client.portal is not None
    client.portal.call(call)
    return status, pulled


def test_anonymous_upload_is_refused_before_the_body_is_read(
    client: TestClient, keys: dict[str, str]
) -> None:
    status, pulled = _raw_post(client, {}, 5 * 1024 * 1024)
    assert status == 401 and pulled == 0, (status, pulled)
    status, pulled = _raw_post(client, {"X-API-Key": keys["reader"]}, 5 * 1024 * 1024)
    assert status == 403 and pulled == 0, (status, pulled)
    status, pulled = _raw_post(client, {"X-API-Key": "not-a-key"}, 5 * 1024 * 1024)
    assert status == 401 and pulled == 0, (status, pulled)


def test_oversized_content_length_with_a_key_is_413_before_reading(
    client: TestClient, keys: dict[str, str]
) -> None:
    status, pulled = _raw_post(client, {"X-API-Key": keys["admin"]}, MAX_BODY + 1)
    assert status == 413 and pulled == 0, (status, pulled)


def _uploads(client: TestClient) -> list[Path]:
    folder = client.app.state.job_runner.uploads_dir  # type: ignore[attr-defined]
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(
    ("filename", "match"),
    [
        ("a" * 300 + ".tif", "longer than 200 characters"),
        ("../../etc/dem.tif", "path separators"),
        ("dem\\..\\dem.tif", "path separators"),
    ],
)
def test_bad_upload_file_names_are_400(
    client: TestClient, keys: dict[str, str], filename: str, match: str
) -> None:
    files = {"files": (filename, b"GDAL", "image/tiff")}
    admin = {"X-API-Key": keys["admin"]}
    answer = client.post("/datasets", data={"kind": "terrain"}, files=files, headers=admin)
    assert answer.status_code == 400, answer.text
    assert match in answer.json()["detail"]
    assert _uploads(client) == []


def test_form_fields_are_still_validated(client: TestClient, keys: dict[str, str]) -> None:
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": ("dem.tif", b"GDAL", "image/tiff")}
    for form, where in (
        ({"kind": "ifc", "rotation": "400"}, "rotation"),
        ({"kind": "ifc", "rotation": "nan"}, "rotation"),
        ({"kind": "ifc", "name": "n" * 201}, "name"),
        ({"kind": "roads", "noding": "everywhere"}, "noding"),
        ({}, "kind"),
    ):
        answer = client.post("/datasets", data=form, files=files, headers=admin)
        assert answer.status_code == 400 and where in answer.json()["detail"], answer.text
    answer = client.post("/datasets", data={"kind": "terrain"}, headers=admin)
    assert answer.status_code == 400 and "file" in answer.json()["detail"]
    assert _uploads(client) == []


def test_the_upload_form_is_documented(client: TestClient) -> None:
    body = client.get("/api").json()["paths"]["/datasets"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert {"kind", "files"} <= set(schema["required"])
    assert schema["properties"]["files"]["items"]["format"] == "binary"
    assert schema["properties"]["rotation"]["maximum"] == 360


def test_ifczip_bomb_upload_fails_its_job_at_the_configured_limit(
    client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.ifczip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.ifc", bytes(5 * 1024 * 1024))
    admin = {"X-API-Key": keys["admin"]}
    files = {"files": ("bomb.ifczip", bomb.read_bytes(), "application/zip")}
    started = client.post("/datasets", data={"kind": "ifc"}, files=files, headers=admin)
    assert started.status_code == 202, started.text
    done = _wait(client, started.headers["location"], admin)
    assert done["status"] == "failed" and "larger than 1048576 bytes" in done["error"], done
    assert client.get("/datasets").json()["datasets"] == []


def _job_row(engine: Engine, job_id: str, status: str, worker: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO import_job (id, kind, status, progress, options, created_at, "
                "updated_at) VALUES (:id, 'ifc', :status, 0, CAST(:options AS jsonb), now(), now())"
            ),
            {"id": job_id, "status": status, "options": f'{{"worker": "{worker}"}}'},
        )


def test_orphaned_upload_folders_are_swept_on_start(
    database_url: str, engine: Engine, tmp_path: Path, clean_tables: None
) -> None:
    uploads = tmp_path / "data" / "uploads"
    host = socket.gethostname()
    orphan, dead_worker, finished, running = (str(uuid.uuid4()) for _ in range(4))
    for job_id in (orphan, dead_worker, finished, running):
        (uploads / job_id).mkdir(parents=True)
        (uploads / job_id / "model.ifc").write_bytes(b"ISO-10303-21;")
    old = time.time() - 3600
    os.utime(uploads / orphan, (old, old))
    _job_row(engine, dead_worker, "running", f"{host}:{2**22 + 7}")  # no such process
    _job_row(engine, finished, "failed", f"{host}:{os.getppid()}")
    _job_row(engine, running, "running", f"{host}:{os.getppid()}")  # a live process
    try:
        with TestClient(create_app(_settings(database_url, tmp_path / "data"))):
            assert sorted(p.name for p in uploads.iterdir()) == [running]
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM import_job WHERE id = ANY(:ids)"),
                {"ids": [dead_worker, finished, running]},
            )


def test_live_server_answers_401_before_the_body_is_sent(
    database_url: str, tmp_path: Path, clean_tables: None
) -> None:
    """Headers only, a 300 MB Content-Length and no body: the 401 must come without it."""
    head = (
        "POST /datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
    )
    with cim_serve(database_url, tmp_path) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(head.encode())
            answer = connection.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 401"), answer
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())
