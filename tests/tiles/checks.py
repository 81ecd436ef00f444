"""Independent readers and validators for built tilesets (schema, semantics, glb decoding)."""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.conftest import REPO
from tiles.compression import decompress_glb

SCHEMAS = (REPO / ".." / "shared" / "schemas" / "3d-tiles-1.1").resolve()
COMPONENTS = {5126: np.float32, 5120: np.int8, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}
WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}


@cache
def tileset_validator() -> Draft202012Validator:
    """jsonschema validator of tileset.schema.json; $refs resolved from the schema folder."""
    files = {p.name: p for p in SCHEMAS.rglob("*.schema.json")}

    def retrieve(uri: str) -> Resource[Any]:
        return Resource.from_contents(json.loads(files[uri.rsplit("/", 1)[-1]].read_text()))

    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    schema = json.loads(files["tileset.schema.json"].read_text())
    return Draft202012Validator(schema, registry=registry)


def region_inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
        and inner[4] >= outer[4]
        and inner[5] <= outer[5]
    )


def check_tileset(folder: Path) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Schema + semantic checks; returns every tile with its composed (world) transform."""
    tileset = json.loads((folder / "tileset.json").read_text())
    errors = [e.message for e in tileset_validator().iter_errors(tileset)]
    assert errors == [], errors
    assert tileset["root"]["refine"] in ("ADD", "REPLACE")
    assert tileset["geometricError"] >= tileset["root"]["geometricError"]
    out: list[tuple[dict[str, Any], np.ndarray]] = []

    def visit(tile: dict[str, Any], parent: dict[str, Any] | None, world: np.ndarray) -> None:
        if "refine" in tile:
            assert tile["refine"] in ("ADD", "REPLACE")
        if "transform" in tile:
            world = world @ np.array(tile["transform"]).reshape(4, 4).T
        if parent is not None:
            assert tile["geometricError"] <= parent["geometricError"]
            assert region_inside(
                tile["boundingVolume"]["region"], parent["boundingVolume"]["region"]
            ), (tile["boundingVolume"], parent["boundingVolume"])
        if "content" in tile:
            uri = tile["content"]["uri"]
            assert "?v=" in uri  # build tag, so content can be cached as immutable
            assert (folder / content_path(uri)).is_file(), uri
        out.append((tile, world))
        for child in tile.get("children", []):
            visit(child, tile, world)

    visit(tileset["root"], None, np.identity(4))
    return out


def content_path(uri: str) -> str:
    """The file of a content URI (without its ``?v=`` build tag)."""
    return uri.split("?", 1)[0]


def read_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """JSON and BIN of a glb; a meshopt-compressed glb (``--compress``) is decoded first."""
    assert data[:4] == b"glTF"
    data = decompress_glb(data)
    (json_length,) = struct.unpack_from("<I", data, 12)
    document = json.loads(data[20 : 20 + json_length])
    (bin_length,) = struct.unpack_from("<I", data, 20 + json_length)
    return document, data[28 + json_length : 28 + json_length + bin_length]


def read_b3dm(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    magic, version, total, ftj, ftb, btj, btb = struct.unpack_from("<4sIIIIII", data)
    assert (magic, version, total) == (b"b3dm", 1, len(data))
    assert total % 8 == 0 and (28 + ftj) % 8 == 0 and (28 + ftj + ftb + btj) % 8 == 0
    feature_table = json.loads(data[28 : 28 + ftj])
    batch_table = json.loads(data[28 + ftj + ftb : 28 + ftj + ftb + btj]) if btj else {}
    return feature_table, batch_table, data[28 + ftj + ftb + btj + btb :]


def accessor(document: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    acc = document["accessors"][index]
    view = document["bufferViews"][acc["bufferView"]]
    dtype = COMPONENTS[acc["componentType"]]
    width = WIDTH[acc["type"]]
    start = view["byteOffset"] + acc.get("byteOffset", 0)
    element = np.dtype(dtype).itemsize * width
    stride = view.get("byteStride", element)  # quantized normals: 3 bytes padded to 4
    raw = np.frombuffer(binary, dtype=np.uint8, count=acc["count"] * stride, offset=start)
    array = raw.reshape(acc["count"], stride)[:, :element].copy().view(dtype)
    if acc.get("normalized") and dtype == np.int8:
        array = array / 127.0
    return array.reshape(acc["count"], width) if width > 1 else array.reshape(-1)


def property_table(document: dict[str, Any], binary: bytes) -> list[dict[str, Any]]:
    """Rows of the EXT_structural_metadata property table (noData as None; a property the
    table leaves out as its default)."""
    metadata = document["extensions"]["EXT_structural_metadata"]
    table = metadata["propertyTables"][0]
    definitions = metadata["schema"]["classes"][table["class"]]["properties"]
    count = table["count"]
    columns: dict[str, list[Any]] = {}
    for name, definition in definitions.items():
        entry = table["properties"].get(name)
        if entry is None:  # no values: the class's default for every row (a spec reader's)
            columns[name] = [definition.get("default")] * count
            continue
        view = document["bufferViews"][entry["values"]]
        raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        if definition["type"] == "STRING":
            offsets_view = document["bufferViews"][entry["stringOffsets"]]
            offsets = np.frombuffer(
                binary, np.uint32, count + 1, offsets_view["byteOffset"]
            ).tolist()
            values: list[Any] = [raw[offsets[i] : offsets[i + 1]].decode() for i in range(count)]
        else:
            dtype = {"FLOAT32": np.float32, "UINT16": np.uint16, "INT32": np.int32}[
                definition["componentType"]
            ]
            values = np.frombuffer(raw, dtype, count).tolist()
        no_data = definition.get("noData")
        columns[name] = [None if v == no_data else v for v in values]
    return [{k: columns[k][i] for k in columns} for i in range(count)]


def vertices(
    document: dict[str, Any], binary: bytes, world: np.ndarray, id_attribute: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF positions, feature ids and colours of every vertex of a glb tile."""
    positions, ids, colours = [], [], []
    for primitive in document.get("meshes", [{"primitives": []}])[0]["primitives"]:
        attributes = primitive["attributes"]
        gltf = accessor(document, binary, attributes["POSITION"]).astype(np.float64)
        enu = np.column_stack([gltf[:, 0], -gltf[:, 2], gltf[:, 1]])  # y-up -> z-up
        ecef = enu @ world[:3, :3].T + world[:3, 3]
        positions.append(ecef)
        ids.append(accessor(document, binary, attributes[id_attribute]).astype(np.int64))
        if "COLOR_0" in attributes:
            colours.append(accessor(document, binary, attributes["COLOR_0"]))
        else:  # one colour for all: the material's (linear, as COLOR_0 bytes would be)
            factor = document["materials"][primitive["material"]]["pbrMetallicRoughness"]
            rgba = np.round(np.array(factor["baseColorFactor"]) * 255).astype(np.uint8)
            colours.append(np.tile(rgba, (gltf.shape[0], 1)))
        if "indices" in primitive:  # shared vertices: every index names one
            indices = accessor(document, binary, primitive["indices"])
            assert indices.size % 3 == 0 and int(indices.max()) < gltf.shape[0]
        if "NORMAL" not in attributes:  # drawn unlit (roofs alone, seen from afar)
            continue
        normals = accessor(document, binary, attributes["NORMAL"])
        byte_normals = document["accessors"][attributes["NORMAL"]]["componentType"] == 5120
        tolerance = 0.01 if byte_normals else 1e-5  # --compress stores them as signed bytes
        assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=tolerance)
    return np.concatenate(positions), np.concatenate(ids), np.concatenate(colours)


