"""``/viewer/``: the CesiumJS viewer (static files), CesiumJS itself, and the layers it can show.

CesiumJS is served from the pinned npm package that ``scripts/bootstrap`` installs
(``node_modules/cesium/Build/Cesium``), so the viewer needs no internet. ``/viewer/config.json``
tells the page which layers and tools exist right now, so it never requests a missing one (a
404 would be a console error and a broken layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from api.auth import HiddenDep
from api.deps import EngineDep, SessionDep, SettingsDep
from api.sessions import ReleasingRoute
from cim.db.connect import storage_srid
from cim.services.datasets import list_datasets
from cim.services.ogc.extent import dataset_extents, dataset_heights
from cim.utilities import utility_classes

VIEWER_DIR = Path(__file__).resolve().parents[1] / "static" / "viewer"
"""index.html, app.js and style.css of the viewer."""


def cesium_build_dir() -> Path:
    """``Build/Cesium`` of the npm package: in the checkout, else in the working directory."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / "node_modules" / "cesium" / "Build" / "Cesium"
        if candidate.is_dir():
            return candidate
    return Path.cwd() / "node_modules" / "cesium" / "Build" / "Cesium"


class CachedStaticFiles(StaticFiles):
    """Static files with a ``Cache-Control`` header (ETag/Last-Modified come from StaticFiles)."""

    def __init__(self, *, directory: Path, cache_control: str, html: bool = False) -> None:
        super().__init__(directory=directory, check_dir=False, html=html)
        self.cache_control = cache_control

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = self.cache_control
        return response


router = APIRouter(route_class=ReleasingRoute, tags=["viewer"])

# Tilesets listed first, in this order; any other folder of tiles/ with a tileset.json follows
# in name order.
PREFERRED_LAYERS = ("buildings", "pipes")

# Endpoints (OpenAPI path templates) the viewer's tools call once their issue has landed.
TOOL_ENDPOINTS = {
    "datasets": ("GET", "/datasets"),
    "dataset": ("GET", "/datasets/{dataset_id}"),
    "collections": ("GET", "/collections"),
    "crossSection": ("POST", "/analysis/pipes/section"),
    "isolation": ("POST", "/analysis/pipes/isolation"),
    "excavation": ("POST", "/analysis/pipes/excavation"),
    "shelterPlans": ("POST", "/analysis/shelters/plans"),
    "shelterPlanList": ("GET", "/analysis/shelters/plans"),
    "shelterZones": ("GET", "/analysis/shelters/plans/{plan_id}/zones"),
    "shelterUncovered": ("GET", "/analysis/shelters/plans/{plan_id}/uncovered"),
    "shelterSuggest": ("POST", "/analysis/shelters/suggest"),
    "elevation": ("GET", "/terrain/elevation"),
    "shutdown": ("POST", "/analysis/pipes/shutdown"),
    "flood": ("POST", "/analysis/drainage/flood"),
}


@router.get("/viewer", include_in_schema=False)
def viewer_redirect() -> RedirectResponse:
    """``/viewer`` → ``/viewer/`` so the page's relative URLs resolve."""
    return RedirectResponse("/viewer/", status_code=307)


@router.get("/viewer/config.json", summary="Layers and tools the viewer can show now")
def viewer_config(request: Request, settings: SettingsDep, engine: EngineDep) -> dict[str, Any]:
    """Terrain, tilesets, analysis endpoints and the CJJ 61 legend, as they exist right now.

    A layer is listed only when its files exist and a route of this API serves them.
    """
    tiles_dir = settings.tiles_dir
    terrain = None
    if (tiles_dir / "terrain" / "layer.json").is_file() and _served(request, "/terrain/layer.json"):
        terrain = "/terrain"
    names = sorted(
        p.parent.name
        for p in (tiles_dir.glob("*/tileset.json") if tiles_dir.is_dir() else ())
        if p.parent.name != "terrain" and _served(request, f"/tiles/{p.parent.name}/tileset.json")
    )
    names.sort(key=lambda n: (PREFERRED_LAYERS.index(n) if n in PREFERRED_LAYERS else 99, n))
    paths: dict[str, Any] = request.app.openapi().get("paths", {})
    endpoints = {
        key: path
        for key, (method, path) in TOOL_ENDPOINTS.items()
        if method.lower() in paths.get(path, {})
    }
    return {
        "storageSrid": storage_srid(engine),
        "terrain": terrain,
        "tilesets": [{"layer": n, "url": f"/tiles/{n}/tileset.json"} for n in names],
        "endpoints": endpoints,
        "utilityClasses": [
            {
                "code": cls.code,
                "name": cls.name_en,
                "nameZh": cls.name_zh,
                "colour": cls.hex,
                "subclasses": [
                    {"code": s.code, "name": s.name_en, "nameZh": s.name_zh, "colour": s.hex}
                    for s in cls.subclasses
                ],
            }
            for cls in utility_classes()
        ],
    }


@router.get("/viewer/datasets.json", summary="Datasets with their extent, for fly-to")
def viewer_datasets(
    session: SessionDep, engine: EngineDep, hidden: HiddenDep
) -> list[dict[str, Any]]:
    """Every dataset (id, kind, name, status) with its CRS84 extent ``[w, s, e, n]`` or null,
    and ``heights`` ``[lowest, highest]`` (metres) when its geometries are 3D; without a key,
    not the pipe datasets holding sensitive classes (gas, power)."""
    extents = dataset_extents(session, storage_srid=storage_srid(engine))
    heights = dataset_heights(session)
    return [
        {
            "id": dataset.id,
            "kind": dataset.kind,
            "name": dataset.name,
            "status": dataset.status,
            "bbox": list(extents[dataset.id]) if dataset.id in extents else None,
            "heights": list(heights[dataset.id]) if dataset.id in heights else None,
        }
        for dataset in list_datasets(session, hidden_utilities=hidden)
    ]


def _served(request: Request, path: str) -> bool:
    """Whether a route or mount of this app (other than the viewer's own) answers GET ``path``."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return True
    return False


router.mount(
    "/viewer/cesium",
    CachedStaticFiles(directory=cesium_build_dir(), cache_control="public, max-age=86400"),
    name="cesium",
)
router.mount(
    "/viewer",
    CachedStaticFiles(directory=VIEWER_DIR, cache_control="no-cache", html=True),
    name="viewer",
)
