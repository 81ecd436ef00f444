"""Pack triangle meshes and per-feature attributes into one binary glTF (glb) per tile.

Hand-packed rather than through pygltflib: a tile is a handful of flat numpy arrays, and writing
the JSON and buffer directly is several times faster and keeps full control over alignment.
3D Tiles 1.1 features use ``EXT_mesh_features`` (a ``_FEATURE_ID_0`` vertex attribute) and
``EXT_structural_metadata`` (one property table); 3D Tiles 1.0 (b3dm) uses ``_BATCHID`` instead.

A primitive may share its vertices (``indices``, uint16 when it has under 65,536 vertices), go
without normals (CesiumJS then draws it unlit, as it says in its ``MaterialPipelineStage``) and
without vertex colours (one colour for all, in its material's ``baseColorFactor``): the coarse
tiles of a city (:mod:`tiles.blocks`) are lighter that way. A property column whose every value is
its ``default`` has no table entry: readers return the default (``EXT_structural_metadata``).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT = 5126
UNSIGNED_BYTE = 5121
UNSIGNED_SHORT = 5123
UNSIGNED_INT = 5125
TRIANGLES = 4

PropertyType = Literal["STRING", "FLOAT32", "UINT16", "INT32"]


@dataclass
class Primitive:
    """Triangles in glTF axes (y up): 3 vertices each, or ``indices`` into shared vertices;
    one colour per vertex, or ``colour`` (linear RGBA bytes) for all when ``colors`` is None;
    no ``normals``: drawn unlit."""

    positions: npt.NDArray[np.float32]
    normals: npt.NDArray[np.float32] | None
    colors: npt.NDArray[np.uint8] | None
    feature_ids: npt.NDArray[np.float32]
    blend: bool = False
    indices: npt.NDArray[np.int64] | None = None
    colour: tuple[int, int, int, int] = (255, 255, 255, 255)


@dataclass
class PropertyColumn:
    """One attribute of every feature of a tile (row ``i`` = feature id ``i``)."""

    name: str
    type: PropertyType
    values: list[Any]
    description: str = ""
    no_data: Any = None
    """The column's ``noData`` where the type's default (:data:`NO_DATA`) is a real value."""
    default: Any = None
    """The class property's ``default``: when every value is it, the table stores none."""


@dataclass
class FeatureTable:
    """The class name and the columns of the features of one tile."""

    schema_id: str
    class_name: str
    count: int
    columns: list[PropertyColumn] = field(default_factory=list)


NO_DATA: dict[str, Any] = {"STRING": "", "FLOAT32": -9999.0, "UINT16": 0, "INT32": -1}


class _Buffer:
    """The glb BIN chunk under construction and the bufferViews pointing into it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.length = 0
        self.views: list[dict[str, Any]] = []

    def add(self, data: bytes, *, target: int | None = None, align: int = 4) -> int:
        pad = (-self.length) % align
        if pad:
            self.parts.append(b"\0" * pad)
            self.length += pad
        view: dict[str, Any] = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.parts.append(data)
        self.length += len(data)
        self.views.append(view)
        return len(self.views) - 1


def srgb_to_linear(rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """sRGB colour components (0..1) to linear, as glTF vertex colours are linear."""
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _property_arrays(
    column: PropertyColumn, buffer: _Buffer
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Class property definition and property-table entry of one column (8-byte aligned).

    A string column whose every value is empty has no entry (a bufferView cannot be empty);
    the property is optional, so readers see its ``noData``.
    """
    no_data = NO_DATA[column.type] if column.no_data is None else column.no_data
    definition: dict[str, Any] = {"required": False, "noData": no_data}
    if column.description:
        definition["description"] = column.description
    if column.default is not None:
        definition["default"] = column.default
        if all(v == column.default for v in column.values):
            definition["type"] = "STRING" if column.type == "STRING" else "SCALAR"
            if column.type != "STRING":
                definition["componentType"] = column.type
            return definition, None
    if column.type == "STRING":
        definition["type"] = "STRING"
        # one join and one encode per column, not one per value (2.4 s of a 200k-building
        # layer); ASCII text (the usual case) has as many bytes as characters
        texts = ["" if v is None else v for v in column.values]
        joined = "".join(texts)
        if not joined:
            return definition, None
        data = joined.encode("utf-8")
        if len(data) == len(joined):
            lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        else:
            lengths = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
        offsets = np.zeros(len(texts) + 1, dtype=np.uint32)
        np.cumsum(lengths, out=offsets[1:])
        values = buffer.add(data, align=8)
        string_offsets = buffer.add(offsets.tobytes(), align=8)
        entry = {"values": values, "stringOffsets": string_offsets, "stringOffsetType": "UINT32"}
        return definition, entry
    dtype = {"FLOAT32": np.float32, "UINT16": np.uint16, "INT32": np.int32}[column.type]
    array = np.array([no_data if v is None else v for v in column.values], dtype=dtype)
    definition.update({"type": "SCALAR", "componentType": column.type})
    return definition, {"values": buffer.add(array.tobytes(), align=8)}


