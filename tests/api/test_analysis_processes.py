"""Analyses in processes of their own behind a real ``cim serve`` (``api.analysis_proxy``,
``cli.analysis_processes``): the same answers and audit rows as in process, with the caller's
address and request id carried over; the group runs niced; a dead group is a 503 with
``Retry-After`` while the rest of the API answers; a killed server takes its group and its API
workers along; a hung group is killed whole."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from cli import analysis_processes
from tests.api.server import cim_server
from tests.api.test_sensitive_access import BOX, Networks, _requests
from tests.api.test_sensitive_access import networks as networks  # the fixture
from tests.audit_rows import last_audit_id


def _analysis_group(server: psutil.Process) -> list[psutil.Process]:
    """The analysis processes started by ``server`` (supervisor and workers)."""
    for child in server.children(recursive=True):
        if "cli.analysis_processes" in " ".join(child.cmdline()):
            return [child, *child.children(recursive=True)]
    return []


def _access_lines(log: Path, request_id: str) -> list[dict[str, object]]:
    """The access lines of ``request_id``, complete ones only: two processes append to the log,
    and one may be halfway through its line when it is read (CI once read half a line)."""
    lines = []
    written = log.read_text()
    for line in written[: written.rfind("\n") + 1].splitlines():
        if line.startswith("{") and request_id in line:
            record = json.loads(line)
            if record.get("request_id") == request_id and record.get("logger") == "cim.access":
                lines.append(record)
    return lines


def _audit_rows(engine: Engine, after: int) -> list[tuple[int | None, str, str | None, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT api_key_id, resource, client, request_id FROM audit_log"
                " WHERE id > :after AND action = 'read' ORDER BY id"
            ),
            {"after": after},
        ).all()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def test_analyses_run_niced_apart_with_the_same_answers_and_audit(
    networks: Networks, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "in-process")
    with (
        TestClient(create_app(settings)) as local,
        cim_server(database_url, tmp_path, "--analysis-processes", "1") as server,
    ):
        group = _analysis_group(psutil.Process(server.process.pid))
        assert group, "no analysis process"
        assert all(process.nice() >= 10 for process in group)
        key = {"X-API-Key": networks.secret}
        for number, (method, url, payload, resource, _) in enumerate(_requests(networks)):
            request_id = f"analysis-apart-{number}"
            headers = {**key, "X-Request-ID": request_id}
            if method == "GET":
                expected = local.get(url, params=payload, headers=key)
                start = last_audit_id(engine)
                remote = httpx.get(server.base + url, params=payload, headers=headers, timeout=60)
            else:
                expected = local.post(url, json=payload, headers=key)
                start = last_audit_id(engine)
                remote = httpx.post(server.base + url, json=payload, headers=headers, timeout=60)
            assert remote.status_code == 200, (url, remote.text)
            assert remote.content == expected.content, url
            assert remote.headers["content-type"] == expected.headers["content-type"]
            assert remote.headers["x-request-id"] == request_id
            assert "x-cim-key-id" not in remote.headers
            # one audit row, written over there, naming the key, the caller and the request
            assert _audit_rows(engine, start) == [
                (networks.key_id, resource, "127.0.0.1", request_id)
            ], url
            # two access lines: the API worker's and the analysis process's, both with the key
            lines = _access_lines(server.log, request_id)
            for _ in range(50):  # a worker logs its line just after the answer went out
                if len(lines) >= 2:
                    break
                time.sleep(0.1)
                lines = _access_lines(server.log, request_id)
            assert len(lines) == 2, (url, lines)
            assert {line["key_id"] for line in lines} == {networks.key_id}

        # their SQL runs niced too: the backends of the group's connections (a local database)
        ports = {
            conn.laddr.port
            for process in group
            for conn in process.net_connections(kind="tcp")
            if conn.raddr and conn.raddr.port == engine.url.port
        }
        assert ports, "the analysis processes hold no database connection"
        with engine.connect() as conn:
            backends = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(:ports)"),
                {"ports": list(ports)},
            ).scalars()
            assert {psutil.Process(pid).nice() for pid in backends} == {10}

        # the analysis group dies: analyses get 503 + Retry-After, the rest still answers
        for process in group:
            process.send_signal(signal.SIGKILL)
        psutil.wait_procs(group, timeout=10)
        refused = httpx.post(f"{server.base}/analysis/pipes/query", json=BOX, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["title"] == "AnalysesUnavailable"
        assert int(refused.headers["retry-after"]) > 0
        items = httpx.get(f"{server.base}/collections/pipe_segments/items", timeout=30)
        assert items.status_code == 200


def test_a_killed_server_takes_its_analysis_processes_along(
    database_url: str, tmp_path: Path
) -> None:
    with cim_server(database_url, tmp_path, "--workers", "2") as server:
        front = psutil.Process(server.process.pid)
        group = _analysis_group(front)
        workers = [p for p in group[1:] if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2  # as many as --workers by default, under their supervisor
        socket_folder = next(
            Path(arg).parent for arg in group[0].cmdline() if arg.endswith("analyses.sock")
        )
        assert socket_folder.stat().st_mode & 0o077 == 0  # only this user reaches the socket
        api_workers = [p for p in front.children(recursive=True) if p not in group]
        assert len(api_workers) >= 2
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        _, alive = psutil.wait_procs(group + api_workers, timeout=20)
        for orphan in alive:  # never leave one behind, even when the test fails
            with contextlib.suppress(psutil.NoSuchProcess):
                orphan.kill()
        assert alive == [], "processes outlived the server (API workers die with it too)"
        assert not socket_folder.exists(), "the group left its socket's folder behind"


def test_a_hung_group_is_killed_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A supervisor and a worker that both ignore SIGTERM: stop() kills the process group,
    the worker too (killing the supervisor alone left its workers running)."""
    monkeypatch.setattr(analysis_processes, "STOP_WAIT_S", 0.5)
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    sleeper = ignore + "time.sleep(60)"
    child = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {sleeper!r}]); "
    supervisor = subprocess.Popen(
        [sys.executable, "-c", ignore + child + "time.sleep(60)"], process_group=0
    )
    deadline = time.monotonic() + 10
    while len(psutil.Process(supervisor.pid).children()) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = psutil.Process(supervisor.pid).children()[0]
    folder = tmp_path / "sockets"
    folder.mkdir()
    analysis_processes.AnalysisGroup(supervisor, folder / "analyses.sock").stop()
    assert supervisor.returncode == -signal.SIGKILL
    _, alive = psutil.wait_procs([worker], timeout=5)
    assert alive == []
    assert not folder.exists()
