"""Compressed tile content: ``EXT_meshopt_compression`` + ``KHR_mesh_quantization`` on a glb.

``cim tiles build --compress`` passes every content glb through :func:`compress_glb`:

* normals become signed bytes (``KHR_mesh_quantization``: ``NORMAL`` as normalized ``BYTE``,
  padded to 4 bytes), which loses under 0.5° of direction — invisible in shading;
* every vertex attribute (positions, normals, colours, feature ids) is encoded with
  meshoptimizer's vertex codec (``EXT_meshopt_compression``, mode ``ATTRIBUTES``, bitstream
  version 0 as the extension requires), which is lossless: the positions, colours and feature ids
  CesiumJS decodes are the bytes we wrote. Tiles repeat the colour and id of a feature on each of
  its vertices, which the codec's byte-wise deltas store almost for free;
* triangle indices (the shared vertices of coarse tiles' blocks) are encoded with its index
  codec (mode ``TRIANGLES``, index bitstream version 1), lossless too.

The metadata (``EXT_structural_metadata`` property tables) stays as it is. The encoded data goes
into the GLB's BIN chunk (buffer 0); the bufferViews the accessors name point into a second,
data-less *fallback* buffer, so a reader without the extension cannot load the tile — both
extensions are therefore listed in ``extensionsRequired``. The encoder is the ``meshoptimizer``
package, the Python binding of zeux/meshoptimizer (the library behind ``gltfpack`` and the
decoder CesiumJS ships).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tiles.gltf import decode_glb, pack_glb

EXTENSIONS = ("EXT_meshopt_compression", "KHR_mesh_quantization")
BYTE = 5120
FLOAT = 5126
COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
TYPE_COUNT = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def _encoder() -> Any:
    import meshoptimizer

    meshoptimizer.encode_vertex_version(0)  # EXT_meshopt_compression decodes version 0 only
    meshoptimizer.encode_index_version(1)  # and index version 1
    return meshoptimizer


def compress_glb(data: bytes) -> bytes:
    """``data`` (a glb of ours) with its vertex attributes quantized and meshopt-encoded."""
    document, binary = decode_glb(data)
    attributes: dict[int, str] = {}
    indices: dict[int, int] = {}  # index accessor -> vertex count of its primitive
    for mesh in document.get("meshes", []):
        for primitive in mesh["primitives"]:
            for name, accessor in primitive["attributes"].items():
                attributes[accessor] = name
            if "indices" in primitive:
                vertices = document["accessors"][primitive["attributes"]["POSITION"]]["count"]
                indices[primitive["indices"]] = vertices
    if not attributes:
        return data
    by_view = {document["accessors"][a]["bufferView"]: (a, name) for a, name in attributes.items()}
    index_views = {document["accessors"][a]["bufferView"]: a for a in indices}
    codec = _encoder()
    out = bytearray()
    fallback_length = 0
    for index, view in enumerate(document["bufferViews"]):
        raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        if index in index_views:
            accessor = document["accessors"][index_views[index]]
            fallback_length = _encode_indices(
                codec, out, raw, accessor, indices[index_views[index]], view, fallback_length
            )
            continue
        if index not in by_view:
            view["byteOffset"] = _append(out, raw, align=8)
            continue
        accessor = document["accessors"][by_view[index][0]]
        if by_view[index][1] == "NORMAL":
            raw = _quantized_normals(raw, accessor)
        stride = _element_size(accessor)
        count = accessor["count"]
        encoded = codec.encode_vertex_buffer(
            np.frombuffer(raw, dtype=np.uint8).reshape(count, stride), count, stride
        )
        offset = _append(out, encoded, align=4)
        view.clear()
        view.update(
            {
                "buffer": 1,
                "byteOffset": fallback_length,
                "byteLength": count * stride,
                "byteStride": stride,
                "target": 34962,
                "extensions": {
                    "EXT_meshopt_compression": {
                        "buffer": 0,
                        "byteOffset": offset,
                        "byteLength": len(encoded),
                        "byteStride": stride,
                        "mode": "ATTRIBUTES",
                        "count": count,
                    }
                },
            }
        )
        fallback_length += count * stride
    document["buffers"] = [
        {"byteLength": len(out)},
        {
            "byteLength": fallback_length,
            "extensions": {"EXT_meshopt_compression": {"fallback": True}},
        },
    ]
    for key in ("extensionsUsed", "extensionsRequired"):
        document[key] = sorted({*document.get(key, []), *EXTENSIONS})
    return pack_glb(document, bytes(out))


def _encode_indices(
    codec: Any,
    out: bytearray,
    raw: bytes,
    accessor: dict[str, Any],
    vertex_count: int,
    view: dict[str, Any],
    fallback_length: int,
) -> int:
    """Encode one triangle index view into ``out`` (mode ``TRIANGLES``); ``view`` becomes its
    fallback view; returns the fallback buffer's new length."""
    size = COMPONENT_BYTES[accessor["componentType"]]
    count = int(accessor["count"])
    values = np.frombuffer(raw, dtype=np.uint16 if size == 2 else np.uint32, count=count)
    encoded = codec.encode_index_buffer(values.astype(np.uint32), count, vertex_count)
    offset = _append(out, encoded, align=4)
    fallback_length += (-fallback_length) % 4
    view.clear()
    view.update(
        {
            "buffer": 1,
            "byteOffset": fallback_length,
            "byteLength": count * size,
            "target": 34963,
            "extensions": {
                "EXT_meshopt_compression": {
                    "buffer": 0,
                    "byteOffset": offset,
                    "byteLength": len(encoded),
                    "byteStride": size,
                    "mode": "TRIANGLES",
                    "count": count,
                }
            },
        }
    )
    return fallback_length + count * size


