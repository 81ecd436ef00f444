"""Columns as PostgreSQL binary COPY data, built with numpy instead of a Python loop per row.

Why: the text COPY of a pipe network spent more time in Python (a list per column, then a
formatted line per row) than the server spent storing the rows. In the binary format every
value is its length and its bytes (integers and floats big-endian, text as UTF-8, geometry as
the EWKB that PostGIS's ``geometry_recv`` reads, jsonb as version byte 1 and the JSON text), so
a whole chunk of rows is a few scatters of byte arrays into one buffer.

Examples
--------
>>> import numpy as np
import orjson
>>> column = floats(np.array([1.5, np.nan]))
>>> column.lengths.tolist()
[8, -1]
>>> bytes(tuples([floats([1.5]), texts(["a"])])).hex()  # 2 fields, 8 bytes, 1 byte
'0002000000083ff80000000000000000000161'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

Bytes = npt.NDArray[np.uint8]
Lengths = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Column:
    """One column of a chunk: the values' bytes back to back, and each row's length (-1 NULL)."""

    data: Bytes
    lengths: Lengths
    width: int = 0
    """Bytes of every non-NULL value when they all have the same size, else 0."""

    @property
    def all_null(self) -> bool:
        return bool((self.lengths < 0).all())


def _fixed(values: npt.NDArray[Any], missing: npt.NDArray[np.bool_]) -> Column:
    width = values.dtype.itemsize
    present = values[~missing] if missing.any() else values
    lengths = np.where(missing, -1, width).astype(np.int64)
    return Column(np.ascontiguousarray(present).view(np.uint8).reshape(-1), lengths, width)


def floats(values: Any) -> Column:
    """float8; NaN is NULL (as the text writer did: COPY would store NaN, not NULL)."""
    array = np.asarray(values, dtype=np.float64)
    return _fixed(array.astype(">f8"), np.isnan(array))


def bigints(values: Any) -> Column:
    """int8, never NULL (ids)."""
    array = np.asarray(values, dtype=np.int64)
    return _fixed(array.astype(">i8"), np.zeros(len(array), dtype=bool))


def integers(values: Any) -> Column:
    """int4 from floats or ints; NaN is NULL."""
    array = np.asarray(values, dtype=np.float64)
    missing = np.isnan(array)
    return _fixed(np.where(missing, 0, array).astype(">i4"), missing)


def texts(values: Any) -> Column:
    """text / varchar as UTF-8; None and NaN are NULL.

    Few distinct values (a utility class, a material) are encoded once each and gathered;
    many (codes) are joined and encoded in one call when they are ASCII.
    """
    array = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    if len(uniques) * 4 < len(codes) or not len(codes):
        return _gathered(codes, [str(u).encode() for u in uniques])
    strings = array.to_numpy(dtype=object)
    missing = codes < 0
    if missing.any():
        strings = strings[~missing]
    try:
        joined = "".join(strings)
    except TypeError:  # numbers in a text column: stored as their text, as text COPY did
        strings = np.array([str(v) for v in strings], dtype=object)
        joined = "".join(strings)
    if joined.isascii():
        data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        sizes = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    else:
        encoded = [s.encode() for s in strings]
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    lengths = np.full(len(codes), -1, dtype=np.int64)
    lengths[~missing] = sizes
    return Column(data, lengths)


def _gathered(codes: npt.NDArray[np.intp], uniques: list[bytes]) -> Column:
    """Rows pointing at a few distinct byte strings: one padded matrix, one boolean gather."""
    lengths = np.full(len(codes), -1, dtype=np.int64)
    if not uniques:
        return Column(np.zeros(0, dtype=np.uint8), lengths)
    sizes = np.array([len(u) for u in uniques], dtype=np.int64)
    widest = max(int(sizes.max()), 1)
    matrix = np.zeros((len(uniques), widest), dtype=np.uint8)
    for i, value in enumerate(uniques):
        matrix[i, : len(value)] = np.frombuffer(value, dtype=np.uint8)
    used = np.arange(widest) < sizes[:, None]
    present = codes >= 0
    lengths[present] = sizes[codes[present]]
    rows = codes[present]
    width = int(sizes[0]) if (sizes == sizes[0]).all() else 0
    return Column(matrix[rows][used[rows]], lengths, width)


def blobs(values: Sequence[bytes]) -> Column:
    """Byte strings as they are (none NULL)."""
    data = np.frombuffer(b"".join(values), dtype=np.uint8)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    return Column(data, lengths)


def jsonb(values: Sequence[Any]) -> Column:
    """jsonb: version byte 1, then the JSON text; an empty or missing object is ``{}``.

    Written by orjson (ten times faster than ``json.dumps``: 2.6 s of a million footprints'
    encoding), with what ``json.dumps(default=str)`` did kept: dates and dataclasses as
    ``str()``, non-string keys as strings; a value orjson refuses (an integer beyond 64 bits)
    goes through ``json.dumps``. NaN becomes ``null`` (``json.dumps`` wrote ``NaN``, which
    jsonb refuses)."""
    return blobs([b"\x01{}" if not v else b"\x01" + _json(v) for v in values])


JSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_SERIALIZE_NUMPY
)
"""``default=str`` for dates and dataclasses as before; numpy scalars as the numbers they are
(``json.dumps`` wrote a ``numpy.int64`` as the string "5")."""


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=str, option=JSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, default=str).encode()


def is_empty_jsonb(column: Column) -> bool:
    """Whether every value is ``{}`` (the column's server default)."""
    return bool((column.lengths == 3).all())


def point_z_ewkb(x: Any, y: Any, z: Any, srid: int) -> Column:
    """POINT Z with SRID as little-endian EWKB, 33 bytes a row."""
    n = len(x)
    record = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("xyz", "<f8", 3)])
    points = np.empty(n, dtype=record)
    points["order"] = 1
    points["type"] = 0xA0000001  # Z flag | SRID flag | Point
    points["srid"] = srid
    points["xyz"] = np.column_stack([x, y, z])
    return Column(points.view(np.uint8).reshape(-1), np.full(n, 33, dtype=np.int64), 33)


