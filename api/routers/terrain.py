"""``/terrain``: ground elevation at points, profiles along lines, and the quantized-mesh tiles.

``/terrain/layer.json`` and ``/terrain/{z}/{x}/{y}.terrain`` serve what ``cim tiles build
--layer terrain`` wrote to ``CIM_DATA_DIR/tiles/terrain`` so that
``Cesium.CesiumTerrainProvider.fromUrl('/terrain')`` loads it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.deps import ReadSessionDep, SettingsDep
from api.tilefiles import (
    IMMUTABLE,
    REVALIDATE,
    SHORT,
    file_response,
    gzipped_file_response,
    layer_file,
)
from cim.crs import crs_label, parse_crs
from cim.errors import InvalidInput
from cim.services import terrain as terrain_service

router = APIRouter(tags=["terrain"])
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


def _crs_name(session: ReadSessionDep, crs: str | None) -> str:
    if crs is not None:
        return crs_label(parse_crs(crs))
    return f"EPSG:{terrain_service.session_srid(session)}"


@router.get("/terrain/elevation", summary="Ground elevation at points")
def elevation(
    session: ReadSessionDep,
    points: Annotated[
        str,
        Query(
            description="x,y pairs separated by ';' (x = easting or longitude)",
            examples=["-85.6,38.05;-85.55,38.02"],
            max_length=400_000,
        ),
    ],
    crs: Annotated[
        str | None, Query(description="CRS of the points, e.g. EPSG:4326; default storage")
    ] = None,
) -> dict[str, Any]:
    """Height (m) of the finest DEM with a value at each point; ``z`` is null elsewhere."""
    results = terrain_service.elevations(session, points=_parse_points(points), crs=crs)
    return {
        "crs": _crs_name(session, crs),
        "points": [{"x": r.x, "y": r.y, "z": r.z, "dataset_id": r.dataset_id} for r in results],
    }


class ProfileRequest(BaseModel):
    """A polyline and how to sample it: every ``step`` metres, or ``samples`` points."""

    line: list[list[float]] = Field(
        min_length=2,
        description="vertices [x, y] (extra values ignored)",
        examples=[[[-85.6, 38.05], [-85.55, 38.02]]],
    )
    crs: str | None = Field(default=None, description="CRS of the vertices; default storage")
    step: float | None = Field(default=None, gt=0, description="sample spacing in metres")
    samples: int | None = Field(default=None, ge=2, description="number of evenly spaced samples")


@router.post("/terrain/profile", summary="Elevation profile along a polyline")
def profile(session: ReadSessionDep, body: ProfileRequest) -> dict[str, Any]:
    """Distance (m, in the storage CRS), x, y (in the request's CRS) and z (null = no DEM)."""
    for vertex in body.line:
        if len(vertex) < 2:
            raise InvalidInput("line: every vertex needs x and y")
    result = terrain_service.profile(
        session,
        line=[(v[0], v[1]) for v in body.line],
        crs=body.crs,
        step=body.step,
        samples=body.samples,
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
def layer_json(request: Request, settings: SettingsDep) -> Response:
    """Revalidated on every use: a rebuild replaces it (and its tile version tag)."""
    file = layer_file(settings.tiles_dir / "terrain", "layer.json")
    return file_response(request, file, cache_control=REVALIDATE)


@router.head("/terrain/{z}/{x}/{y}.terrain", include_in_schema=False, response_class=Response)
@router.get(
    "/terrain/{z}/{x}/{y}.terrain",
    summary="One quantized-mesh-1.0 terrain tile (TMS)",
    response_class=Response,
)
def terrain_tile(z: int, x: int, y: int, request: Request, settings: SettingsDep) -> Response:
    """Stored gzip-compressed; cached as immutable when requested with the build tag (``?v=``)."""
    if min(z, x, y) < 0:
        raise InvalidInput("z, x and y must not be negative")
    file = layer_file(settings.tiles_dir / "terrain", f"{z}/{x}/{y}.terrain")
    cache = IMMUTABLE if "v" in request.query_params else SHORT
    return gzipped_file_response(request, file, cache_control=cache, content_type=QUANTIZED_MESH)
