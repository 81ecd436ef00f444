"""``building`` and ``building_surface`` rows as binary COPY columns, built with numpy.

Why: the text writer made a shapely MultiPolygon per surface row and a hex EWKB string of it,
which cost more than triangulating the faces. Here the triangles of a whole batch are written
into one byte buffer as EWKB MULTIPOLYGON Z (one POLYGON Z of four points per triangle) by a few
numpy scatters, and every other column goes through :mod:`importers.pipes.binary_columns`, the
encoder the pipe writer uses. The stored values are those of the text writer.

Examples
--------
>>> import numpy as np
>>> column = multipolygon_z_ewkb(np.zeros((3, 3, 3)), np.array([1, 2]), 4547)
>>> column.lengths.tolist()  # 13 header bytes + 109 per triangle
[122, 231]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from importers.pipes.binary_columns import Column, Lengths, tuples

TEXT_OID = 25
HEADER = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("count", "<u4")])
TRIANGLE = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"), ("xyz", "<f8", (4, 3))]
)
"""A triangle as an EWKB POLYGON Z: one ring of four points (the first repeated)."""


def multipolygon_z_ewkb(triangles: npt.NDArray[np.float64], sizes: Lengths, srid: int) -> Column:
    """MULTIPOLYGON Z with SRID (little-endian EWKB): row i holds the next ``sizes[i]``
    triangles of ``triangles`` (shape (n, 3, 3))."""
    sizes = np.asarray(sizes, dtype=np.int64)
    rows = len(sizes)
    lengths = HEADER.itemsize + TRIANGLE.itemsize * sizes
    starts = np.zeros(rows, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    data = np.empty(int(lengths.sum()), dtype=np.uint8)
    heads = np.empty(rows, dtype=HEADER)
    heads["order"] = 1
    heads["type"] = 0xA0000006  # Z flag | SRID flag | MultiPolygon
    heads["srid"] = srid
    heads["count"] = sizes
    _scatter(data, starts, heads.view(np.uint8).reshape(rows, HEADER.itemsize))
    records = _triangle_records(triangles)
    first = np.zeros(rows, dtype=np.int64)
    np.cumsum(sizes[:-1], out=first[1:])
    triangle_starts = np.repeat(
        starts + HEADER.itemsize - TRIANGLE.itemsize * first, sizes
    ) + TRIANGLE.itemsize * np.arange(len(triangles))
    _scatter(data, triangle_starts, records.view(np.uint8).reshape(-1, TRIANGLE.itemsize))
    return Column(data, lengths)


def tuples_with_mesh(
    columns: Sequence[Column], triangles: npt.NDArray[np.float64], sizes: Lengths, srid: int
) -> npt.NDArray[np.uint8]:
    """Binary COPY tuples of ``columns`` followed by a last column, the MULTIPOLYGON Z of the
    next ``sizes[i]`` triangles in row i (the bytes of :func:`multipolygon_z_ewkb`).

    Why not one more :class:`Column`: a mesh column is most of the bytes, and scattering it
    byte by byte into the tuples needs an index array eight times its size. Here the mesh
    column handed to ``tuples`` holds only each row's 13-byte EWKB header while its lengths
    are the whole geometry's, so ``tuples`` leaves room for the triangles after each header;
    the triangles then fill those gaps in one boolean-masked assignment.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    rows = len(sizes)
    heads = np.empty(rows, dtype=HEADER)
    heads["order"] = 1
    heads["type"] = 0xA0000006  # Z flag | SRID flag | MultiPolygon
    heads["srid"] = srid
    heads["count"] = sizes
    body = TRIANGLE.itemsize * sizes
    mesh = Column(heads.view(np.uint8).reshape(-1), HEADER.itemsize + body, HEADER.itemsize)
    out = tuples([*columns, mesh])
    row_sizes = 2 + np.sum([np.maximum(c.lengths, 0) + 4 for c in [*columns, mesh]], axis=0)
    body_ends = np.cumsum(row_sizes)  # the mesh is each row's last field
    # The bytes alternate: row i's fields up to its mesh header, then its triangles. One
    # repeat of (False, True) by those run lengths is the mask (a running sum of +1/-1 marks
    # over every byte did the same at ten times the cost).
    runs = np.empty(2 * rows, dtype=np.int64)
    runs[0::2] = body_ends - body - np.concatenate([[0], body_ends[:-1]])
    runs[1::2] = body
    inside = np.repeat(np.tile(np.array([False, True]), rows), runs)
    out[inside] = _triangle_records(triangles).view(np.uint8).reshape(-1)
    return out


def _triangle_records(triangles: npt.NDArray[np.float64]) -> npt.NDArray[np.void]:
    records = np.empty(len(triangles), dtype=TRIANGLE)
    records["order"] = 1
    records["type"] = 0x80000003  # Z flag | Polygon
    records["rings"] = 1
    records["points"] = 4
    records["xyz"][:, :3] = triangles
    records["xyz"][:, 3] = triangles[:, 0]
    return records


def geometry_ewkb(geometries: npt.NDArray[np.object_], srid: int) -> Column:
    """Shapely geometries (None is NULL) as EWKB with SRID, one vectorised call."""
    present = ~shapely.is_missing(geometries)
    encoded = shapely.to_wkb(
        shapely.set_srid(geometries[present], srid), include_srid=True, byte_order=1
    )
    lengths = np.full(len(geometries), -1, dtype=np.int64)
    lengths[present] = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return Column(np.frombuffer(b"".join(encoded), dtype=np.uint8), lengths)


def text_arrays(values: Sequence[Sequence[str]]) -> Column:
    """text[] (one dimension, no NULL elements) in the binary array format; few distinct
    arrays (the LoD sets of a batch) are encoded once each."""
    cache: dict[tuple[str, ...], bytes] = {}
    encoded = []
    for value in values:
        key = tuple(value)
        if key not in cache:
            cache[key] = _text_array(key)
        encoded.append(cache[key])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return Column(data, lengths)


def _scatter(out: npt.NDArray[np.uint8], starts: Lengths, rows: npt.NDArray[np.uint8]) -> None:
    """Write each row of a (n, w) byte matrix at its start offset in ``out``."""
    out[starts[:, None] + np.arange(rows.shape[1])] = rows


def _text_array(items: tuple[str, ...]) -> bytes:
    if not items:  # an empty array has no dimensions
        return np.array([0, 0, TEXT_OID], dtype=">i4").tobytes()
    parts = [np.array([1, 0, TEXT_OID, len(items), 1], dtype=">i4").tobytes()]
    for item in items:
        raw = item.encode()
        parts.append(len(raw).to_bytes(4, "big") + raw)
    return b"".join(parts)
