"""Drive the viewer in Debian's headless Chromium (Playwright) against a real ``cim serve``.

Shared by the browser tests and ``bench/viewer.py``: launching Chromium with software WebGL,
serving a database on a free loopback port, opening the viewer while refusing every request
that would leave this machine, and waiting until the scene has settled.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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


@dataclass
class PageWatch:
    """What a page did: console errors, uncaught exceptions, refused and terrain requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    terrain_tiles: list[str] = field(default_factory=list)


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, with software WebGL (never a Playwright-downloaded build)."""
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/bootstrap (installs chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def open_viewer(browser: Any, base: str, *, timeout_ms: float = 60_000) -> tuple[Any, PageWatch]:
    """A new page on ``base/viewer/``: non-loopback requests are refused and recorded."""
    page = browser.new_page(viewport=VIEWPORT)
    watch = PageWatch()
    page.on(
        "console",
        lambda message: (
            watch.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    # CesiumJS cancels tile requests the camera no longer needs (net::ERR_ABORTED): not a failure.
    page.on(
        "requestfailed",
        lambda request: (
            watch.failed_requests.append(f"{request.url} {request.failure}")
            if "ERR_ABORTED" not in str(request.failure)
            else None
        ),
    )

    def route(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOOPBACK:
            if parts.path.endswith(".terrain"):
                watch.terrain_tiles.append(parts.path)
            route.continue_()
        else:
            watch.external_requests.append(url)
            route.abort()

    page.route("**/*", route)
    page.goto(f"{base}/viewer/", timeout=timeout_ms)
    page.wait_for_function(
        "() => window.cim && (window.cim.ready || window.cim.errors.length)", timeout=timeout_ms
    )
    return page, watch


def wait_settled(page: Any, *, globe: bool = True, timeout_ms: float = 120_000) -> None:
    """Until every tileset (and, with ``globe``, the globe) has loaded the current view."""
    page.evaluate("() => cim.viewer.scene.requestRender()")
    condition = SETTLED_JS if globe else TILESETS_LOADED_JS
    page.wait_for_function(condition, timeout=timeout_ms, polling=100)


def look_down_at(page: Any, lon: float, lat: float, height: float) -> None:
    """Camera straight down (heading north) from ``height`` m above the ellipsoid."""
    page.evaluate(
        """([lon, lat, h]) => {
            cim.viewer.camera.setView({
                destination: Cesium.Cartesian3.fromDegrees(lon, lat, h),
                orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 },
            });
            cim.viewer.scene.requestRender();
        }""",
        [lon, lat, height],
    )


def wait_for_tool(page: Any, result: str, *, timeout_ms: float = 120_000) -> Any:
    """Until a tool has set ``cim.<result>`` or its hint reports a failure; returns the result.

    A failure fails the test with the hint's message (the API's error)."""
    page.wait_for_function(
        "(name) => cim[name] || /failed/.test(document.getElementById('tool-hint').textContent)",
        arg=result,
        timeout=timeout_ms,
    )
    value = page.evaluate("(name) => cim[name]", result)
    assert value, page.evaluate("() => document.getElementById('tool-hint').textContent")
    return value
