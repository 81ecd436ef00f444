"""Drive the viewer in Debian's headless Chromium (Playwright) against a real ``cim serve``.

Opening the viewer while refusing every request that would leave this machine, waiting until
the scene has settled, moving the camera and running tools. Launching Chromium and serving a
database come from :mod:`bench.browser` (shared with ``bench/viewer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.browser import (
    CHROMIUM,
    LOOPBACK,
    SETTLED_JS,
    TILESETS_LOADED_JS,
    VIEWPORT,
    free_port,
    launch,
    served,
)

__all__ = [
    "CHROMIUM",
    "LOOPBACK",
    "SETTLED_JS",
    "TILESETS_LOADED_JS",
    "VIEWPORT",
    "PageWatch",
    "free_port",
    "launch",
    "look_down_at",
    "open_viewer",
    "served",
    "wait_for_tool",
    "wait_settled",
]

ACTION_TIMEOUT_MS = 90_000
"""Playwright's timeout for a page's actions and waits that name none (its default is 30 s)."""


@dataclass
class PageWatch:
    """What a page did: console errors, uncaught exceptions, refused and terrain requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    terrain_tiles: list[str] = field(default_factory=list)


def open_viewer(
    browser: Any, base: str, *, locale: str = "en-US", timeout_ms: float = 60_000
) -> tuple[Any, PageWatch]:
    """A new page on ``base/viewer/``: non-loopback requests are refused and recorded.

    ``locale`` is the browser's language (``navigator.languages``), which the viewer follows:
    English unless a test asks for another (each page has its own context and localStorage)."""
    page = browser.new_page(viewport=VIEWPORT, locale=locale)
    # Clicks and waits without a timeout of their own: Playwright's 30 s was exceeded by a click
    # while the page drew a plan's zones in software WebGL on a loaded two-core machine.
    page.set_default_timeout(ACTION_TIMEOUT_MS)
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
    """Until every tileset (and, with ``globe``, the globe) has loaded the current view.

    Two frames are rendered first: ``tilesLoaded`` is only updated by a frame, so right after
    a camera move it still describes the previous view; and the first frame after a jump sees
    the camera moving, and CesiumJS requests no tile while it moves
    (``cullRequestsWhileMoving``): that frame reports the tilesets loaded with the new
    view's tiles not even requested (a pick then hit a coarse tile whose children were
    still on their way)."""
    for _ in range(2):
        page.evaluate(
            """() => new Promise(resolve => {
                const scene = cim.viewer.scene;
                const remove = scene.postRender.addEventListener(() => { remove(); resolve(); });
                scene.requestRender();
            })"""
        )
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


def wait_for_tool(
    page: Any, result: str, *, timeout_ms: float = 120_000, returned: bool = True
) -> Any:
    """Until a tool has set ``cim.<result>`` or its hint reports a failure; returns the result
    (``returned=False``: only whether it is set, for a result holding Cesium entities, whose
    object graph Playwright cannot serialise).

    A failure (the hint marked ``error``, in any language) fails the test with the hint's
    message (the API's error)."""
    page.wait_for_function(
        "(name) => cim[name] || document.getElementById('tool-hint').classList.contains('error')",
        arg=result,
        timeout=timeout_ms,
    )
    script = "(name) => cim[name]" if returned else "(name) => Boolean(cim[name])"
    value = page.evaluate(script, result)
    assert value, page.evaluate("() => document.getElementById('tool-hint').textContent")
    return value
