"""``/terrain``: ground elevation at points, profiles along lines, and the quantized-mesh tiles.

``/terrain/layer.json`` and ``/terrain/{z}/{x}/{y}.terrain`` serve what ``cim tiles build
--layer terrain`` wrote to ``CIM_DATA_DIR/tiles/terrain`` so that
``Cesium.CesiumTerrainProvider.fromUrl('/terrain')`` loads it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Discriminator, Field, Tag
from starlette.responses import Response

from api.deps import ReadSessionDep, SettingsDep
from api.ogc import PROBLEMS
from api.requests import Coordinate, Point, PositiveDistance
from api.sessions import ReleasingRoute
from api.tilefiles import (
    IMMUTABLE,
    REVALIDATE,
    SHORT,
    file_response,
    gzipped_file_response,
    layer_file,
    tiles_dir,
)
from cim.errors import InvalidInput
from cim.services import terrain as terrain_service

router = APIRouter(route_class=ReleasingRoute, tags=["terrain"], responses=PROBLEMS)
QUANTIZED_MESH = "application/vnd.quantized-mesh"


def _parse_points(points: str) -> list[tuple[float, float]]:
    out = []
    for index, pair in enumerate(p for p in points.split(";") if p.strip()):
        parts = pair.split(",")
        if len(parts) != 2:
            raise InvalidInput(f"points: item {index + 1} {pair!r} is not 'x,y'")
        try:
            out.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise InvalidInput(f"points: item {index + 1} {pair!r} is not two numbers") from None
    return out


@router.get("/terrain/elevation", summary="Ground elevation at points")
def elevation(
    session: ReadSessionDep,
    settings: SettingsDep,
    points: Annotated[
        str,
        Query(
            description="x,y pairs separated by ';' (x = easting or longitude). A URL holds "
            "about 2,000 points; POST /terrain/elevation takes up to CIM_TERRAIN_MAX_POINTS.",
            examples=["-85.6,38.05;-85.55,38.02"],
            max_length=400_000,
        ),
    ],
    crs: Annotated[
        str | None, Query(description="CRS of the points, e.g. EPSG:4326; default storage")
    ] = None,
) -> terrain_service.Elevations:
    """Height (m) of the finest DEM with a value at each point; ``z`` is null elsewhere."""
    return terrain_service.elevations_in_crs(
        session, points=_parse_points(points), crs=crs, max_points=settings.terrain_max_points
    )


class ElevationPoints(BaseModel):
    """Points as ``[x, y]`` pairs, in ``crs`` (default the storage CRS)."""

    points: list[Point] = Field(
        description="[x, y] pairs (x = easting or longitude)",
        examples=[[[-85.6, 38.05], [-85.55, 38.02]]],
    )
    crs: str | None = Field(default=None, description="CRS of the points; default storage")


class ElevationMultiPoint(BaseModel):
    """A GeoJSON MultiPoint (a third coordinate is ignored), in ``crs`` (default storage)."""

    type: Literal["MultiPoint"]
    coordinates: list[Annotated[list[Coordinate], Field(min_length=2, max_length=3)]]
    crs: str | None = Field(default=None, description="CRS of the points; default storage")


def _body_form(value: Any) -> str:
    """Which form an elevation body has: a GeoJSON object carries ``type``."""
    has_type = isinstance(value, dict) and "type" in value
    return "geojson" if has_type or isinstance(value, ElevationMultiPoint) else "points"


ElevationBody = Annotated[
    Annotated[ElevationPoints, Tag("points")] | Annotated[ElevationMultiPoint, Tag("geojson")],
    Discriminator(_body_form),
]


@router.post("/terrain/elevation", summary="Ground elevation at many points (JSON body)")
def elevation_of_many(
    session: ReadSessionDep,
    settings: SettingsDep,
    body: Annotated[
        ElevationBody,
        Body(examples=[{"points": [[-85.6, 38.05], [-85.55, 38.02]], "crs": "EPSG:4326"}]),
    ],
) -> terrain_service.Elevations:
    """Like ``GET /terrain/elevation`` for as many points as ``CIM_TERRAIN_MAX_POINTS``
    (10,000 by default), which no URL holds: ``{"points": [[x, y], ...], "crs": ...}`` or a
    GeoJSON MultiPoint with an optional ``crs`` member. Same answer as the GET."""
    if isinstance(body, ElevationPoints):
        pairs = [(x, y) for x, y in body.points]
    else:
        pairs = [(position[0], position[1]) for position in body.coordinates]
    return terrain_service.elevations_in_crs(
        session, points=pairs, crs=body.crs, max_points=settings.terrain_max_points
    )


class ProfileRequest(BaseModel):
    """A polyline and how to sample it: every ``step`` metres, or ``samples`` points."""

    line: list[Annotated[list[Coordinate], Field(min_length=2, max_length=3)]] = Field(
        min_length=2,
        description="vertices [x, y] or [x, y, z] (z ignored)",
        examples=[[[-85.6, 38.05], [-85.55, 38.02]]],
    )
    crs: str | None = Field(default=None, description="CRS of the vertices; default storage")
    step: PositiveDistance | None = Field(default=None, description="sample spacing in metres")
    samples: int | None = Field(default=None, ge=2, description="number of evenly spaced samples")


@router.post("/terrain/profile", summary="Elevation profile along a polyline")
def profile(session: ReadSessionDep, settings: SettingsDep, body: ProfileRequest) -> dict[str, Any]:
    """Distance (m, in the storage CRS), x, y (in the request's CRS) and z (null = no DEM)."""
    result = terrain_service.profile(
        session,
        line=[(v[0], v[1]) for v in body.line],
        crs=body.crs,
        step=body.step,
        samples=body.samples,
        max_points=settings.terrain_max_points,
    )
    return {
        "crs": result.crs,
        "length": result.length,
        "points": [{"distance": p.distance, "x": p.x, "y": p.y, "z": p.z} for p in result.points],
    }


@router.head("/terrain/layer.json", include_in_schema=False, response_class=Response)
@router.get(
    "/terrain/layer.json",
    summary="Quantized-mesh layer description (CesiumTerrainProvider)",
    response_class=Response,
)
async def layer_json(request: Request) -> Response:
    """Revalidated on every use: a rebuild replaces it (and its tile version tag)."""
    file = layer_file(tiles_dir(request) / "terrain", "layer.json")
    return file_response(request, file, cache_control=REVALIDATE)


@router.head("/terrain/{z}/{x}/{y}.terrain", include_in_schema=False, response_class=Response)
@router.get(
    "/terrain/{z}/{x}/{y}.terrain",
    summary="One quantized-mesh-1.0 terrain tile (TMS)",
    response_class=Response,
)
async def terrain_tile(z: int, x: int, y: int, request: Request) -> Response:
    """Stored gzip-compressed; cached as immutable when requested with the build tag (``?v=``).
    Like ``layer.json``, ``async`` with no dependency: no worker thread, no database."""
    if min(z, x, y) < 0:
        raise InvalidInput("z, x and y must not be negative")
    file = layer_file(tiles_dir(request) / "terrain", f"{z}/{x}/{y}.terrain")
    cache = IMMUTABLE if "v" in request.query_params else SHORT
    return gzipped_file_response(request, file, cache_control=cache, content_type=QUANTIZED_MESH)