def _append(out: bytearray, data: bytes, *, align: int) -> int:
    out.extend(b"\0" * ((-len(out)) % align))
    offset = len(out)
    out.extend(data)
    return offset


def _element_size(accessor: dict[str, Any]) -> int:
    size = COMPONENT_BYTES[accessor["componentType"]] * TYPE_COUNT[accessor["type"]]
    return size + (-size) % 4


def _quantized_normals(raw: bytes, accessor: dict[str, Any]) -> bytes:
    """Float unit normals -> normalized signed bytes (x, y, z, 0); the accessor says so."""
    if accessor["componentType"] != FLOAT:
        return raw
    normals = np.frombuffer(raw, dtype=np.float32).reshape(-1, 3)
    packed = np.zeros((normals.shape[0], 4), dtype=np.int8)
    packed[:, :3] = np.clip(np.rint(normals * 127.0), -127, 127)
    accessor["componentType"] = BYTE
    accessor["normalized"] = True
    return packed.tobytes()


def decompress_glb(data: bytes) -> bytes:
    """The plain glb of a compressed one (for tests and tools): every meshopt-encoded view
    decoded into the BIN chunk, the extension entries removed, quantized normals kept."""
    document, binary = decode_glb(data)
    if "EXT_meshopt_compression" not in document.get("extensionsUsed", []):
        return data
    import meshoptimizer

    out = bytearray()
    for view in document["bufferViews"]:
        packed = view.get("extensions", {}).get("EXT_meshopt_compression")
        if packed is None:
            raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
            view["byteOffset"] = _append(out, raw, align=8)
            continue
        start = packed["byteOffset"]
        if packed["mode"] == "TRIANGLES":
            decoded = meshoptimizer.decode_index_buffer(
                packed["count"], packed["byteStride"], binary[start : start + packed["byteLength"]]
            )
            length = packed["count"] * packed["byteStride"]  # the binding's array is uint32
            raw = np.ascontiguousarray(decoded).view(np.uint8).reshape(-1)[:length].tobytes()
            del view["extensions"]
            view.update({"buffer": 0, "byteOffset": _append(out, raw, align=4)})
            continue
        # The binding's default mode sizes its output right; its ``dtype=`` mode allocates one
        # element per vertex, not vertex_size bytes (heap overrun in 0.2.30a0), so never use it.
        decoded = meshoptimizer.decode_vertex_buffer(
            packed["count"], packed["byteStride"], binary[start : start + packed["byteLength"]]
        )
        raw = np.ascontiguousarray(decoded).view(np.uint8).reshape(-1).tobytes()
        del view["extensions"]
        view.update({"buffer": 0, "byteOffset": _append(out, raw, align=4)})
    document["buffers"] = [{"byteLength": len(out)}]
    document["extensionsUsed"].remove("EXT_meshopt_compression")
    document["extensionsRequired"].remove("EXT_meshopt_compression")
    return pack_glb(document, bytes(out))
