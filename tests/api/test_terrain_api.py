"""``/terrain``: elevation, profiles and the overlap rule through HTTP, and the served tiles."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from matplotlib.tri import LinearTriInterpolator, Triangulation
from pyproj import Transformer
from rasterio.transform import from_origin
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from cim.db.engine import make_engine
from importers.terrain import import_terrain
from tests.api.server import cim_serve
from tests.conftest import REPO
from tests.terrain_support import TERRAIN, delete_datasets, srid_database_url
from tests.tiles.test_terrain_tiles import decode
from tiles.terrain import build_terrain

INSIDE = [(620000.5, 4210000.5), (625000.25, 4212000.75), (630000.0, 4215000.0)]
OUTSIDE = (600000.0, 4200000.0)


@pytest.fixture(scope="module")
def engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(srid_database_url(server_url, 32616))
    delete_datasets(engine)
    import_terrain(engine, TERRAIN / "ky4_elevation.tif")
    yield engine
    delete_datasets(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def client(
    engine: Engine, server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("data")
    build_terrain(engine, data_dir / "tiles" / "terrain", max_zoom=9)
    settings = CimSettings(database_url=srid_database_url(server_url, 32616), data_dir=data_dir)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _st_value(engine: Engine, x: float, y: float) -> float | None:
    """The stored pixel under (x, y), straight from PostGIS (the oracle of the service)."""
    with engine.connect() as conn:
        value = conn.execute(
            text(
                "SELECT ST_Value(rast, 1, ST_SetSRID(ST_MakePoint(:x, :y), 32616)) "
                "FROM terrain_raster WHERE ST_Intersects(rast, ST_SetSRID(ST_MakePoint(:x, :y), "
                "32616)) LIMIT 1"
            ),
            {"x": x, "y": y},
        ).scalar()
    return None if value is None else float(value)


def test_elevation_in_storage_and_geographic_crs(client: TestClient, engine: Engine) -> None:
    points = ";".join(f"{x},{y}" for x, y in [*INSIDE, OUTSIDE])
    response = client.get("/terrain/elevation", params={"points": points})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["crs"] == "EPSG:32616"
    got = [p["z"] for p in body["points"]]
    assert got[-1] is None  # no DEM there
    for (x, y), z in zip(INSIDE, got, strict=False):
        want = _st_value(engine, x, y)
        assert want is not None and z == pytest.approx(want, abs=1e-6)
    lon, lat = Transformer.from_crs(32616, 4326, always_xy=True).transform(
        *zip(*INSIDE, strict=True)
    )
    geographic = ";".join(f"{a!r},{b!r}" for a, b in zip(lon, lat, strict=True))
    response = client.get("/terrain/elevation", params={"points": geographic, "crs": "EPSG:4326"})
    body = response.json()
    assert body["crs"] == "EPSG:4326" and body["points"][0]["x"] == pytest.approx(lon[0])
    assert [p["z"] for p in body["points"]] == pytest.approx(got[:-1], abs=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"points": "1,2,3"}, "not 'x,y'"),
        ({"points": "a,b"}, "two numbers"),
        ({"points": "1,2", "crs": "EPSG:999999"}, "unknown CRS"),
        ({"points": ";"}, "at least one point"),
        ({"points": "1,2", "crs": "EPSG:4978"}, "not a 2D map CRS"),
        ({"points": "nan,1"}, "finite"),
    ],
)
def test_elevation_rejects_bad_input(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    response = client.get("/terrain/elevation", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def _grid(count: int) -> list[list[float]]:
    """``count`` points on a 100 x n grid inside the DEM (and not all on one pixel)."""
    return [[620000.5 + 37.0 * (k % 100), 4210000.5 + 41.0 * (k // 100)] for k in range(count)]


def test_post_elevation_takes_the_documented_10000_points(
    client: TestClient, engine: Engine
) -> None:
    points = _grid(10_000)
    response = client.post("/terrain/elevation", json={"points": points})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["crs"] == "EPSG:32616" and len(body["points"]) == 10_000
    head = ";".join(f"{x},{y}" for x, y in points[:5])
    assert (
        body["points"][:5]
        == client.get("/terrain/elevation", params={"points": head}).json()["points"]
    )
    last = body["points"][-1]
    assert last["z"] == pytest.approx(_st_value(engine, last["x"], last["y"]), abs=1e-6)


def test_post_elevation_takes_a_geojson_multipoint_in_any_crs(client: TestClient) -> None:
    lon, lat = Transformer.from_crs(32616, 4326, always_xy=True).transform(
        *zip(*INSIDE, strict=True)
    )
    pairs = [[a, b] for a, b in zip(lon, lat, strict=True)]
    multipoint = {"type": "MultiPoint", "coordinates": pairs, "crs": "EPSG:4326"}
    posted = client.post("/terrain/elevation", json=multipoint)
    assert posted.status_code == 200, posted.text
    query = ";".join(f"{a!r},{b!r}" for a, b in pairs)
    got = client.get("/terrain/elevation", params={"points": query, "crs": "EPSG:4326"})
    assert posted.json() == got.json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"points": _grid(10_001)}, "at most 10000 points"),
        ({"points": []}, "at least one point"),
        ({"type": "MultiPoint", "coordinates": []}, "at least one point"),
        ({"points": [[1, 2, 3]]}, "points"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, "type"),
    ],
)
def test_post_elevation_rejects_bad_input(
    client: TestClient, body: dict[str, object], message: str
) -> None:
    response = client.post("/terrain/elevation", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]


def test_post_elevation_refuses_non_finite_numbers(client: TestClient) -> None:
    response = client.post(
        "/terrain/elevation",
        content='{"points": [[NaN, 1], [Infinity, 2]]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


def test_the_point_limit_is_a_setting(engine: Engine, server_url: str, tmp_path: Path) -> None:
    settings = CimSettings(
        database_url=srid_database_url(server_url, 32616), data_dir=tmp_path, terrain_max_points=3
    )
    with TestClient(create_app(settings)) as limited:
        four = _grid(4)
        posted = limited.post("/terrain/elevation", json={"points": four})
        got = limited.get(
            "/terrain/elevation", params={"points": ";".join(f"{x},{y}" for x, y in four)}
        )
        fine = limited.post("/terrain/elevation", json={"points": four[:3]})
    for response in (posted, got):
        assert response.status_code == 400 and "at most 3 points" in response.json()["detail"]
    assert fine.status_code == 200


def test_profile_by_step_and_by_samples(client: TestClient, engine: Engine) -> None:
    line = [[620000.0, 4210000.0], [623000.0, 4214000.0], [626000.0, 4214000.0]]
    by_step = client.post("/terrain/profile", json={"line": line, "step": 100}).json()
    assert by_step["length"] == pytest.approx(8000.0)
    distances = [p["distance"] for p in by_step["points"]]
    assert distances[:3] == [0.0, 100.0, 200.0] and distances[-1] == pytest.approx(8000.0)
    assert len(distances) == 81
    corner = by_step["points"][50]  # 5000 m along: exactly the middle vertex
    assert (corner["x"], corner["y"]) == pytest.approx((623000.0, 4214000.0))
    for point in by_step["points"][::10]:
        assert point["z"] == pytest.approx(_st_value(engine, point["x"], point["y"]), abs=1e-6)
    by_count = client.post(
        "/terrain/profile", json={"line": line, "samples": 5, "crs": "EPSG:32616"}
    ).json()
    assert [p["distance"] for p in by_count["points"]] == pytest.approx([0, 2000, 4000, 6000, 8000])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"line": [[0, 0], [1, 1]], "step": 1, "samples": 3}, "exactly one of step"),
        ({"line": [[0, 0], [1, 1]]}, "exactly one of step"),
        ({"line": [[0, 0]], "step": 1}, "line"),
        ({"line": [[5, 5], [5, 5]], "step": 1}, "zero length"),
        ({"line": [[0, 0], [1e6, 0]], "step": 0.01}, "at most"),
        ({"line": [[1e308, 0], [-1e308, 0]], "samples": 3}, "line"),
        # found by schemathesis: a denormal step overflowed the sample count (500)
        ({"line": [[0, 0], [1, 0]], "step": 5e-324}, "at most"),
        ({"line": [[0, 0], [1, 0, 2, 3]], "step": 1}, "line"),
        ({"line": [[0, "NaN"], [1, 0]], "step": 1}, "line"),
    ],
)
def test_profile_rejects_bad_input(
    client: TestClient, body: dict[str, object], message: str
) -> None:
    response = client.post("/terrain/profile", json=body)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_finer_dem_wins_and_its_nodata_falls_through(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    # A 10 m DEM of constant 500 m over part of ky4 (27.7 m), with a nodata hole.
    values = np.full((100, 100), 500.0, dtype="float32")
    values[40:60, 40:60] = -9999.0
    path = tmp_path / "fine.tif"
    profile = {"driver": "GTiff", "width": 100, "height": 100, "count": 1, "dtype": "float32"}
    with rasterio.open(
        path, "w", crs="EPSG:32616", transform=from_origin(620000, 4211000, 10, 10),
        nodata=-9999.0, **profile,
    ) as dst:  # fmt: skip
        dst.write(values, 1)
    fine = import_terrain(engine, path)
    try:
        inside, hole, beyond = (620105.0, 4210895.0), (620505.0, 4210505.0), (625000.25, 4212000.75)
        points = ";".join(f"{x},{y}" for x, y in (inside, hole, beyond))
        body = client.get("/terrain/elevation", params={"points": points}).json()["points"]
        assert body[0]["z"] == 500.0 and body[0]["dataset_id"] == fine.dataset.id
        assert body[1]["z"] == pytest.approx(_st_value_coarse(engine, *hole), abs=1e-6)
        assert body[1]["dataset_id"] != fine.dataset.id
        assert body[2]["z"] == pytest.approx(_st_value_coarse(engine, *beyond), abs=1e-6)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dataset WHERE id = :id"), {"id": fine.dataset.id})


def _st_value_coarse(engine: Engine, x: float, y: float) -> float:
    with engine.connect() as conn:
        value = conn.execute(
            text(
                "SELECT ST_Value(rast, 1, ST_SetSRID(ST_MakePoint(:x, :y), 32616)) "
                "FROM terrain_raster WHERE resolution > 20 AND ST_Intersects(rast, "
                "ST_SetSRID(ST_MakePoint(:x, :y), 32616)) LIMIT 1"
            ),
            {"x": x, "y": y},
        ).scalar()
    assert value is not None
    return float(value)


def test_layer_json_and_tiles_are_served_for_cesium(client: TestClient) -> None:
    layer = client.get("/terrain/layer.json")
    assert layer.status_code == 200
    assert layer.headers["content-type"].startswith("application/json")
    assert layer.headers["cache-control"] == "no-cache"
    assert layer.json()["format"] == "quantized-mesh-1.0"
    again = client.get("/terrain/layer.json", headers={"If-None-Match": layer.headers["etag"]})
    assert again.status_code == 304

    version = layer.json()["version"]
    tile = client.get(f"/terrain/0/0/0.terrain?v={version}", headers={"Accept-Encoding": "gzip"})
    assert tile.status_code == 200
    assert tile.headers["content-type"] == "application/vnd.quantized-mesh"
    assert tile.headers["content-encoding"] == "gzip"
    assert "immutable" in tile.headers["cache-control"]
    assert tile.headers["vary"] == "Accept-Encoding"
    decoded = decode(tile.content)  # the client undid the gzip transfer encoding
    assert len(decoded.u) >= 4 and 1 in decoded.extensions

    plain = client.get("/terrain/0/0/0.terrain", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.content == tile.content
    assert plain.headers["etag"] != tile.headers["etag"]
    cached = client.get(
        "/terrain/0/0/0.terrain",
        headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]},
    )
    assert cached.status_code == 304

    missing = client.get("/terrain/20/1/1.terrain")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/terrain/0/0/..%2Flayer.terrain").status_code == 404


def test_stored_tile_is_gzip_on_disk(client: TestClient) -> None:
    settings: CimSettings = client.app.state.settings  # type: ignore[attr-defined]
    raw = (settings.tiles_dir / "terrain" / "0" / "1" / "0.terrain").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert decode(gzip.decompress(raw)).triangles.size > 0


CESIUM = REPO / "node_modules" / "cesium" / "Source" / "Cesium.js"
CESIUM_SCRIPT = """
const Cesium = await import(process.argv[1]);
const [base, tiles] = [process.argv[2], JSON.parse(process.argv[3])];
const provider = await Cesium.CesiumTerrainProvider.fromUrl(base + "/terrain",
  { requestVertexNormals: true });
