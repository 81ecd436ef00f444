"""Batched 3D Model (b3dm) content for ``--spec 1.0`` viewers.

Written by hand to avoid py3dtiles' pitfalls (see README, "3D Tiles"): the batch table is JSON
only (no binary body whose length could be miscounted), ``BATCH_LENGTH`` is always set to the
number of features, and ``_BATCHID`` in the glb is a FLOAT vertex attribute (glTF forbids
UNSIGNED_INT attributes). Every section starts and ends on an 8-byte boundary.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from tiles.gltf import FeatureTable

HEADER_BYTES = 28


def _padded_json(value: dict[str, Any], start: int) -> bytes:
    """JSON padded with spaces so that ``start + len`` is a multiple of 8."""
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return data + b" " * ((-(start + len(data))) % 8)


def encode_b3dm(glb: bytes, features: FeatureTable) -> bytes:
    """A b3dm: header, feature table ``{BATCH_LENGTH}``, JSON batch table, then ``glb``."""
    feature_json = _padded_json({"BATCH_LENGTH": features.count}, HEADER_BYTES)
    batch = {column.name: list(column.values) for column in features.columns}
    batch_json = _padded_json(batch, HEADER_BYTES + len(feature_json)) if batch else b""
    body = glb + b"\0" * ((-len(glb)) % 8)
    total = HEADER_BYTES + len(feature_json) + len(batch_json) + len(body)
    header = struct.pack("<4sIIIIII", b"b3dm", 1, total, len(feature_json), 0, len(batch_json), 0)
    return header + feature_json + batch_json + body


def decode_b3dm(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Feature table JSON, batch table JSON and the glb of a b3dm (for tests and tools)."""
    magic, version, total, ft_json, ft_bin, bt_json, bt_bin = struct.unpack_from("<4sIIIIII", data)
    if magic != b"b3dm" or version != 1 or total != len(data):
        raise ValueError("not a b3dm 1 file")
    offset = HEADER_BYTES
    feature_table = json.loads(data[offset : offset + ft_json])
    offset += ft_json + ft_bin
    batch_table = json.loads(data[offset : offset + bt_json]) if bt_json else {}
    offset += bt_json + bt_bin
    return feature_table, batch_table, data[offset:]