def content_tiles(
    folder: Path,
) -> list[tuple[list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray]]:
    """(property rows, ECEF vertices, vertex feature ids, colours) of every glb tile."""
    out = []
    for tile, world in check_tileset(folder):
        if "content" in tile:
            document, binary = read_glb(
                (folder / content_path(tile["content"]["uri"])).read_bytes()
            )
            rows = property_table(document, binary)
            points, ids, colours = vertices(document, binary, world, "_FEATURE_ID_0")
            out.append((rows, points, ids, colours))
    return out


def storage_to_ecef_oracle(srid: int, points: np.ndarray) -> np.ndarray:
    """pyproj directly (not cim.crs): storage -> lon/lat, then (lon, lat, z as h) -> ECEF."""
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(f"EPSG:{srid}", "EPSG:4326", always_xy=True).transform(
        points[:, 0], points[:, 1]
    )
    to_ecef = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    return np.column_stack(to_ecef.transform(lon, lat, points[:, 2]))


def assert_building_vertices(folder: Path, connection: Any, srid: int) -> int:
    """Every tile vertex is a DB vertex and vice versa (within 1 cm); returns elements seen."""
    from scipy.spatial import cKDTree
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT e.id, ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom) FROM building_element e, "
            "ST_DumpPoints(e.mesh) p WHERE NOT e.is_space ORDER BY e.id"
        )
    ).all()
    ids = np.array([r[0] for r in rows])
    xyz = storage_to_ecef_oracle(srid, np.array([r[1:] for r in rows], dtype=np.float64))
    seen = set()
    for table, points, feature_ids, _ in content_tiles(folder):
        for feature in np.unique(feature_ids):
            element_id = table[feature]["element_id"]
            seen.add(element_id)
            expected = xyz[ids == element_id]
            mine = points[feature_ids == feature]
            assert cKDTree(expected).query(mine)[0].max() < 0.01
            assert cKDTree(mine).query(expected)[0].max() < 0.01
    assert seen == set(ids.tolist())
    return len(seen)


def assert_pipe_solids(folder: Path, connection: Any, srid: int) -> int:
    """Around every vertex of every segment centreline (pyproj) lies a ring of tube vertices
    at the section's radius (circular) or half diagonal (rectangular), within 1 cm."""
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT s.id, s.section_shape, s.diameter_mm, s.width_mm, s.height_mm, "
            "array_agg(ARRAY[ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom)] ORDER BY p.path) "
            "FROM pipe_segment s, ST_DumpPoints(s.geom) p GROUP BY s.id"
        )
    ).all()
    lines = {r[0]: r for r in rows}
    checked = 0
    for table, points, feature_ids, _ in content_tiles(folder):
        for feature, row in enumerate(table):
            if row["table_id"] not in lines:
                continue
            _, shape, diameter, width, height, coords = lines[row["table_id"]]
            if shape == "rectangular" and width and height:
                radius = float(np.hypot(width, height)) / 2000
            else:
                radius = (diameter or 200.0) / 2000
            mine = points[feature_ids == feature]
            centre = storage_to_ecef_oracle(srid, np.array(coords, dtype=np.float64))
            for point in centre:
                distance = np.linalg.norm(mine - point, axis=1)
                assert (np.abs(distance - radius) < 0.01).sum() >= 3, (row["code"], radius)
            checked += 1
    assert checked == len(lines)
    return checked
