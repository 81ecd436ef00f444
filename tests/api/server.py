"""A real ``cim serve`` in a subprocess on a free loopback port, for clients that speak HTTP."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import CIM, cli_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cim_serve(database_url: str, data_dir: Path, **env: str) -> Iterator[str]:
    """Run ``cim serve`` against ``database_url``; yields its base URL, stops it afterwards."""
    port = free_port()
    settings = {"CIM_DATA_DIR": str(data_dir), "CIM_COLLECTION_CACHE_SECONDS": "0", **env}
    environment = cli_env(database_url, **settings)
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [CIM, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
