"""``/tiles``: the built 3D Tiles layers (tileset.json and content) as cacheable static files."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from api.deps import SessionDep, SettingsDep
from api.tilefiles import IMMUTABLE, REVALIDATE, SHORT, file_response, layer_file
from cim.errors import NotFound

router = APIRouter(tags=["tiles"])

LAYER_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
ENTRY_DOCUMENTS = {"tileset.json", "layer.json"}


@router.get("/tiles", summary="Built tile layers")
def list_layers(session: SessionDep, settings: SettingsDep) -> list[dict[str, Any]]:
    """Every layer with a built tileset: its URL, 3D Tiles version, build time and figures."""
    rows = session.execute(
        text("SELECT layer, spec, stats, built_at FROM tileset ORDER BY layer")
    ).all()
    out = []
    for row in rows:
        if (settings.tiles_dir / row.layer / "tileset.json").is_file():
            out.append(
                {
                    "layer": row.layer,
                    "url": f"/tiles/{row.layer}/tileset.json",
                    "spec": row.spec,
                    "builtAt": row.built_at.isoformat(),
                    "stats": row.stats,
                }
            )
    return out


@router.api_route(
    "/tiles/{layer}/{path:path}",
    methods=["GET", "HEAD"],
    summary="A file of a tile layer (tileset.json, glb, b3dm)",
    response_class=Response,
)
def tile_file(layer: str, path: str, request: Request, settings: SettingsDep) -> Response:
    """``tileset.json`` is revalidated on every use (a rebuild replaces it); content URLs carry
    the build tag (``?v=``) and are cached as immutable. 304 on a matching ETag."""
    if not LAYER_NAME.match(layer):
        raise NotFound(f"no tile layer {layer!r}")
    file = layer_file(settings.tiles_dir / layer, path)
    if file.name in ENTRY_DOCUMENTS:
        cache = REVALIDATE
    elif "v" in request.query_params:
        cache = IMMUTABLE
    else:
        cache = SHORT
    return file_response(request, file, cache_control=cache)