def encode_glb(
    primitives: list[Primitive], features: FeatureTable | None, *, batch_ids: bool = False
) -> bytes:
    """One glb of ``primitives``; feature ids as EXT_mesh_features, or ``_BATCHID`` (1.0)."""
    buffer = _Buffer()
    meshes = _Meshes(buffer)
    for primitive in primitives:
        if primitive.positions.shape[0]:
            meshes.add(primitive, features=features, batch_ids=batch_ids)
    document: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "cim tiles"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}] if meshes.primitives else [{}],
    }
    if meshes.primitives:
        document["meshes"] = [{"primitives": meshes.primitives}]
        document["materials"] = meshes.materials
        document["accessors"] = meshes.accessors
    if features is not None and not batch_ids:
        document["extensionsUsed"] = ["EXT_mesh_features", "EXT_structural_metadata"]
        document["extensions"] = {"EXT_structural_metadata": _structural_metadata(features, buffer)}
    if buffer.views:
        document["buffers"] = [{"byteLength": buffer.length}]
        document["bufferViews"] = buffer.views
    return pack_glb(document, b"".join(buffer.parts))


class _Meshes:
    """The glTF primitives of one glb with their accessors and (opaque, blended) materials."""

    def __init__(self, buffer: _Buffer) -> None:
        self.buffer = buffer
        self.accessors: list[dict[str, Any]] = []
        self.primitives: list[dict[str, Any]] = []
        self.materials: list[dict[str, Any]] = []
        self.material_index: dict[tuple[bool, tuple[int, int, int, int]], int] = {}

    def accessor(self, array: npt.NDArray[Any], type_: str, component: int, **extra: Any) -> int:
        view = self.buffer.add(np.ascontiguousarray(array).tobytes(), target=ARRAY_BUFFER)
        count = array.shape[0]
        self.accessors.append(
            {"bufferView": view, "componentType": component, "count": count, "type": type_} | extra
        )
        return len(self.accessors) - 1

    def index_accessor(self, indices: npt.NDArray[np.int64], vertex_count: int) -> int:
        """The accessor of a primitive's triangle indices: uint16 while they fit."""
        small = vertex_count <= 0xFFFF
        data = indices.reshape(-1).astype(np.uint16 if small else np.uint32)
        view = self.buffer.add(data.tobytes(), target=ELEMENT_ARRAY_BUFFER)
        component = UNSIGNED_SHORT if small else UNSIGNED_INT
        self.accessors.append(
            {"bufferView": view, "componentType": component, "count": data.size, "type": "SCALAR"}
        )
        return len(self.accessors) - 1

    def material(self, blend: bool, colour: tuple[int, int, int, int]) -> int:
        """The index of the opaque or the blended material of ``colour`` (linear bytes,
        multiplying the vertex colours), added on first use."""
        key = (blend, colour)
        if key not in self.material_index:
            self.material_index[key] = len(self.materials)
            self.materials.append(
                {
                    "name": "transparent" if blend else "opaque",
                    "pbrMetallicRoughness": {
                        "baseColorFactor": [c / 255 for c in colour],
                        "metallicFactor": 0.0,
                        "roughnessFactor": 1.0,
                    },
                    "alphaMode": "BLEND" if blend else "OPAQUE",
                    "doubleSided": True,
                }
            )
        return self.material_index[key]

    def add(self, primitive: Primitive, *, features: FeatureTable | None, batch_ids: bool) -> None:
        """Append ``primitive`` (not empty): its vertex accessors, material and feature ids."""
        material = self.material(primitive.blend, primitive.colour)
        positions = primitive.positions
        attributes = {
            "POSITION": self.accessor(
                positions,
                "VEC3",
                FLOAT,
                min=[float(v) for v in positions.min(axis=0)],
                max=[float(v) for v in positions.max(axis=0)],
            )
        }
        if primitive.normals is not None:
            attributes["NORMAL"] = self.accessor(primitive.normals, "VEC3", FLOAT)
        if primitive.colors is not None:
            attributes["COLOR_0"] = self.accessor(
                primitive.colors, "VEC4", UNSIGNED_BYTE, normalized=True
            )
        entry: dict[str, Any] = {"attributes": attributes, "mode": TRIANGLES, "material": material}
        if primitive.indices is not None:
            entry["indices"] = self.index_accessor(primitive.indices, positions.shape[0])
        if batch_ids:
            attributes["_BATCHID"] = self.accessor(primitive.feature_ids, "SCALAR", FLOAT)
        elif features is not None:
            attributes["_FEATURE_ID_0"] = self.accessor(primitive.feature_ids, "SCALAR", FLOAT)
            feature_count = int(np.unique(primitive.feature_ids).size)
            entry["extensions"] = {
                "EXT_mesh_features": {
                    "featureIds": [
                        {"featureCount": feature_count, "attribute": 0, "propertyTable": 0}
                    ]
                }
            }
        self.primitives.append(entry)


