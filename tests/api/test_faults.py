"""Faults the API must survive: the database restarted under it.

While the database is down the API answers 503 with Retry-After at once (never a hang or a 500
trace) and it recovers within 2 s after the database is back (pool pre-ping).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.deps import SessionDep
from api.main import create_app
from cim.config import CimSettings
from cim.db import migrate
from cim.db.embedded import EmbeddedCluster
from cim.db.engine import make_engine
from tests.api.server import free_port
from tests.conftest import CIM, cli_env, make_world_readable_tempdir


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedCluster]:
    """A cluster of this test's own, so stopping it does not disturb the other tests."""
    folder = make_world_readable_tempdir("cim-fault-")
    cluster = EmbeddedCluster(folder)
    cluster.start()
    engine = make_engine(cluster.url())
    migrate.upgrade(engine, srid=4547, default_srid=4547)
    engine.dispose()
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _wait_until_up(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def _serve(cluster: EmbeddedCluster, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``cim serve`` with two API workers (and two analysis processes) in a session of its own,
    its output in ``log`` (a file: a pipe nobody reads can fill and stall the server)."""
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [CIM, "serve", "--port", str(port), "--workers", "2"],
            env=cli_env(cluster.url()),
            stdout=subprocess.DEVNULL,
            stderr=output,
            start_new_session=True,
        )
    return server, f"http://127.0.0.1:{port}/health"


def _left_in(session: int) -> list[str]:
    """The live (not zombie) processes of a session, as ``ps`` lines."""
    listed = subprocess.run(
        ["ps", "-s", str(session), "-o", "pid=,stat=,args="], capture_output=True, text=True
    ).stdout.splitlines()
    return [line for line in listed if line.split()[1][0] != "Z"]


def _gone_within(session: int, seconds: float) -> list[str]:
    """Wait until no process of the session is left; what is left after ``seconds`` is killed
    (so a failing test never hangs the suite) and returned."""
    deadline = time.monotonic() + seconds
    while (left := _left_in(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for line in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    return left


def test_database_restart_gives_503_then_recovers(
    own_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    server, health = _serve(own_cluster, log)
    try:
        _wait_until_up(health, time.monotonic() + 60)
        for _ in range(10):  # warm both workers' pools
            assert httpx.get(health, timeout=5).status_code == 200

        own_cluster.stop()
        for _ in range(6):
            started = time.monotonic()
            down = httpx.get(health, timeout=10)
            assert time.monotonic() - started < 6, "the API hung on a dead database"
            assert down.status_code == 503
            assert down.headers["retry-after"]
            assert down.headers["content-type"] == "application/problem+json"
            assert "Traceback" not in down.text

        own_cluster.start()
        back = time.monotonic()
        _wait_until_up(health, back + 2.0)
        assert time.monotonic() - back <= 2.0
    finally:
        server.terminate()
        left = _gone_within(server.pid, 45)
    stderr = log.read_text()
    assert not left, f"still running 45 s after SIGTERM: {left}\n{stderr[-3000:]}"
    assert server.wait(5) == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-2000:]


def test_statement_timeout_is_a_clear_problem(settings: CimSettings) -> None:
    """A query cut by the statement timeout is a 503 QueryTimeout, not 'database down'."""
    settings = settings.model_copy(update={"statement_timeout_ms": 200})
    app = create_app(settings)

    @app.get("/slow")
    def slow(session: SessionDep) -> dict[str, str]:
        session.execute(text("SELECT pg_sleep(2)"))
        return {"done": "yes"}

    with TestClient(app) as client:
        response = client.get("/slow")
    assert response.status_code == 503
    assert response.json()["title"] == "QueryTimeout"
    assert "statement timeout" in response.json()["detail"]


def test_app_starts_while_the_database_is_down(tmp_path: Path) -> None:
    """A worker (re)started during an outage comes up and answers 503, not a crashed server."""
    dead = CimSettings(
        database_url=f"postgresql://cim@127.0.0.1:{free_port()}/cim", data_dir=tmp_path
    )
    with TestClient(create_app(dead)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.headers["retry-after"]