const out = { normals: provider.hasVertexNormals, tiles: [] };
for (const [level, x, y, lon, lat] of tiles) {
  const cesiumY = (1 << level) - 1 - y;  // CesiumJS counts rows from the north
  const data = await provider.requestTileGeometry(x, cesiumY, level);
  const rect = provider.tilingScheme.tileXYToRectangle(x, cesiumY, level);
  out.tiles.push({
    available: provider.getTileDataAvailable(x, cesiumY, level),
    vertices: data._quantizedVertices.length / 3,
    triangles: data._indices.length / 3,
    normals: data._encodedNormals.length / 2,
    height: data.interpolateHeight(rect, Cesium.Math.toRadians(lon),
                                   Cesium.Math.toRadians(lat)),
  });
}
console.log(JSON.stringify(out));
"""


@pytest.mark.slow
def test_cesiumjs_loads_the_layer_and_reads_our_meshes(client: TestClient, server_url: str) -> None:
    """CesiumJS's own CesiumTerrainProvider (node) parses the served tiles like our decoder."""
    if shutil.which("node") is None or not CESIUM.exists():
        pytest.skip("node and node_modules/cesium are installed by scripts/bootstrap")
    settings: CimSettings = client.app.state.settings  # type: ignore[attr-defined]
    root = settings.tiles_dir / "terrain"
    layer = json.loads((root / "layer.json").read_text())
    ranges = [
        (z, r["startX"], r["startY"]) for z, level in enumerate(layer["available"]) for r in level
    ]
    picks = [(0, 0, 0), *ranges[-2:]]
    requests = []
    expected = []
    for z, x, y in picks:
        tile = decode(gzip.decompress((root / str(z) / str(x) / f"{y}.terrain").read_bytes()))
        size = 180.0 / 2**z
        west, south = -180.0 + x * size, -90.0 + y * size
        lon, lat = -85.5913, 38.0517  # inside the DEM, and inside every picked tile
        assert west <= lon <= west + size and south <= lat <= south + size
        surface = LinearTriInterpolator(
            Triangulation(
                west + tile.u / 32767 * size, south + tile.v / 32767 * size, tile.triangles
            ),
            tile.height,
        )
        requests.append([z, x, y, lon, lat])
        expected.append((len(tile.u), len(tile.triangles), float(surface(lon, lat))))
    with cim_serve(srid_database_url(server_url, 32616), settings.data_dir) as base:
        run = subprocess.run(
            ["node", "--input-type=module", "-e", CESIUM_SCRIPT, "--", CESIUM.as_uri(), base,
             json.dumps(requests)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["normals"] is True
    for got, (vertices, triangles, height) in zip(result["tiles"], expected, strict=True):
        assert got["available"] and got["vertices"] == vertices and got["normals"] == vertices
        assert got["triangles"] == triangles
        assert got["height"] == pytest.approx(height, abs=0.01)
    assert max(height for *_, height in expected) > 100  # a tile with real ground
