"""One quantized-mesh-1.0 tile: a height grid meshed within the level's error, then encoded.

Meshing: from level 6 on, pydelatin builds a TIN whose height error at every grid sample is at
most :func:`level_max_error`. Below level 6 a tile spans more than 2.8 degrees and a long
triangle would cut through the curved Earth (the chord sag of a level-0 tile is ~1000 km), so
a regular grid (32 x 32 vertices, the full grid if its height error would exceed the budget)
is used instead.
Every tile samples its edges at the same longitudes/latitudes as its neighbours, and the edge
vertex lists let CesiumJS hang skirts (it derives their depth from the level's geometric error)
over any T-junction between differently simplified neighbours, so there are no cracks.

Encoding uses quantized-mesh-encoder's writers for header, indices (high-water mark) and
edges plus its oct-encoded vertex normals, but quantizes u/v from the exact grid positions
(the library's own path goes through float32 longitudes, ~1 m off, which would move edge
vertices off the tile border); the grid is chosen so those u/v are exact integers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tiles.terrain.grid import GRID_CELLS, level_max_error, tile_bounds

CURVATURE_LEVELS = 6
QUANTIZED_MAX = 32767

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class TileMesh:
    """Grid-indexed vertices (col, row from the north-west corner) and CCW triangles."""

    cols: IntArray
    rows: IntArray
    heights: FloatArray
    triangles: IntArray
    max_error: float


def grid_lonlat(z: int, x: int, y: int) -> tuple[FloatArray, FloatArray]:
    """Longitudes and latitudes of the tile's sample grid, row 0 at the north."""
    west, south, east, north = tile_bounds(z, x, y)
    steps = np.arange(GRID_CELLS + 1, dtype=np.float64) / GRID_CELLS
    lon = west + (east - west) * steps
    lat = north - (north - south) * steps
    lon_grid, lat_grid = np.meshgrid(lon, lat)
    return lon_grid, lat_grid


def mesh_grid(heights: FloatArray, z: int) -> TileMesh:
    """Mesh a tile's height grid for level ``z`` within :func:`level_max_error`."""
    budget = level_max_error(z)
    if z >= CURVATURE_LEVELS:
        from pydelatin import Delatin

        tin = Delatin(heights.astype(np.float32), max_error=budget)
        vertices = tin.vertices
        cols = np.rint(vertices[:, 0]).astype(np.int64)
        # pydelatin's y runs from the last row up (y = height - 1 - row).
        rows = GRID_CELLS - np.rint(vertices[:, 1]).astype(np.int64)
        return _mesh(cols, rows, heights, tin.triangles.astype(np.int64), float(tin.error))
    for step in (7, 1):  # divisors of GRID_CELLS
        cols, rows, triangles = _regular(step)
        error = _regular_error(heights, step)
        if error <= budget or step == 1:
            return _mesh(cols, rows, heights, triangles, error)
    raise AssertionError("unreachable")


def _mesh(
    cols: IntArray, rows: IntArray, heights: FloatArray, triangles: IntArray, error: float
) -> TileMesh:
    return TileMesh(
        cols=cols,
        rows=rows,
        heights=heights[rows, cols].astype(np.float64),
        triangles=triangles.reshape(-1, 3),
        max_error=error,
    )