def linestring_z_ewkb(coords: npt.NDArray[np.float64], sizes: Lengths, srid: int) -> Column:
    """LINESTRING Z with SRID as little-endian EWKB: row i has the next ``sizes[i]`` vertices."""
    n = len(sizes)
    lengths = 13 + 24 * sizes
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    data = np.empty(int(lengths.sum()), dtype=np.uint8)
    head = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("count", "<u4")])
    heads = np.empty(n, dtype=head)
    heads["order"] = 1
    heads["type"] = 0xA0000002  # Z flag | SRID flag | LineString
    heads["srid"] = srid
    heads["count"] = sizes
    _scatter(data, starts, heads.view(np.uint8).reshape(n, 13))
    first = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=first[1:])
    vertex_starts = np.repeat(starts + 13 - 24 * first, sizes) + 24 * np.arange(int(sizes.sum()))
    vertices = np.ascontiguousarray(coords, dtype="<f8").view(np.uint8).reshape(-1, 24)
    _scatter(data, vertex_starts, vertices)
    return Column(data, lengths)


def _scatter(out: Bytes, starts: Lengths, rows: npt.NDArray[np.uint8]) -> None:
    """Write each row of a (n, w) byte matrix at its start offset in ``out``."""
    out[starts[:, None] + np.arange(rows.shape[1])] = rows


def tuples(columns: Sequence[Column]) -> Bytes:
    """The binary COPY tuples of the rows the columns hold (no header, no trailer).

    The bytes every row has in the same place relative to the start of its values - the field
    count, each field's length word, the values of fixed-width columns with a value in every
    row - are laid out as one (rows, width) matrix and written with one boolean-masked
    assignment; only variable-width values (and fixed-width ones with NULLs) are scattered by
    index. Scattering every fixed byte by index needed an int64 index per byte: most of the
    encoding time of a building import's surface rows. A column whose lengths exceed its
    ``width`` gets its ``width`` bytes written and the rest of its room left for the caller
    (:func:`importers.citymodel.binary_rows.tuples_with_mesh`).
    """
    n = len(columns[0].lengths)
    fields = len(columns)
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    sizes = [np.maximum(c.lengths, 0) for c in columns]
    row_sizes = 2 + 4 * fields + np.sum(sizes, axis=0)
    position = np.zeros(n, dtype=np.int64)
    np.cumsum(row_sizes[:-1], out=position[1:])
    out = np.empty(int(row_sizes.sum()), dtype=np.uint8)
    fixed: list[npt.NDArray[np.uint8]] = [
        np.broadcast_to(np.array([fields >> 8, fields & 0xFF], dtype=np.uint8), (n, 2))
    ]
    runs: list[npt.NDArray[np.int64] | int] = []  # per row: fixed, other, fixed, ... bytes
    run = 2
    others: list[tuple[npt.NDArray[np.int64], Column]] = []
    offset = np.full(n, 2, dtype=np.int64)  # of the current field within its row
    for column, size in zip(columns, sizes, strict=True):
        fixed.append(column.lengths.astype(">i4").view(np.uint8).reshape(n, 4))
        run += 4
        offset += 4
        if column.width and bool((column.lengths == column.width).all()):
            fixed.append(column.data.reshape(n, column.width))
            run += column.width
        else:
            runs += [run, size]
            run = 0
            others.append((position + offset, column))
        offset += size
    runs.append(run)
    block = np.hstack(fixed)
    if others:
        pattern = np.tile(np.arange(len(runs)) % 2 == 0, n)
        lengths = np.column_stack([np.broadcast_to(r, n) for r in runs]).reshape(-1)
        out[np.repeat(pattern, lengths)] = block.reshape(-1)
    else:
        out[:] = block.reshape(-1)
    for at, column in others:
        present = column.lengths >= 0
        starts = at[present]
        if column.width:
            _scatter(out, starts, column.data.reshape(-1, column.width))
        elif len(column.data):
            lengths = column.lengths[present]
            source = np.zeros(len(lengths), dtype=np.int64)
            np.cumsum(lengths[:-1], out=source[1:])
            out[np.repeat(starts - source, lengths) + np.arange(len(column.data))] = column.data
    return out
