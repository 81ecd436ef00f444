"""Shared plumbing of the OGC routes: per-app caches (catalog, SRID), problem responses, lookups."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.db.connect import storage_srid
from cim.errors import NotFound
from cim.services.access import ReadPolicy
from cim.services.ogc.collections import CollectionCatalog, CollectionInfo

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
    """The storage SRID, read at start-up (it never changes for a database).

    An app that started while the database was down reads it on the first request that needs
    it once the database is back (until then that request fails like any other: 503).
    """
    state = request.app.state
    srid: int | None = state.storage_srid
    if srid is None:
        srid = state.storage_srid = storage_srid(state.engine)
    return srid


def catalog_of(request: Request, settings: CimSettings) -> CollectionCatalog:
    """The app's cached collection catalog (made in the lifespan with ``settings``' TTL)."""
    catalog: CollectionCatalog = request.app.state.catalog
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
