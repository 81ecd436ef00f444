"""``/health``: is the database reachable, which PostgreSQL/PostGIS, which storage SRID."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import EngineDep
from api.sessions import ReleasingRoute
from cim import __version__
from cim.db.connect import server_versions, storage_srid

router = APIRouter(route_class=ReleasingRoute, tags=["health"])


@router.get("/health", summary="Service health")
def health(engine: EngineDep) -> dict[str, Any]:
    """Database and PostGIS versions and the storage SRID; 503 when the database is down."""
    versions = server_versions(engine)
    return {
        "status": "ok",
        "version": __version__,
        "database": versions["postgresql"],
        "postgis": versions["postgis"],
        "storage_srid": storage_srid(engine),
    }
