"""Quantized-mesh terrain: decode the written bytes here and compare with the DEM itself.

The DEM is warped to the storage CRS by the test (rasterio), so the import stores it as is
and the oracle is a textbook bilinear interpolation of that GeoTIFF - independent of the
tiler's sampler. The decoder below follows the quantized-mesh-1.0 spec, not the encoder.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from matplotlib.tri import LinearTriInterpolator, Triangulation
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject

from cim.db.engine import make_engine
from cim.errors import TilingError
from importers.terrain import import_terrain
from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.terrain_support import TERRAIN, bilinear, delete_datasets, srid_database_url
from tiles.terrain import build_terrain
from tiles.terrain.sampler import HeightSampler, load_dems

MAX_ZOOM = 11


@dataclass
class DecodedTile:
    min_height: float
    max_height: float
    u: np.ndarray
    v: np.ndarray
    height: np.ndarray
    triangles: np.ndarray
    edges: dict[str, np.ndarray]
    extensions: dict[int, bytes]


def _zigzag_deltas(raw: np.ndarray) -> np.ndarray:
    values = raw.astype(np.int64)
    deltas = (values >> 1) ^ -(values & 1)
    return np.cumsum(deltas)


def decode(data: bytes) -> DecodedTile:
    """quantized-mesh-1.0 per the spec (github.com/CesiumGS/quantized-mesh)."""
    header = struct.unpack_from("<3d2f4d3d", data, 0)
    offset = 88
    (count,) = struct.unpack_from("<I", data, offset)
    offset += 4
    arrays = []
    for _ in range(3):
        arrays.append(_zigzag_deltas(np.frombuffer(data, "<u2", count, offset)))
        offset += 2 * count
    wide = count > 65536
    size = 4 if wide else 2
    offset += (-offset) % size
    (triangle_count,) = struct.unpack_from("<I", data, offset)
    offset += 4
    encoded = np.frombuffer(data, "<u4" if wide else "<u2", triangle_count * 3, offset)
    offset += size * triangle_count * 3
    indices = np.empty(len(encoded), dtype=np.int64)
    highest = 0
    for i, code in enumerate(encoded.tolist()):
        indices[i] = highest - code
        if code == 0:
            highest += 1
    edges = {}
    for name in ("west", "south", "east", "north"):
        (n,) = struct.unpack_from("<I", data, offset)
        offset += 4
        edges[name] = np.frombuffer(data, "<u4" if wide else "<u2", n, offset).astype(np.int64)
        offset += size * n
    extensions = {}
    while offset < len(data):
        ext_id, length = struct.unpack_from("<BI", data, offset)
        offset += 5
        extensions[ext_id] = data[offset : offset + length]
        offset += length
    assert offset == len(data)
    return DecodedTile(
        min_height=header[3],
        max_height=header[4],
        u=arrays[0],
        v=arrays[1],
        height=header[3] + arrays[2] / 32767.0 * (header[4] - header[3]),
        triangles=indices.reshape(-1, 3),
        edges=edges,
        extensions=extensions,
    )


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = 180.0 / 2**z
    return -180 + x * size, -90 + y * size, -180 + (x + 1) * size, -90 + (y + 1) * size


@pytest.fixture(scope="module")
def warped_dem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ky4 warped to UTM 16N by the test itself, so the import stores it unchanged."""
    path = tmp_path_factory.mktemp("dem") / "ky4_utm16.tif"
    with rasterio.open(TERRAIN / "ky4_elevation.tif") as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:32616", src.width, src.height, *src.bounds
        )
        out = np.full((height, width), -9999.0, dtype="float32")
        reproject(
            src.read(1),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=src.nodata,
            dst_transform=transform,
            dst_crs="EPSG:32616",
            dst_nodata=-9999.0,
            resampling=Resampling.bilinear,
        )
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1}
    profile |= {"dtype": "float32", "crs": "EPSG:32616", "transform": transform}
    with rasterio.open(path, "w", nodata=-9999.0, **profile) as dst:
        dst.write(out, 1)
    return path


@pytest.fixture(scope="module")
def built(
    server_url: str, warped_dem: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, object], Path]]:
    engine = make_engine(srid_database_url(server_url, 32616))
    delete_datasets(engine)
    result = import_terrain(engine, warped_dem)
    assert result.dataset.transform["reprojected"] is False
    out = tmp_path_factory.mktemp("tiles") / "terrain"
    summary = build_terrain(engine, out, max_zoom=MAX_ZOOM)
    yield summary, out
    delete_datasets(engine)
    engine.dispose()


