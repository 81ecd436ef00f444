"""Bench: what CesiumJS really requests for a whole-city view from 10 km, in headless Chromium.

``bench/city_view.py`` *computes* the bytes of that view from the tileset with the screen-space
error rule; this bench *measures* them. It generates ``--footprints N`` LOD1 footprints
(``bench/buildings.py``'s city), imports them into a throwaway database, builds the
``buildings`` layer, then opens a bare CesiumJS 1.140 viewer (the npm package's build, no
imagery, no terrain) in Debian's headless Chromium at 1920 x 1080, puts the camera ``--altitude``
metres straight above the city's centre, adds the tileset with CesiumJS's defaults
(``maximumScreenSpaceError`` 16, dynamic screen-space error and foveated loading as shipped)
and waits until it has loaded what the view needs. Every file is served from disk through a
Playwright route, so the bytes counted are exactly the files' sizes.

Prints: bytes and tiles requested (tileset.json included), the deepest level drawn, the time to
all tiles loaded, and a screenshot (``test-artifacts/city-<N>.png``) to look at: buildings
should cover the whole extent. Goal of issue 17: <= 30 MB at 1,000,000 buildings.
Usage: ``python bench/city_browser.py [--footprints 100000] [--altitude 10000] [--compress]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.browser import launch  # noqa: E402
from bench.buildings import SRID, write_footprints  # noqa: E402
from bench.common import bench_database  # noqa: E402

GOAL_MB = 30.0
VIEW = {"width": 1920, "height": 1080}
ORIGIN = "http://city.bench.invalid"
CESIUM = REPO / "node_modules" / "cesium" / "Build" / "Cesium"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script>window.CESIUM_BASE_URL = "/cesium/";</script>
<script src="/cesium/Cesium.js"></script>
<link rel="stylesheet" href="/cesium/Widgets/widgets.css">
<style>html,body,#c{margin:0;width:100%;height:100%}</style></head><body><div id="c"></div>
<script>
const viewer = new Cesium.Viewer("c", {
  baseLayer: false, baseLayerPicker: false, geocoder: false, homeButton: false,
  sceneModePicker: false, navigationHelpButton: false, animation: false, timeline: false,
  fullscreenButton: false, infoBox: false, selectionIndicator: false,
});
viewer.scene.globe.baseColor = Cesium.Color.fromCssColorString("#4a5a4a");
window.bench = { viewer, ready: true };
</script></body></html>"""

LOAD_JS = """async ([altitude]) => {
    const viewer = bench.viewer;
    const tileset = await Cesium.Cesium3DTileset.fromUrl("/tiles/tileset.json");
    const failed = [];
    tileset.tileFailed.addEventListener(e => failed.push(String(e.message)));
    const centre = Cesium.Rectangle.center(tileset.root.boundingVolume.rectangle);  // a region
    viewer.camera.setView({
        destination: Cesium.Cartesian3.fromRadians(centre.longitude, centre.latitude, altitude),
        orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 },
    });
    viewer.scene.primitives.add(tileset);
    const started = performance.now();
    await new Promise(done => {
        const stop = tileset.allTilesLoaded.addEventListener(() => { stop(); done(); });
        setTimeout(done, 600000);
    });
    const seconds = (performance.now() - started) / 1000;
    let drawn = 0, deepest = 0, features = 0;
    const walk = (tile, depth) => {
        if (tile.contentReady && tile.content && tile.content.featuresLength > 0
            && tile._selectedFrame === viewer.scene.frameState.frameNumber) {
            drawn += 1; features += tile.content.featuresLength;
            deepest = Math.max(deepest, depth);
        }
        tile.children.forEach(child => walk(child, depth + 1));
    };
    viewer.scene.render();
    walk(tileset.root, 0);
    return { seconds, failed, drawn, deepest, features };
}"""


def build_city(folder: Path, footprints: int, compress: bool) -> dict[str, Any]:
    """Generate, import and tile the city; the layer's folder and the build's figures."""
    from importers.citymodel import import_buildings
    from tiles.build import build_mesh_layer

    with bench_database(None, srid=SRID) as engine:
        gpkg, mapping = write_footprints(folder, footprints)
        started = time.perf_counter()
        import_buildings(engine, [gpkg], mapping=mapping, replace=True)
        imported = time.perf_counter() - started
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        started = time.perf_counter()
        result = build_mesh_layer(engine, folder / "tiles", "buildings", force=True,
                                  compress=compress)  # fmt: skip
        tiled = time.perf_counter() - started
    return {
        "import_s": round(imported, 1),
        "tiles_s": round(tiled, 1),
        "tiles": result.tiles,
        "layer_mb": round(result.bytes / 1e6, 1),
        "folder": folder / "tiles" / "buildings",
    }


def measure(layer: Path, altitude: float, screenshot: Path) -> dict[str, Any]:
    """Open the layer in headless Chromium from ``altitude``; bytes and tiles it requested."""
    from playwright.sync_api import sync_playwright

    requested: dict[str, int] = {}

    def serve(route: Any) -> None:
        path = route.request.url[len(ORIGIN) :].split("?", 1)[0]
        if path == "/index.html":
            route.fulfill(body=PAGE, content_type="text/html")
        elif path.startswith("/cesium/"):
            route.fulfill(path=str(CESIUM / path[len("/cesium/") :]))
        elif path.startswith("/tiles/"):
            file = layer / path[len("/tiles/") :]
            if not file.is_file():
                route.fulfill(status=404)
                return
            requested[path] = file.stat().st_size
            route.fulfill(path=str(file))
        else:
            route.fulfill(status=404)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport=VIEW)
        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/index.html")
        page.wait_for_function("() => window.bench && bench.ready", timeout=120_000)
        loaded = page.evaluate(LOAD_JS, [altitude])
        screenshot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(screenshot))
        browser.close()
    return {
        "view_mb_measured": round(sum(requested.values()) / 1e6, 2),
        "files_requested": len(requested),
        "tileset_json_mb": round(requested.get("/tiles/tileset.json", 0) / 1e6, 2),
        "tiles_drawn": loaded["drawn"],
        "features_drawn": loaded["features"],
        "deepest_level_drawn": loaded["deepest"],
        "all_tiles_loaded_s": round(loaded["seconds"], 1),
        "tile_failures": len(loaded["failed"]),
        "screenshot": str(screenshot),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footprints", type=int, default=100_000)
    parser.add_argument("--altitude", type=float, default=10_000.0)
    parser.add_argument("--compress", action="store_true", help="meshopt-compressed content")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="cim-bench-city-browser-") as tmp:
        built = build_city(Path(tmp), args.footprints, args.compress)
        layer = built.pop("folder")
        shot = REPO / "test-artifacts" / f"city-{args.footprints}.png"
        figures = measure(layer, args.altitude, shot)
    result = {
        "bench": "city_browser",
        "footprints": args.footprints,
        "compress": args.compress,
        "altitude_m": args.altitude,
        **built,
        **figures,
        "load_average_at_start": load_at_start,
        "load_average": round(os.getloadavg()[0], 1),
        "goal": f"bytes CesiumJS requests for the view <= {GOAL_MB} MB (measured in Chromium)",
        "pass": figures["view_mb_measured"] <= GOAL_MB and figures["tile_failures"] == 0,
    }
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    main()
