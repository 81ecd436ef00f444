"""``cim tiles build --compress``: meshopt-encoded content, lossless but for byte normals.

The same small city is tiled plain and compressed; every compressed glb (and the glb inside
each compressed b3dm) passes the Khronos validator, the layers are smaller, and what a reader
decodes — positions, feature ids, colours, property tables — is bit for bit what the plain
layer holds; normals differ by at most the rounding to signed bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from tests.tiles.checks import check_tileset, content_path, read_b3dm
from tests.tiles.conftest import City, validate_gltf
from tests.tiles.test_tiles_build import BUDGET, NONE, decoded
from tiles.build import build_mesh_layer
from tiles.compression import decompress_glb
from tiles.gltf import decode_glb

LAYERS = ("buildings", "pipes")


@pytest.fixture(scope="module")
def both(engine: Engine, city: City, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {"plain": tmp_path_factory.mktemp("plain"), "meshopt": tmp_path_factory.mktemp("mo")}
    for layer in LAYERS:
        for name, folder in out.items():
            result = build_mesh_layer(
                engine, folder, layer, max_triangles=BUDGET, sensitive=NONE,
                compress=name == "meshopt", force=True,
            )  # fmt: skip
            assert result.status == "built"
    return out


def _contents(folder: Path) -> list[Path]:
    return [folder / content_path(t["content"]["uri"]) for t, _ in check_tileset(folder)
            if "content" in t]  # fmt: skip


@pytest.mark.parametrize("layer", LAYERS)
def test_compressed_tiles_pass_the_validator_and_are_smaller(
    both: dict[str, Path], layer: str
) -> None:
    files = _contents(both["meshopt"] / layer)
    report = validate_gltf(files)
    assert {f: r for f, r in report.items() if r["errors"] or r["warnings"]} == {}
    for path in files:
        document, _ = decode_glb(path.read_bytes())
        assert set(document["extensionsRequired"]) >= {
            "EXT_meshopt_compression", "KHR_mesh_quantization"
        }  # fmt: skip
    # tiny tiles are mostly property tables (left as they are); the demo city's ratios are
    # in the README (buildings 0.41, pipes 0.33)
    plain = sum(p.stat().st_size for p in _contents(both["plain"] / layer))
    assert sum(p.stat().st_size for p in files) < plain


@pytest.mark.parametrize("layer", LAYERS)
def test_what_a_reader_decodes_is_what_the_plain_layer_holds(
    both: dict[str, Path], layer: str
) -> None:
    plain, packed = decoded(both["plain"] / layer), decoded(both["meshopt"] / layer)
    assert len(plain) == len(packed)
    for (rows_a, points_a, ids_a, colours_a), (rows_b, points_b, ids_b, colours_b) in zip(
        plain, packed, strict=True
    ):
        assert rows_a == rows_b
        assert np.array_equal(points_a, points_b)
        assert np.array_equal(ids_a, ids_b) and np.array_equal(colours_a, colours_b)


def _normals(path: Path) -> np.ndarray:
    document, binary = decode_glb(decompress_glb(path.read_bytes()))
    accessor = document["accessors"][document["meshes"][0]["primitives"][0]["attributes"]["NORMAL"]]
    view = document["bufferViews"][accessor["bufferView"]]
    raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    if accessor["componentType"] == 5120:  # normalized signed bytes, padded to 4
        return np.frombuffer(raw, dtype=np.int8).reshape(-1, 4)[:, :3] / 127.0
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, 3).astype(np.float64)


def test_normals_are_bytes_within_rounding(both: dict[str, Path]) -> None:
    for plain, packed in zip(
        _contents(both["plain"] / "buildings"), _contents(both["meshopt"] / "buildings"),
        strict=True,
    ):  # fmt: skip
        assert np.abs(_normals(plain) - _normals(packed)).max() <= 0.5 / 127 + 1e-6


def test_compressed_b3dm_validates(engine: Engine, city: City, tmp_path: Path) -> None:
    build_mesh_layer(engine, tmp_path, "buildings", spec="1.0", max_triangles=BUDGET, compress=True)
    files = _contents(tmp_path / "buildings")
    assert files and all(f.suffix == ".b3dm" for f in files)
    for path in files:
        _, _, glb = read_b3dm(path.read_bytes())
        assert "EXT_meshopt_compression" in decode_glb(glb)[0]["extensionsRequired"]
    report = validate_gltf(files)
    assert {f: r for f, r in report.items() if r["errors"] or r["warnings"]} == {}


def test_compression_is_part_of_the_layer_state(engine: Engine, city: City, tmp_path: Path) -> None:
    """Switching --compress on rebuilds an otherwise unchanged layer (and off again)."""
    assert build_mesh_layer(engine, tmp_path, "pipes", sensitive=NONE).status == "built"
    assert build_mesh_layer(engine, tmp_path, "pipes", sensitive=NONE).status == "up-to-date"
    again = build_mesh_layer(engine, tmp_path, "pipes", sensitive=NONE, compress=True)
    assert again.status == "built"
    assert build_mesh_layer(engine, tmp_path, "pipes", sensitive=NONE).status == "built"
