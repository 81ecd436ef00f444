"""A real ``cim serve`` in a subprocess on a free loopback port, for clients that speak HTTP."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import CIM, cli_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


START_TIMEOUT_S = 90
"""How long ``cim serve`` may take to answer /health: 30 s was exceeded by a two-worker server
started while both cores ran other tests."""


@dataclass(frozen=True)
class Server:
    """A running ``cim serve``: its base URL, its process and its log file."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def cim_serve(database_url: str, data_dir: Path, **env: str) -> Iterator[str]:
    """Run ``cim serve`` against ``database_url``; yields its base URL, stops it afterwards."""
    with cim_server(database_url, data_dir, **env) as server:
        yield server.base


@contextmanager
def cim_server(database_url: str, data_dir: Path, *args: str, **env: str) -> Iterator[Server]:
    """Run ``cim serve ARGS`` against ``database_url`` until its /health answers; stop it after."""
    port = free_port()
    settings = {"CIM_DATA_DIR": str(data_dir), "CIM_COLLECTION_CACHE_SECONDS": "0", **env}
    environment = cli_env(database_url, **settings)
    log_path = data_dir / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [CIM, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(0.2)
        yield Server(base, process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
