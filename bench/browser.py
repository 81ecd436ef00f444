"""Headless Chromium (Playwright) and a ``cim serve`` on a free loopback port.

Shared by ``bench/viewer.py`` and the browser tests (``tests/viewer/harness.py`` builds on it):
launching Chromium with software WebGL, serving a database, and the JavaScript conditions
that say the scene has settled.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",  # WebGL 2 in software: no GPU on CI machines
    "--enable-unsafe-swiftshader",
    # Chromium's own background connections fail (and stall) on a machine without internet.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1024, "height": 640}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

# Every tileset has loaded what the current view needs (or gave up on a tile, which the
# tests report); SETTLED_JS also waits for the globe's terrain and imagery tiles.
TILESETS_LOADED_JS = """() => window.cim && window.cim.ready && Object.values(cim.tilesets)
    .every(t => t.failures > 0 || (t.tileset && t.tileset.tilesLoaded))
    && cim.viewer.scene.requestRenderMode
    && (cim.viewer.scene.requestRender(), cim.viewer.dataSourceDisplay.ready)"""
SETTLED_JS = f"() => ({TILESETS_LOADED_JS})() && cim.viewer.scene.globe.tilesLoaded"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def served(cim: str, env: dict[str, str], *, timeout: float = 60.0) -> Iterator[str]:
    """``cim serve`` on a free loopback port; yields its base URL and stops it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [cim, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "CIM_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"cim serve exited: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("cim serve did not answer /health in time")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, with software WebGL (never a Playwright-downloaded build)."""
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/bootstrap (installs chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
