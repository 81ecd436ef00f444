"""The geographic (EPSG:4326) TMS tiling of quantized-mesh terrain and its error budget.

Level 0 has two tiles (west and east hemisphere); tile (z, x, y) spans 180/2^z degrees with y
counted from the south (TMS). The error budget follows CesiumJS: it refines a terrain tile when
the level's *maximum geometric error* (``levelZeroMaximumGeometricError / 2^z``, with level 0
computed for a 65-sample heightmap over two root tiles) exceeds its screen-space threshold, so a
mesh of a level must stay within a fraction of that error.

Examples
--------
>>> tile_bounds(0, 1, 0)
(0.0, -90.0, 180.0, 90.0)
>>> round(level_geometric_error(0))
77067
>>> max_zoom_for_resolution(27.7)
12
"""

from __future__ import annotations

import math

EARTH_RADIUS = 6378137.0
GRID_CELLS = 217
"""Height samples per tile edge minus one: a tile is meshed from a 218 x 218 grid.

217 divides 32767 (= 151 x 217), so every sample node has an exact integer quantized-mesh
u/v: vertices sit exactly where their heights were sampled (a power of two would move them by
up to half a quantization step, which on steep ground costs decimetres).
"""
LEVEL_ZERO_GEOMETRIC_ERROR = EARTH_RADIUS * 2 * math.pi * 0.25 / (65 * 2)
"""CesiumJS ``getEstimatedLevelZeroGeometricErrorForAHeightmap(WGS84, 65, 2)``."""
ERROR_FRACTION = 0.25
"""A level's mesh stays within this share of the level's geometric error."""
MIN_ERROR = 0.05
MAX_ZOOM_CAP = 20


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees of TMS tile z/x/y."""
    size = 180.0 / (1 << z)
    west = -180.0 + x * size
    south = -90.0 + y * size
    return west, south, west + size, south + size


def level_geometric_error(z: int) -> float:
    """CesiumJS's maximum geometric error (m) for terrain level ``z``."""
    return LEVEL_ZERO_GEOMETRIC_ERROR / (1 << z)


def level_max_error(z: int) -> float:
    """The largest height error (m) a mesh of level ``z`` may have at its grid samples."""
    return max(MIN_ERROR, ERROR_FRACTION * level_geometric_error(z))


def max_zoom_for_resolution(resolution_m: float) -> int:
    """First level whose grid spacing (north-south) is at most the DEM's pixel size."""
    cell_at_zero = math.pi * EARTH_RADIUS / GRID_CELLS  # metres per cell at level 0
    if resolution_m <= 0:
        return MAX_ZOOM_CAP
    return max(0, min(MAX_ZOOM_CAP, math.ceil(math.log2(cell_at_zero / resolution_m))))


def tile_range(z: int, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """(start_x, start_y, end_x, end_y), inclusive, of the level-``z`` tiles meeting ``bounds``."""
    west, south, east, north = bounds
    size = 180.0 / (1 << z)
    columns, rows = 2 << z, 1 << z

    def clamp(value: int, count: int) -> int:
        return max(0, min(count - 1, value))

    start_x = clamp(math.floor((west + 180.0) / size), columns)
    end_x = clamp(math.ceil((east + 180.0) / size) - 1, columns)
    start_y = clamp(math.floor((south + 90.0) / size), rows)
    end_y = clamp(math.ceil((north + 90.0) / size) - 1, rows)
    return start_x, start_y, max(start_x, end_x), max(start_y, end_y)
