"""Validated number types of request bodies: finite, in range, checked by pydantic at the edge.

JSON bodies may carry ``NaN``, ``Infinity`` or ``1e309`` (Python's decoder accepts them); left
through they reached PostGIS as a 500 or a false "database unavailable". Every float of a
request model is one of these types, so such input is a 400 naming the field before any query.

Examples
--------
>>> from pydantic import TypeAdapter
>>> TypeAdapter(Distance).validate_python(12.5)
12.5
>>> TypeAdapter(Distance).validate_python(float("nan"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ...
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_COORDINATE = 1e9
"""Largest absolute coordinate (metres in a projected CRS, degrees in a geographic one)."""
MAX_DISTANCE_M = 100_000.0
"""Largest distance, buffer, margin or tolerance of a request: 100 km, a whole city."""
MAX_DEPTH_M = 1_000.0
"""Largest depth below ground (an excavation, a depth filter)."""
MAX_SIZE_MM = 100_000.0
"""Largest pipe size of a filter (diameter, mm)."""
MAX_DATABASE_ID = 2**63 - 1
"""Ids are PostgreSQL bigints."""
MAX_SOLVER_SECONDS = 3_600.0
"""Longest solver time limit a request may ask for."""
MAX_AREA_PER_PERSON_M2 = 10_000.0
"""Largest area per person of a shelter level (m²)."""
MIN_GRID_SPACING_M = 1.0
"""Finest candidate grid of a site suggestion (a finer one would allocate without bound)."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
"""Any finite number."""
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
"""A finite x or y within +-1e9."""
Distance = Annotated[float, Field(allow_inf_nan=False, ge=0, le=MAX_DISTANCE_M)]
"""A finite, non-negative distance in metres, at most 100 km."""
PositiveDistance = Annotated[float, Field(allow_inf_nan=False, gt=0, le=MAX_DISTANCE_M)]
"""A finite distance in metres above zero, at most 100 km."""
Depth = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_DEPTH_M, le=MAX_DEPTH_M)]
"""A finite depth or height difference in metres, within +-1 km."""
SizeMm = Annotated[float, Field(allow_inf_nan=False, ge=0, le=MAX_SIZE_MM)]
"""A finite, non-negative pipe size in millimetres."""
DatabaseId = Annotated[int, Field(ge=-MAX_DATABASE_ID, le=MAX_DATABASE_ID)]
"""An id that fits a bigint (unknown ids are a 404 later, not a database error)."""
GridSpacing = Annotated[float, Field(allow_inf_nan=False, ge=MIN_GRID_SPACING_M, le=MAX_DISTANCE_M)]
"""A candidate grid step in metres, 1 m to 100 km."""
SolverSeconds = Annotated[float, Field(allow_inf_nan=False, gt=0, le=MAX_SOLVER_SECONDS)]
"""A solver time limit in seconds, at most an hour."""
AreaPerPerson = Annotated[float, Field(allow_inf_nan=False, gt=0, le=MAX_AREA_PER_PERSON_M2)]
"""Effective shelter area per person in m²."""
Year = Annotated[int, Field(ge=0, le=9999)]
"""A calendar year."""
Count = Annotated[int, Field(ge=0, le=MAX_DATABASE_ID)]
"""A non-negative count or offset that fits a bigint."""
Bbox = tuple[Coordinate, Coordinate, Coordinate, Coordinate]
"""(xmin, ymin, xmax, ymax), finite."""
Point = tuple[Coordinate, Coordinate]
"""(x, y), finite."""


def _finite_coordinates(geometry: dict[str, Any]) -> dict[str, Any]:
    """Refuse a GeoJSON geometry with a coordinate that is not a finite number within range
    (walked without recursion: a hostile body may nest arrays deeply)."""
    stack: list[Any] = [geometry.get("coordinates", [])]
    stack.extend(geometry.get("geometries", []) or [])
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.append(item.get("coordinates", []))
            stack.extend(item.get("geometries", []) or [])
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError("coordinates must be numbers")
        elif not abs(item) <= MAX_COORDINATE:  # also false for NaN
            raise ValueError(f"coordinates must be finite numbers within +-{MAX_COORDINATE:.0e}")
    return geometry


Geometry = Annotated[dict[str, Any], AfterValidator(_finite_coordinates)]
"""A GeoJSON geometry object whose coordinates are finite numbers within range."""
