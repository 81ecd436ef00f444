"""The ``pointcloud`` tiles layer (py3dtiles in its own venv): point counts, schema, placement.

Oracles are independent of the tiler: laspy reads the samples, pyproj places them (EPSG:2994 ->
lon/lat, heights feet -> metres taken as ellipsoidal, -> ECEF EPSG:4978), and the .pnts files are
decoded here from their binary layout. The py3dtiles venv is installed by
``scripts/install_py3dtiles`` when missing (a local package mirror makes that ~20 s).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import CRS, Transformer
from sqlalchemy import Engine

from api.main import create_app
from cim.config import CimSettings
from cim.db.engine import make_engine
from cim.errors import TilingError
from importers.pointcloud import import_pointcloud
from tests.conftest import REPO, SHARED_SAMPLES, migrated_database
from tests.tiles.checks import tileset_validator
from tiles.pointcloud import VENV, Cloud, build_pointcloud_layer, convert

SIMPLE = SHARED_SAMPLES / "terrain" / "laspy_simple.las"
AUTZEN = SHARED_SAMPLES / "terrain" / "laspy_autzen_trim.laz"
SRID = 32610


@pytest.fixture(scope="session")
def py3dtiles_venv() -> Path:
    """The py3dtiles venv, installed by the project's script when missing."""
    done = subprocess.run(
        [str(REPO / "scripts" / "install_py3dtiles")], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        pytest.skip(f"py3dtiles could not be installed (no package index?): {done.stderr[-300:]}")
    return VENV


@dataclass
class Layer:
    engine: Engine
    url: str
    data_dir: Path
    datasets: dict[int, Path]
    """dataset id -> its sample file."""

    @property
    def folder(self) -> Path:
        return self.data_dir / "tiles" / "pointcloud"


@pytest.fixture(scope="module")
def layer(
    server_url: str, py3dtiles_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Layer]:
    url = migrated_database(server_url, "cim_test_pointcloud_tiles", srid=SRID)
    engine = make_engine(url)
    data_dir = tmp_path_factory.mktemp("pointcloud-data")
    simple = import_pointcloud(engine, [SIMPLE], data_dir=data_dir, crs="EPSG:2994")
    autzen = import_pointcloud(engine, [AUTZEN], data_dir=data_dir)
    result = build_pointcloud_layer(engine, data_dir / "tiles", jobs=1)
    assert result.status == "built" and result.features == 1065 + 110_000
    yield Layer(engine, url, data_dir, {simple.dataset.id: SIMPLE, autzen.dataset.id: AUTZEN})
    engine.dispose()


def read_pnts(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Positions (n, 3) and batch table arrays of a .pnts file, from its binary layout."""
    data = path.read_bytes()
    magic, version, length, ft_json, ft_bin, bt_json, _ = struct.unpack_from("<4s6I", data)
    assert magic == b"pnts" and version == 1 and length == len(data)
    start = 28
    feature = json.loads(data[start : start + ft_json])
    body = data[start + ft_json : start + ft_json + ft_bin]
    count = feature["POINTS_LENGTH"]
    offset = feature["POSITION"]["byteOffset"]
    positions = np.frombuffer(body, dtype="<f4", count=count * 3, offset=offset).reshape(-1, 3)
    if "RTC_CENTER" in feature:
        positions = positions + np.array(feature["RTC_CENTER"])
    batch: dict[str, np.ndarray] = {}
    if bt_json:
        table = json.loads(data[start + ft_json + ft_bin : start + ft_json + ft_bin + bt_json])
        binary = data[start + ft_json + ft_bin + bt_json :]
        for name, spec in table.items():
            assert spec["componentType"] == "UNSIGNED_BYTE" and spec["type"] == "SCALAR"
            batch[name] = np.frombuffer(
                binary, dtype=np.uint8, count=count, offset=spec["byteOffset"]
            )
    return positions.astype(np.float64), batch


def shown_tiles(
    tileset: Path, world: np.ndarray | None = None, refine: str = "REPLACE"
) -> Iterator[tuple[Path, np.ndarray]]:
    """(.pnts file, world matrix) of every tile shown at full refinement: leaves and ADD tiles
    (a REPLACE tile's points are a preview of its children), through external tilesets."""
    document = json.loads(tileset.read_text())

    def visit(tile: dict[str, Any], matrix: np.ndarray, refine: str) -> Iterator[Any]:
        refine = tile.get("refine", refine)
        if "transform" in tile:
            matrix = matrix @ np.array(tile["transform"]).reshape(4, 4).T
        children = tile.get("children", [])
        if "content" in tile:
            file = tileset.parent / tile["content"]["uri"].split("?", 1)[0]
            if file.suffix == ".json":
                yield from shown_tiles(file, matrix, refine)
            elif refine == "ADD" or not children:
                yield file, matrix
        for child in children:
            yield from visit(child, matrix, refine)

    yield from visit(document["root"], np.identity(4) if world is None else world, refine)


def oracle_ecef(path: Path) -> np.ndarray:
    """The sample's points in ECEF by pyproj: EPSG:2994 -> lon/lat, feet -> metres, -> 4978."""
    data = laspy.read(path)
    lon, lat = Transformer.from_crs(2994, 4326, always_xy=True).transform(data.x, data.y)
    x, y, z = Transformer.from_crs(4979, 4978, always_xy=True).transform(
        lon, lat, np.asarray(data.z) * 0.3048
    )
    return np.column_stack([x, y, z])


def inside_box(box: list[float], points: np.ndarray, slack: float = 1.0) -> bool:
    """Whether every point lies in the oriented box (``slack`` metres around it)."""
    centre, axes = np.array(box[:3]), np.array(box[3:]).reshape(3, 3)
    lengths = np.linalg.norm(axes, axis=1)
    local = (points - centre) @ (axes / lengths[:, None]).T
    return bool(np.all(np.abs(local) <= lengths + slack))


def test_point_counts_and_classes_equal_laspys(layer: Layer) -> None:
    for dataset_id, sample in layer.datasets.items():
        data = laspy.read(sample)
        tiles = list(shown_tiles(layer.folder / str(dataset_id) / "tileset.json"))
        decoded = [read_pnts(file) for file, _ in tiles]
        assert sum(len(positions) for positions, _ in decoded) == len(data.points)
        classes = np.concatenate([batch["classification"] for _, batch in decoded])
        expected = np.bincount(np.asarray(data.classification), minlength=32)
        assert np.array_equal(np.bincount(classes, minlength=32), expected)


def test_tilesets_pass_the_schema_and_semantic_checks(layer: Layer) -> None:
    files = sorted(layer.folder.rglob("*.json"))
    assert len(files) >= 3  # the layer's root and one per dataset
    for path in files:
        document = json.loads(path.read_text())
        errors = [e.message for e in tileset_validator().iter_errors(document)]
        assert errors == [], (path, errors)
        assert document["geometricError"] >= document["root"]["geometricError"]

        def visit(tile: dict[str, Any], parent_error: float, path: Path = path) -> None:
            assert tile["geometricError"] <= parent_error
            assert tile.get("refine", "ADD") in ("ADD", "REPLACE")
            if "content" in tile:
                uri = tile["content"]["uri"]
                assert (path.parent / uri.split("?", 1)[0]).is_file(), uri
                assert uri.endswith(".json") or "?v=" in uri  # build tag: immutable caching
            for child in tile.get("children", []):
                visit(child, tile["geometricError"])

        visit(document["root"], document["geometricError"])
    root = json.loads((layer.folder / "tileset.json").read_text())
    uris = [child["content"]["uri"] for child in root["root"]["children"]]
    assert uris == [f"{dataset_id}/tileset.json" for dataset_id in sorted(layer.datasets)]


def test_bounding_volumes_and_points_sit_where_pyproj_puts_them(layer: Layer) -> None:
    root = json.loads((layer.folder / "tileset.json").read_text())["root"]
    for child in root["children"]:
        sample = layer.datasets[child["extras"]["dataset_id"]]
        expected = oracle_ecef(sample)
        assert inside_box(root["boundingVolume"]["box"], expected)
        assert inside_box(child["boundingVolume"]["box"], expected)
        tileset = layer.folder / child["content"]["uri"]
        placed = []
        for file, world in shown_tiles(tileset):
            positions, _ = read_pnts(file)
            placed.append(positions @ world[:3, :3].T + world[:3, 3])
        decoded = np.concatenate(placed)
        # the same cloud: extremes within 0.5 m (heights in feet would be off by ~300 m)
        assert np.allclose(decoded.min(axis=0), expected.min(axis=0), atol=0.5)
        assert np.allclose(decoded.max(axis=0), expected.max(axis=0), atol=0.5)
        assert np.allclose(decoded.mean(axis=0), expected.mean(axis=0), atol=0.5)


def test_tiles_are_served_under_tiles_pointcloud(layer: Layer) -> None:
    settings = CimSettings(database_url=layer.url, data_dir=layer.data_dir)
    dataset_id = min(layer.datasets)
    nested = json.loads((layer.folder / str(dataset_id) / "tileset.json").read_text())
    content = next(t["content"]["uri"] for t in _walk(nested["root"]) if "content" in t)
    with TestClient(create_app(settings)) as client:
        listed = {entry["layer"]: entry for entry in client.get("/tiles").json()}
        assert listed["pointcloud"]["url"] == "/tiles/pointcloud/tileset.json"
        root = client.get("/tiles/pointcloud/tileset.json")
        assert root.status_code == 200 and root.headers["cache-control"] == "no-cache"
        child = client.get(f"/tiles/pointcloud/{dataset_id}/tileset.json")
        assert child.status_code == 200 and child.json() == nested
        tile = client.get(f"/tiles/pointcloud/{dataset_id}/{content}")
        assert tile.status_code == 200
        assert "immutable" in tile.headers["cache-control"]
        assert tile.content == (layer.folder / str(dataset_id) / content.split("?")[0]).read_bytes()


def _walk(tile: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield tile
    for child in tile.get("children", []):
        yield from _walk(child)


def test_missing_py3dtiles_says_how_to_install_it(layer: Layer, tmp_path: Path) -> None:
    with pytest.raises(TilingError, match="run scripts/install_py3dtiles"):
        build_pointcloud_layer(layer.engine, tmp_path, force=True, venv=tmp_path / "none")
    assert not (tmp_path / "pointcloud").exists()


def test_a_missing_stored_file_is_a_clear_error(py3dtiles_venv: Path, tmp_path: Path) -> None:
    cloud = Cloud(7, "gone", [tmp_path / "gone.laz"], CRS.from_epsg(2994), 0.3048, None, 1)
    with pytest.raises(TilingError, match=r"dataset 7: its stored file .* is missing"):
        convert(py3dtiles_venv / "bin" / "python", cloud, tmp_path / "out", 1)


def test_no_point_cloud_no_layer(engine: Engine, tmp_path: Path) -> None:
    """The shared test database holds no point cloud: the layer is empty, py3dtiles not run."""
    result = build_pointcloud_layer(engine, tmp_path, venv=tmp_path / "none")
    assert result.status == "empty" and not (tmp_path / "pointcloud").exists()


def test_unchanged_layer_is_skipped_and_unchanged_datasets_reused(
    layer: Layer, tmp_path: Path
) -> None:
    tiles_dir = layer.data_dir / "tiles"
    assert build_pointcloud_layer(layer.engine, tiles_dir).status == "up-to-date"
    # a copy of the layer elsewhere, then one dataset imported again: only it is converted
    other = tmp_path / "tiles"
    shutil.copytree(tiles_dir / "pointcloud", other / "pointcloud")
    autzen = next(i for i, path in layer.datasets.items() if path == AUTZEN)
    kept = other / "pointcloud" / str(autzen) / "tileset.json"
    inode = kept.stat().st_ino
    again = import_pointcloud(
        layer.engine, [SIMPLE], data_dir=layer.data_dir, crs="EPSG:2994", replace=True
    )
    result = build_pointcloud_layer(layer.engine, other, jobs=1)
    assert result.status == "built" and result.features == 1065 + 110_000
    assert kept.stat().st_ino == inode  # hard-linked from the previous build, not converted
    root = json.loads((other / "pointcloud" / "tileset.json").read_text())
    ids = [child["extras"]["dataset_id"] for child in root["root"]["children"]]
    assert ids == [autzen, again.dataset.id]
