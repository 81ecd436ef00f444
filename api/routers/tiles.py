"""``/tiles``: the built 3D Tiles layers (tileset.json and content) as cacheable static files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from api.audit import ReadAudit, ReadAuditDep
from api.auth import PrincipalDep
from api.deps import ReadSessionDep, SettingsDep
from api.sessions import ReleasingRoute
from api.tilefiles import IMMUTABLE, REVALIDATE, SHORT, file_response, layer_file, tiles_dir
from cim.errors import NotFound
from cim.services.access import require_role

router = APIRouter(route_class=ReleasingRoute, tags=["tiles"])

LAYER_NAME = re.compile(r"^[a-z0-9_-]{1,64}\Z")  # \Z: no trailing newline either
ENTRY_DOCUMENTS = {"tileset.json", "layer.json"}
RESTRICTED = "restricted"
"""Folder of the layers holding sensitive utility classes (gas, power): a key is needed."""


@router.get("/tiles", summary="Built tile layers")
def list_layers(
    session: ReadSessionDep, settings: SettingsDep, principal: PrincipalDep
) -> list[dict[str, Any]]:
    """Every layer with a built tileset: its URL, 3D Tiles version, build time and figures.

    Restricted layers (``<layer>_restricted``: sensitive utility classes) are listed only to
    callers with an API key."""
    rows = session.execute(
        text("SELECT layer, spec, stats, built_at FROM tileset ORDER BY layer")
    ).all()
    out = []
    for row in rows:
        folder = row.layer
        if row.layer.endswith("_restricted"):
            if principal.anonymous:
                continue
            folder = f"{RESTRICTED}/{row.layer.removesuffix('_restricted')}"
        if (settings.tiles_dir / folder / "tileset.json").is_file():
            out.append(
                {
                    "layer": row.layer,
                    "url": f"/tiles/{folder}/tileset.json",
                    "spec": row.spec,
                    "builtAt": row.built_at.isoformat(),
                    "stats": row.stats,
                }
            )
    return out


@router.api_route(
    "/tiles/restricted/{layer}/{path:path}",
    methods=["GET", "HEAD"],
    summary="A file of a layer of sensitive utility classes (needs an API key)",
    response_class=Response,
)
def restricted_tile_file(
    layer: str,
    path: str,
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    audit: ReadAuditDep,
) -> Response:
    """Like ``/tiles/<layer>/...`` for the gas/power (``CIM_SENSITIVE_UTILITIES``) tiles; 401
    without a key. Answers are ``private`` so shared caches never keep them. Every file served
    (304 included) is audited: tileset.json with the layer's feature count, content files with
    the bytes sent."""
    require_role(principal, "reader")
    if not LAYER_NAME.match(layer):
        raise NotFound(f"no tile layer {layer!r}")
    file = layer_file(settings.tiles_dir / RESTRICTED / layer, path)
    response = _serve(request, file)
    response.headers["Cache-Control"] = response.headers["Cache-Control"].replace(
        "public", "private"
    )
    response.headers["Vary"] = "X-API-Key, Authorization"
    audit.record(f"tiles/{RESTRICTED}/{layer}/{path}", _audit_detail(audit, layer, file, response))
    return response


def _audit_detail(
    audit: ReadAudit, layer: str, file: Path, response: Response
) -> dict[str, object]:
    """What a restricted file showed: the layer's classes; for the entry document, its feature
    count (from the build record); for content, the bytes sent (0 for a 304 or a HEAD)."""
    classes = sorted(audit.sensitive)
    if file.name in ENTRY_DOCUMENTS:
        features = audit.read.execute(
            text("SELECT (stats->>'features')::bigint FROM tileset WHERE layer = :layer"),
            {"layer": f"{layer}_restricted"},
        ).scalar_one_or_none()
        return {"classes": classes, "features": int(features or 0)}
    sent = audit.request.method == "GET" and response.status_code == 200
    return {"classes": classes, "bytes": file.stat().st_size if sent else 0}


@router.api_route(
    "/tiles/{layer}/{path:path}",
    methods=["GET", "HEAD"],
    summary="A file of a tile layer (tileset.json, glb, b3dm)",
    response_class=Response,
)
async def tile_file(layer: str, path: str, request: Request) -> Response:
    """``tileset.json`` is revalidated on every use (a rebuild replaces it); content URLs carry
    the build tag (``?v=``) and are cached as immutable. 304 on a matching ETag.

    A cheap static path: ``async`` with no dependency, so it needs neither a worker thread nor
    the database, and answers while analyses occupy both (see ``api.tilefiles``)."""
    if not LAYER_NAME.match(layer) or layer == RESTRICTED:
        raise NotFound(f"no tile layer {layer!r}")
    return _serve(request, layer_file(tiles_dir(request) / layer, path))


def _serve(request: Request, file: Path) -> Response:
    if file.name in ENTRY_DOCUMENTS:
        cache = REVALIDATE
    elif "v" in request.query_params:
        cache = IMMUTABLE
    else:
        cache = SHORT
    return file_response(request, file, cache_control=cache)
