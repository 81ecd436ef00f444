"""Structured logs (issue 23): the request id (taken or made, echoed on every answer), one JSON
access line per request, the id on every log line and audit row of its request, the CLI's
formatter."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from cim.logs import RequestIdFilter, make_formatter, wants_json
from tests.api.features_fixtures import City
from tests.conftest import CIM, cli_env


@pytest.fixture
def app_client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        collection_cache_seconds=0,
        anonymous_rate_per_minute=0,
    )
    app = create_app(settings)

    def boom() -> None:
        logging.getLogger("cim.test").warning("about to fail")  # on a worker thread
        raise RuntimeError("boom")

    app.add_api_route("/test-boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the ``cim`` loggers write, as ``cim serve`` formats it (JSON, request id filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter("json"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("cim")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_request_id_is_taken_when_sane_else_made_and_always_echoed(
    app_client: TestClient,
) -> None:
    given = app_client.get("/health", headers={"X-Request-ID": "lb-7f3a.01_x"})
    assert given.headers["x-request-id"] == "lb-7f3a.01_x"
    made = app_client.get("/health").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    for hostile in ("a" * 65, "two words", "semi;colon", "\u00fcml", ""):
        answer = app_client.get("/health", headers={"X-Request-ID": hostile.encode()})
        replaced = answer.headers["x-request-id"]
        assert len(replaced) == 32 and replaced != hostile and answer.status_code == 200
    assert app_client.get("/no/such/path").headers["x-request-id"]  # 404
    refused = app_client.get("/metrics", headers={"X-Request-ID": "refused-1"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "refused-1"


def test_one_access_line_per_request_with_its_fields(
    app_client: TestClient, json_lines: io.StringIO, keys: dict[str, str]
) -> None:
    app_client.get("/collections/no_such/items?limit=5", headers={"X-Request-ID": "acc-1"})
    app_client.get("/datasets", headers={"X-API-Key": keys["admin"], "X-Request-ID": "acc-2"})
    lines = [line for line in records(json_lines) if line["logger"] == "cim.access"]
    assert [line["request_id"] for line in lines] == ["acc-1", "acc-2"]
    first = lines[0]
    assert first["method"] == "GET" and first["status"] == 404
    assert first["route"] == "/collections/{collection_id}/items"
    assert first["path"] == "/collections/no_such/items"  # no query string
    assert first["client"] == "testclient" and first["key_id"] is None
    assert isinstance(first["duration_ms"], float) and first["level"] == "INFO"
    assert isinstance(first["time"], str) and first["message"].startswith("GET /collections/")
    assert isinstance(lines[1]["key_id"], int) and lines[1]["status"] == 200
    assert keys["admin"] not in json_lines.getvalue()


def test_every_line_of_a_request_carries_its_id_even_when_it_crashes(
    app_client: TestClient, json_lines: io.StringIO
) -> None:
    answer = app_client.get("/test-boom", headers={"X-Request-ID": "crash-1"})
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "crash-1"
    assert answer.headers["content-type"] == "application/problem+json"
    lines = records(json_lines)
    by_logger = {line["logger"]: line for line in lines}
    assert by_logger["cim.test"]["request_id"] == "crash-1"  # from the route's thread
    assert by_logger["cim.api"]["request_id"] == "crash-1"  # the 500 handler, with traceback
    assert "RuntimeError: boom" in str(by_logger["cim.api"]["exc_info"])
    assert by_logger["cim.access"]["status"] == 500
    assert by_logger["cim.access"]["route"] == "/test-boom"


def test_audit_rows_carry_the_request_id(
    app_client: TestClient, city: City, keys: dict[str, str], engine: Engine
) -> None:
    request_id = f"audit-{uuid.uuid4().hex}"  # audit rows stay: unique per run
    headers = {"X-API-Key": keys["reader"], "X-Request-ID": request_id}
    answer = app_client.get("/collections/pipes_RQ/items", headers=headers)
    assert answer.status_code == 200
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT request_id, resource FROM audit_log WHERE request_id = :id"),
            {"id": request_id},
        ).all()
    assert len(rows) == 1 and "pipes_RQ" in rows[0].resource


def test_formats() -> None:
    assert wants_json("auto", io.StringIO()) and not wants_json("text", io.StringIO())

    def record(request_id: str | None) -> logging.LogRecord:
        made = logging.LogRecord("cim.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
        made.request_id = request_id
        return made

    assert make_formatter("text").format(record("r-1")).endswith("INFO cim.x [r-1] hello you")
    assert make_formatter("text").format(record(None)).endswith("INFO cim.x hello you")
    parsed = json.loads(make_formatter("json").format(record("r-1")))
    assert parsed["message"] == "hello you" and parsed["request_id"] == "r-1"
    outside = logging.LogRecord("cim.x", logging.INFO, __file__, 1, "no request", (), None)
    assert RequestIdFilter().filter(outside) and getattr(outside, "request_id", "") is None


@pytest.mark.parametrize("log_format", ["json", "text", "auto"])
def test_the_cli_formats_as_the_server(log_format: str) -> None:
    """``cim``'s entry point applies CIM_LOG_FORMAT (auto, through a pipe: JSON)."""
    script = (
        "import logging, sys; from cli.main import setup_logging; setup_logging(); "
        "logging.getLogger('cim.cli').warning('disk %s full', 'D')"
    )
    python = str(Path(CIM).with_name("python"))
    done = subprocess.run(
        [python, "-c", script],
        env=cli_env("postgresql://x/y", CIM_LOG_FORMAT=log_format),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    if log_format == "text":
        assert done.stderr.rstrip().endswith("WARNING cim.cli disk D full")
    else:
        line = json.loads(done.stderr.splitlines()[-1])
        assert line["message"] == "disk D full" and line["level"] == "WARNING"
        assert line["request_id"] is None
