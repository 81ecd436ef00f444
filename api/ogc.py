"""Shared plumbing of the OGC routes: per-app caches (catalog, SRID), problem responses, links."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.db.connect import storage_srid
from cim.errors import NotFound
from cim.services.access import ReadPolicy
from cim.services.ogc.collections import CollectionCatalog, CollectionInfo
from cim.services.ogc.crs import CRS84, EPSG_URI, extent_to_crs84, offered_uris

GEOJSON = "application/geo+json"
_PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["title", "status"],
}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}},
    }
    for code, description in (
        (400, "Invalid input"),
        (401, "An API key is needed"),
        (403, "The key's role is not enough"),
        (404, "Not found"),
        (413, "Request body too large"),
        (503, "Database unavailable"),
    )
}
"""Error responses every route documents (problem+json, see ``api/errors.py``)."""


def srid_of(request: Request) -> int:
    """The storage SRID, read once per app (it never changes for a database)."""
    state = request.app.state
    srid: int | None = getattr(state, "storage_srid", None)
    if srid is None:
        srid = storage_srid(state.engine)
        state.storage_srid = srid
    return srid


def catalog_of(request: Request, settings: CimSettings) -> CollectionCatalog:
    """The app's cached collection catalog."""
    state = request.app.state
    catalog: CollectionCatalog | None = getattr(state, "catalog", None)
    if catalog is None:
        catalog = CollectionCatalog(ttl_seconds=settings.collection_cache_seconds)
        state.catalog = catalog
    return catalog


def policy_of(settings: CimSettings) -> ReadPolicy:
    """The read policy configured in ``settings``."""
    return ReadPolicy(
        public_collections=settings.public_collection_set,
        sensitive_utilities=settings.sensitive_utility_set,
    )


def get_collection(
    request: Request, session: Session, settings: CimSettings, collection_id: str
) -> CollectionInfo:
    """The collection ``collection_id`` if it has data, else NotFound."""
    info = catalog_of(request, settings).get(session).get(collection_id)
    if info is None:
        raise NotFound(f"collection {collection_id!r} does not exist or has no data")
    return info


def collection_json(info: CollectionInfo, base: str, srid: int) -> dict[str, Any]:
    """The OGC collection document of ``info``."""
    spec = info.spec
    url = f"{base}/collections/{spec.id}"
    extent: dict[str, Any] = {}
    bbox = extent_to_crs84(info.extent, srid) if info.extent is not None else None
    if bbox is not None:
        spatial: dict[str, Any] = {"bbox": [bbox], "crs": CRS84}
        if info.z_range is not None:
            spatial["bbox"] = [
                [bbox[0], bbox[1], info.z_range[0], bbox[2], bbox[3], info.z_range[1]]
            ]
        extent["spatial"] = spatial
    document: dict[str, Any] = {
        "id": spec.id,
        "title": spec.title,
        "description": spec.description,
        "itemType": "feature",
        "crs": offered_uris(srid),
        "storageCrs": EPSG_URI.format(code=srid),
        "links": [
            {"rel": "self", "type": "application/json", "href": url},
            {"rel": "items", "type": GEOJSON, "title": "Features", "href": f"{url}/items"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "title": "Queryables",
                "href": f"{url}/queryables",
            },
        ],
    }
    if extent:
        document["extent"] = extent
    return document
