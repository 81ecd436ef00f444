"""Viewer bench: time to first frame and to all tiles loaded for the demo city, headless.

The demo city (``data/samples/demo.yaml``) is loaded with ``cim demo --no-serve`` into a
throwaway database (or an existing one: ``--database-url`` + ``--data-dir``), served by
``cim serve``, and opened in Debian's headless Chromium (software WebGL) in a fresh browser
context per run. Baseline: a bare CesiumJS Viewer with the same base map and no data, served
from the same origin, measured the same way. Goal: all tiles loaded within 3 s.

Usage: ``python bench/viewer.py [--runs 3] [--database-url URL --data-dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.browser import SETTLED_JS, VIEWPORT, launch, served  # noqa: E402
from bench.common import bench_database  # noqa: E402

GOAL_SECONDS = 3.0
BASELINE_HTML = """<!doctype html><html><head><meta charset="utf-8">
<script>window.CESIUM_BASE_URL = "/viewer/cesium/";</script>
<script src="/viewer/cesium/Cesium.js"></script>
<link rel="stylesheet" href="/viewer/cesium/Widgets/widgets.css">
<style>html,body,#c{margin:0;width:100%;height:100%}</style></head><body><div id="c"></div>
<script>
const viewer = new Cesium.Viewer("c", {
  baseLayer: Cesium.ImageryLayer.fromProviderAsync(Cesium.TileMapServiceImageryProvider.fromUrl(
    Cesium.buildModuleUrl("Assets/Textures/NaturalEarthII"))),
  baseLayerPicker: false, geocoder: false, homeButton: false, sceneModePicker: false,
  navigationHelpButton: false, animation: false, timeline: false, fullscreenButton: false,
  requestRenderMode: true,
});
window.cim = { viewer, ready: true, tilesets: {}, errors: [], firstFrameMs: null };
viewer.scene.postRender.addEventListener(function f() {
  cim.firstFrameMs = performance.now(); viewer.scene.postRender.removeEventListener(f);
});
</script></body></html>"""


def measure(browser: Any, base: str, *, baseline: bool) -> dict[str, float]:
    """Seconds from navigation to the first frame and to every tile of the view loaded."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    if baseline:
        page.route(
            f"{base}/bench-baseline.html",
            lambda route: route.fulfill(body=BASELINE_HTML, content_type="text/html"),
        )
        page.goto(f"{base}/bench-baseline.html")
    else:
        page.goto(f"{base}/viewer/")
    page.wait_for_function(SETTLED_JS, timeout=300_000, polling=50)
    loaded_ms = page.evaluate("() => performance.now()")
    first_ms = page.evaluate("() => cim.firstFrameMs")
    errors = page.evaluate("() => cim.errors.length")
    context.close()
    return {
        "first_frame_s": first_ms / 1000,
        "all_tiles_loaded_s": loaded_ms / 1000,
        "errors": errors,
    }


def run(base: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        measure(browser, base, baseline=False)  # warm the server's caches and the disk
        viewer = [measure(browser, base, baseline=False) for _ in range(runs)]
        bare = [measure(browser, base, baseline=True) for _ in range(runs)]
        browser.close()
    median = {
        key: statistics.median(r[key] for r in viewer)
        for key in ("first_frame_s", "all_tiles_loaded_s")
    }
    bare_median = {
        key: statistics.median(r[key] for r in bare)
        for key in ("first_frame_s", "all_tiles_loaded_s")
    }
    return {
        "bench": "viewer",
        "runs": runs,
        "first_frame_s": round(median["first_frame_s"], 2),
        "all_tiles_loaded_s": round(median["all_tiles_loaded_s"], 2),
        "bare_cesium_first_frame_s": round(bare_median["first_frame_s"], 2),
        "bare_cesium_all_tiles_loaded_s": round(bare_median["all_tiles_loaded_s"], 2),
        "ratio_vs_bare_cesium": round(
            median["all_tiles_loaded_s"] / bare_median["all_tiles_loaded_s"], 2
        ),
        "layer_errors": max(r["errors"] for r in viewer),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "goal": f"all tiles loaded <= {GOAL_SECONDS} s",
        "pass": median["all_tiles_loaded_s"] <= GOAL_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="an existing demo database (EPSG:32616)")
    parser.add_argument("--data-dir", help="its CIM_DATA_DIR (with the built tiles)")
    args = parser.parse_args()
    cim = str(Path(sys.executable).with_name("cim"))
    with tempfile.TemporaryDirectory(prefix="cim-bench-viewer-", dir="/tmp") as scratch:
        if args.database_url:
            result = serve_and_run(cim, args.database_url, Path(args.data_dir), args.runs)
        else:
            Path(scratch).chmod(0o755)
            with bench_database(None, srid=32616) as engine:
                url = engine.url.render_as_string(hide_password=False)
                started = time.perf_counter()
                env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_DATA_DIR": scratch}
                subprocess.run([cim, "demo", "--no-serve"], env=env, check=True)
                print(f"demo city loaded in {time.perf_counter() - started:.1f} s", flush=True)
                result = serve_and_run(cim, url, Path(scratch), args.runs)
    bare_first = result["bare_cesium_first_frame_s"]
    print(f"first frame       : {result['first_frame_s']} s (bare CesiumJS {bare_first} s)")
    print(
        f"all tiles loaded  : {result['all_tiles_loaded_s']} s "
        f"(bare CesiumJS {result['bare_cesium_all_tiles_loaded_s']} s)"
    )
    print("BENCH " + json.dumps(result))


def serve_and_run(cim: str, url: str, data_dir: Path, runs: int) -> dict[str, Any]:
    env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_DATA_DIR": str(data_dir)}
    with served(cim, env) as base:
        return run(base, runs)


if __name__ == "__main__":
    main()
