"""``importers.pipes.binary_columns.tuples`` against a row-by-row oracle: every row's field
count, then each field's length word (-1 for NULL) and value bytes, as the PostgreSQL binary
COPY format lays them out - whatever the mix of fixed-width, variable-width and NULL values."""

from __future__ import annotations

import datetime
import itertools
import json
import struct

import numpy as np
import pytest

from importers.pipes.binary_columns import Column, bigints, blobs, floats, jsonb, texts, tuples


def reference(columns: list[Column]) -> tuple[bytes, bytes]:
    """The tuples built one row and one field at a time with ``struct``, and a mask of the
    bytes left to the caller (1: room after a value's ``width`` bytes, as tuples_with_mesh
    leaves for the triangles)."""
    rows = len(columns[0].lengths)
    cursors = [0] * len(columns)
    out = bytearray()
    room = bytearray()
    for row in range(rows):
        out += struct.pack(">h", len(columns))
        room += b"\0\0"
        for k, column in enumerate(columns):
            length = int(column.lengths[row])
            out += struct.pack(">i", length)
            room += b"\0" * 4
            if length < 0:
                continue
            taken = column.width or length
            out += column.data[cursors[k] : cursors[k] + taken].tobytes() + b"\0" * (length - taken)
            room += b"\0" * taken + b"\1" * (length - taken)
            cursors[k] += taken
    return bytes(out), bytes(room)


def _room(rows: int, rng: np.random.Generator) -> Column:
    """Like the mesh column of tuples_with_mesh: 4 bytes written, more bytes of room."""
    return Column(rng.integers(0, 255, 4 * rows).astype(np.uint8), 4 + rng.integers(0, 9, rows), 4)


@pytest.mark.parametrize("rows", [0, 1, 2, 50])
@pytest.mark.parametrize("seed", range(6))
def test_tuples_equal_the_row_by_row_layout(rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sparse = rng.random(rows)
    sparse[rng.random(rows) < 0.3] = np.nan  # fixed width with NULLs
    words = np.array(
        [None if k == 0 else "管" * int(k) for k in rng.integers(0, 4, rows)], dtype=object
    )
    pool = [
        bigints(rng.integers(0, 1 << 40, rows)),
        floats(rng.random(rows)),
        floats(sparse),
        texts(words),
        jsonb([{"k": int(v)} if v % 2 else {} for v in rng.integers(0, 9, rows)]),
        bigints(rng.integers(0, 9, rows)),
    ]
    chosen = [pool[i] for i in rng.permutation(len(pool))[: 1 + seed % len(pool)]]
    columns = [*chosen, _room(rows, rng)] if seed % 2 else chosen
    out = tuples(columns)
    expected, room = reference(columns)
    assert len(out) == len(expected)
    out[np.frombuffer(room, dtype=np.uint8) == 1] = 0  # the caller's bytes, unwritten
    assert bytes(out) == expected


def test_jsonb_values_read_back_as_json_dumps_wrote_them() -> None:
    """The JSON text parses to what ``json.dumps(default=str)`` gave, for what attributes hold:
    text in any script, numbers, nulls, nested values, dates (as ``str()``), integer keys and
    integers beyond 64 bits; NaN is null; an empty object is ``{}``."""
    values = [
        {"名称": "给水管", "dn": 300, "depth": 1.25, "note": None, "tags": ["a", {"b": [1, 2]}]},
        {"built": datetime.date(2001, 5, 4), "at": datetime.datetime(2020, 1, 2, 3, 4, 5)},
        {7: "seven", "big": 2**70},
        {"n": np.int64(5), "x": np.float64(0.5)},
        {},
        None,
    ]
    column = jsonb(values)
    offsets = np.concatenate([[0], np.cumsum(column.lengths)])
    texts_back = [bytes(column.data[a:b]) for a, b in itertools.pairwise(offsets)]
    assert all(t[:1] == b"\x01" for t in texts_back)
    read = [json.loads(t[1:]) for t in texts_back]
    expected = [json.loads(json.dumps(v or {}, ensure_ascii=False, default=str)) for v in values]
    expected[3] = {"n": 5, "x": 0.5}  # numpy scalars are numbers now, not "5"
    assert read == expected
    assert json.loads(bytes(jsonb([{"v": float("nan")}]).data)[1:]) == {"v": None}
    assert blobs([b"x"]).lengths.tolist() == [1]