def _regular(step: int) -> tuple[IntArray, IntArray, IntArray]:
    count = GRID_CELLS // step + 1
    index = np.arange(count * count).reshape(count, count)
    rows, cols = np.divmod(np.arange(count * count), count)
    a = index[:-1, :-1].ravel()  # north-west corner of each cell
    b = index[:-1, 1:].ravel()
    c = index[1:, :-1].ravel()
    d = index[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return cols * step, rows * step, triangles.astype(np.int64)


def _regular_error(heights: FloatArray, step: int) -> float:
    """Largest |mesh - grid| of the regular mesh with ``step`` over all grid samples."""
    if step == 1:
        return 0.0
    n = GRID_CELLS + 1
    rows, cols = np.mgrid[0:n, 0:n]
    r0 = np.minimum(rows // step, GRID_CELLS // step - 1) * step
    c0 = np.minimum(cols // step, GRID_CELLS // step - 1) * step
    fy = (rows - r0) / step
    fx = (cols - c0) / step
    h00 = heights[r0, c0]
    h01 = heights[r0, c0 + step]
    h10 = heights[r0 + step, c0]
    h11 = heights[r0 + step, c0 + step]
    lower = fx + fy <= 1.0  # the cell is split along its north-east/south-west diagonal
    value = np.where(
        lower,
        h00 + fx * (h01 - h00) + fy * (h10 - h00),
        h11 + (1 - fx) * (h10 - h11) + (1 - fy) * (h01 - h11),
    )
    return float(np.abs(value - heights).max())


def encode_tile(z: int, x: int, y: int, mesh: TileMesh) -> bytes:
    """quantized-mesh-1.0 bytes (uncompressed) with the octvertexnormals extension."""
    from quantized_mesh_encoder.encode import (
        compute_header,
        encode_header,
        write_edge_indices,
        write_indices,
        write_vertices,
    )
    from quantized_mesh_encoder.extensions import VertexNormalsExtension

    west, south, east, north = tile_bounds(z, x, y)
    scale = QUANTIZED_MAX // GRID_CELLS  # exact: GRID_CELLS divides 32767
    u = mesh.cols * scale
    v = (GRID_CELLS - mesh.rows) * scale
    triangles = _counter_clockwise(u, v, mesh.triangles)
    order, triangles = _first_use_order(triangles, len(u))
    u, v, heights = u[order], v[order], mesh.heights[order]
    lon = west + (east - west) * u / QUANTIZED_MAX
    lat = south + (north - south) * v / QUANTIZED_MAX
    positions = np.column_stack([lon, lat, heights])
    low, high = float(heights.min()), float(heights.max())
    span = high - low
    h = np.zeros(len(u), dtype=np.int64)
    if span > 0:
        h = np.rint((heights - low) / span * QUANTIZED_MAX).astype(np.int64)
    quantized = np.column_stack([u, v, h]).astype(np.int16)
    out = io.BytesIO()
    with np.errstate(divide="ignore", invalid="ignore"):
        header = compute_header(positions, "naive")  # float64-safe, exact max radius
    occlusion = ("horizonOcclusionPointX", "horizonOcclusionPointY", "horizonOcclusionPointZ")
    if not all(np.isfinite(header[key]) for key in occlusion):
        # Tiles wider than a hemisphere's horizon have no occlusion point; CesiumJS treats a
        # NaN point as always visible, which is right for them.
        for key in occlusion:
            header[key] = float("nan")
    header["minimumHeight"], header["maximumHeight"] = low, high
    encode_header(out, header)
    write_vertices(out, quantized, len(u))
    write_indices(out, triangles.astype(np.uint32), len(u))
    write_edge_indices(out, quantized, len(u))
    out.write(
        VertexNormalsExtension(indices=triangles.astype(np.uint32), positions=positions).encode()
    )
    return out.getvalue()


def _counter_clockwise(u: IntArray, v: IntArray, triangles: IntArray) -> IntArray:
    """Triangles wound counter-clockwise in (u east, v north), as CesiumJS expects."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = (u[b] - u[a]) * (v[c] - v[a]) - (u[c] - u[a]) * (v[b] - v[a])
    clockwise = area < 0
    flipped: IntArray = triangles.copy()
    flipped[clockwise, 1], flipped[clockwise, 2] = c[clockwise], b[clockwise]
    kept: IntArray = flipped[area != 0]  # drop degenerate slivers
    return kept


def _first_use_order(triangles: IntArray, count: int) -> tuple[IntArray, IntArray]:
    """Renumber vertices by first use, which high-water-mark index encoding requires."""
    flat = triangles.ravel()
    _, first = np.unique(flat, return_index=True)
    used = flat[np.sort(first)]
    new_index = np.full(count, -1, dtype=np.int64)
    new_index[used] = np.arange(len(used))
    return used, new_index[triangles]