def test_layer_json_describes_the_tiles_on_disk(built: tuple[dict[str, object], Path]) -> None:
    summary, out = built
    layer = json.loads((out / "layer.json").read_text())
    assert layer["format"] == "quantized-mesh-1.0"
    assert layer["scheme"] == "tms" and layer["projection"] == "EPSG:4326"
    assert layer["tiles"] == ["{z}/{x}/{y}.terrain?v={version}"]
    assert "octvertexnormals" in layer["extensions"]
    assert layer["maxzoom"] == MAX_ZOOM and len(layer["available"]) == MAX_ZOOM + 1
    assert layer["available"][0] == [{"startX": 0, "startY": 0, "endX": 1, "endY": 0}]
    listed = {
        (z, x, y)
        for z, ranges in enumerate(layer["available"])
        for r in ranges
        for x in range(r["startX"], r["endX"] + 1)
        for y in range(r["startY"], r["endY"] + 1)
    }
    on_disk = {(int(p.parts[-3]), int(p.parts[-2]), int(p.stem)) for p in out.rglob("*.terrain")}
    assert listed == on_disk and summary["tiles"] == len(on_disk)
    # Every tile's parent is available too (CesiumJS walks down from the roots).
    assert all(z == 0 or (z - 1, x // 2, y // 2) in listed for z, x, y in listed)
    west, south, east, north = layer["valid_bounds"]
    assert -85.69 < west < east < -85.49 and 37.99 < south < north < 38.11


def _dem_oracle(warped_dem: Path):  # type: ignore[no-untyped-def]
    with rasterio.open(warped_dem) as src:
        values = src.read(1).astype(np.float64)
        valid = values != src.nodata
        inverse = ~src.transform
    to_utm = Transformer.from_crs(4326, 32616, always_xy=True)

    def heights(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bilinear height, usable mask, outside mask) at lon/lat."""
        x, y = to_utm.transform(lon, lat)
        col, row = inverse * (np.asarray(x), np.asarray(y))
        fc, fr = np.asarray(col) - 0.5, np.asarray(row) - 0.5
        c0, r0 = np.floor(fc).astype(int), np.floor(fr).astype(int)
        rows, cols = values.shape
        inside = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < cols) & (r0 + 1 < rows)
        cc, rr = np.where(inside, c0, 0), np.where(inside, r0, 0)
        usable = inside & valid[rr, cc] & valid[rr, cc + 1] & valid[rr + 1, cc]
        usable &= valid[rr + 1, cc + 1]
        outside = (np.asarray(col) < 0) | (np.asarray(col) > cols) | (np.asarray(row) < 0)
        outside |= np.asarray(row) > rows
        h = np.full(lon.shape, np.nan)
        h[usable] = bilinear(values, fc[usable], fr[usable])
        return h, usable, outside

    return heights


def test_decoded_meshes_stay_within_each_levels_declared_error(
    built: tuple[dict[str, object], Path], warped_dem: Path
) -> None:
    summary, out = built
    declared = {int(z): float(e) for z, e in summary["max_error"].items()}  # type: ignore[attr-defined]
    oracle = _dem_oracle(warped_dem)
    checked_vertices = checked_nodes = 0
    for path in sorted(out.rglob("*.terrain")):
        z, x, y = int(path.parts[-3]), int(path.parts[-2]), int(path.stem)
        tile = decode(gzip.decompress(path.read_bytes()))
        west, south, east, north = tile_bounds(z, x, y)
        lon = west + tile.u / 32767 * (east - west)
        lat = south + tile.v / 32767 * (north - south)
        # Height quantization and u/v rounding add a little to the meshing error.
        slack = (tile.max_height - tile.min_height) / 32767 + 0.05
        # Vertices: within the declared error of the DEM; 0 well outside it.
        expected, usable, outside = oracle(lon, lat)
        assert np.all(np.abs(tile.height[usable] - expected[usable]) <= declared[z] + slack)
        assert np.all(np.abs(tile.height[outside]) <= slack)
        checked_vertices += int(usable.sum())
        # The mesh surface at the tile's 218 x 218 sample nodes (what the budget bounds).
        nodes = np.linspace(0.0, 1.0, 218)
        node_lon, node_lat = np.meshgrid(
            west + nodes * (east - west), south + nodes * (north - south)
        )
        surface = LinearTriInterpolator(Triangulation(lon, lat, tile.triangles), tile.height)
        mesh = np.asarray(surface(node_lon, node_lat).filled(np.nan))
        assert not np.isnan(mesh).any(), "the triangles must cover the whole tile"
        want, ok, _ = oracle(node_lon, node_lat)
        # Nodes next to nodata fall back to a pixel value in the tiler, so compare usable ones.
        assert np.all(np.abs(mesh[ok] - want[ok]) <= declared[z] + slack), (z, x, y)
        checked_nodes += int(ok.sum())
        # Counter-clockwise triangles, in-range indices, octvertexnormals present.
        a, b, c = tile.triangles.T
        area = (tile.u[b] - tile.u[a]) * (tile.v[c] - tile.v[a]) - (tile.u[c] - tile.u[a]) * (
            tile.v[b] - tile.v[a]
        )
        assert np.all(area > 0)
        assert tile.triangles.max() < len(tile.u)
        assert len(tile.extensions[1]) == 2 * len(tile.u)
        # Edge lists are exactly the border vertices (CesiumJS hangs its skirts on them).
        assert set(tile.edges["west"]) == set(np.flatnonzero(tile.u == 0))
        assert set(tile.edges["east"]) == set(np.flatnonzero(tile.u == 32767))
        assert set(tile.edges["south"]) == set(np.flatnonzero(tile.v == 0))
        assert set(tile.edges["north"]) == set(np.flatnonzero(tile.v == 32767))
    assert checked_vertices > 200 and checked_nodes > 5_000


def test_neighbours_share_corner_heights(built: tuple[dict[str, object], Path]) -> None:
    _, out = built
    corners: dict[tuple[int, float, float], list[float]] = {}
    for path in out.rglob("*.terrain"):
        z, x, y = int(path.parts[-3]), int(path.parts[-2]), int(path.stem)
        tile = decode(gzip.decompress(path.read_bytes()))
        west, south, east, north = tile_bounds(z, x, y)
        for u, v, lon, lat in ((0, 0, west, south), (32767, 0, east, south),
                               (0, 32767, west, north), (32767, 32767, east, north)):  # fmt: skip
            index = np.flatnonzero((tile.u == u) & (tile.v == v))
            assert len(index) == 1  # every tile has its four corners
            corners.setdefault((z, round(lon, 9), round(lat, 9)), []).append(
                float(tile.height[index[0]])
            )
    shared = [h for h in corners.values() if len(h) > 1]
    assert len(shared) >= 4, "the upper levels must have neighbouring tiles"
    for heights in shared:
        assert max(heights) - min(heights) < 0.01


def test_local_coordinates_only_cannot_be_tiled(server_url: str, tmp_path: Path) -> None:
    engine = make_engine(srid_database_url(server_url, 3879))
    delete_datasets(engine)
    try:
        import_terrain(engine, TERRAIN / "aalto_raster_dem.tif")
        (tmp_path / "terrain").mkdir()
        (tmp_path / "terrain" / "layer.json").write_text("{}")
        with pytest.raises(TilingError, match="placed on the globe"):
            build_terrain(engine, tmp_path / "terrain", max_zoom=3)
        assert (tmp_path / "terrain" / "layer.json").read_text() == "{}"  # old layer kept
    finally:
        delete_datasets(engine)
        engine.dispose()


def test_cim_tiles_build_layer_terrain(
    built: tuple[dict[str, object], Path], server_url: str, tmp_path: Path
) -> None:
    env = cli_env(srid_database_url(server_url, 32616), CIM_DATA_DIR=str(tmp_path / "data"))
    run = run_cim("tiles", "build", "--layer", "terrain", "--json", env=env)
    assert run.returncode == 0, run.stderr
    (summary,) = json.loads(run.stdout)  # one object per layer built
    assert summary["status"] == "built" and summary["levels"] == [0, 12]  # 27.7 m pixels
    layer = json.loads((tmp_path / "data" / "tiles" / "terrain" / "layer.json").read_text())
    assert layer["maxzoom"] == 12 and summary["tiles"] == len(
        list((tmp_path / "data" / "tiles" / "terrain").rglob("*.terrain"))
    )


def test_tiles_follow_the_overlap_rule(server_url: str, tmp_path: Path) -> None:
    """Finest DEM wins, its nodata falls through to the coarser one, 0 outside both."""
    engine = make_engine(srid_database_url(server_url, 32616))
    delete_datasets(engine)
    try:
        for name, size, value, hole in (
            ("coarse", 30.0, 100.0, False),
            ("fine", 10.0, 500.0, True),
        ):
            cells = int(3000 / size)
            values = np.full((cells, cells), value, dtype="float32")
            if hole:
                values[: cells // 2, : cells // 2] = -9999.0  # north-west quarter missing
            path = tmp_path / f"{name}.tif"
            profile = {"driver": "GTiff", "width": cells, "height": cells, "count": 1}
            profile |= {"dtype": "float32", "crs": "EPSG:32616", "nodata": -9999.0}
            with rasterio.open(
                path, "w", transform=from_origin(620000, 4213000, size, size), **profile
            ) as dst:
                dst.write(values, 1)
            import_terrain(engine, path)
        srid, dems = load_dems(engine)
        assert [d.resolution for d in dems] == [10.0, 30.0]
        sampler = HeightSampler(srid, dems)
        # In the fine DEM; in its nodata quarter (coarse answers); west of both DEMs.
        xs, ys = [622500, 620500, 619000], [4211000, 4212500, 4211000]
        lon, lat = Transformer.from_crs(32616, 4326, always_xy=True).transform(xs, ys)
        heights = sampler.heights(np.asarray(lon), np.asarray(lat))
        assert heights.tolist() == [500.0, 100.0, 0.0]
    finally:
        delete_datasets(engine)
        engine.dispose()