def _structural_metadata(features: FeatureTable, buffer: _Buffer) -> dict[str, Any]:
    """The ``EXT_structural_metadata`` extension: schema class and one property table."""
    classes: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for column in features.columns:
        classes[column.name], table_entry = _property_arrays(column, buffer)
        if table_entry is not None:
            table[column.name] = table_entry
    return {
        "schema": {
            "id": features.schema_id,
            "classes": {features.class_name: {"properties": classes}},
        },
        "propertyTables": [
            {"class": features.class_name, "count": features.count, "properties": table}
        ],
    }


def pack_glb(document: dict[str, Any], binary: bytes) -> bytes:
    """glb container; the whole file length is a multiple of 8 (b3dm needs that)."""
    json_bytes = json.dumps(document, separators=(",", ":")).encode("utf-8")
    bin_chunk = binary + b"\0" * ((-len(binary)) % 4)
    head = 12 + 8 + (8 + len(bin_chunk) if binary else 0)
    json_pad = (-len(json_bytes)) % 4
    if (head + len(json_bytes) + json_pad) % 8:
        json_pad += 4
    json_chunk = json_bytes + b" " * json_pad
    total = 12 + 8 + len(json_chunk) + (8 + len(bin_chunk) if binary else 0)
    out = [struct.pack("<4sII", b"glTF", 2, total)]
    out.append(struct.pack("<I4s", len(json_chunk), b"JSON") + json_chunk)
    if binary:
        out.append(struct.pack("<I4s", len(bin_chunk), b"BIN\0") + bin_chunk)
    return b"".join(out)


def decode_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON document and BIN chunk of a glb (for tests and tools)."""
    magic, _version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF":
        raise ValueError("not a glb")
    json_length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + json_length])
    offset = 20 + json_length
    binary = b""
    if offset < total:
        bin_length = struct.unpack_from("<I", data, offset)[0]
        binary = data[offset + 8 : offset + 8 + bin_length]
    return document, binary
