"""Typed requests and answers of the OGC API Features services: items pages and documents.

Items pages stay JSON text built by PostGIS (:class:`ItemsPage`): a page may hold thousands of
features and is streamed. The small documents (a collection, the collection list, the landing
page) are pydantic models, so ``/api`` shows their shape; links and extents that a document
does not have are ``None`` and left out of the JSON (routes serialise with
``response_model_exclude_none``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cim.services.ogc.cql_bounds import CqlLimits
from cim.services.ogc.crs import OgcCrs
from cim.services.results import Result

GEOJSON = "application/geo+json"
"""Media type of GeoJSON answers (items, one feature) and of the links to them."""


@dataclass
class ItemsQuery:
    """What an items request asks for, already parsed; see :func:`~.features.query_items`."""

    limit: int = 10
    offset: int = 0
    bbox: tuple[float, ...] | None = None
    bbox_crs: OgcCrs | None = None
    crs: OgcCrs | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)
    """(property, descending) pairs."""
    properties: list[str] | None = None
    ids: list[str] | None = None
    filter: str | None = None
    filter_lang: str | None = None
    filter_crs: OgcCrs | None = None
    filter_limits: CqlLimits = field(default_factory=CqlLimits)
    """How large the filter may be (``CIM_CQL_MAX_*``)."""
    hidden_utilities: frozenset[str] = frozenset()
    """Utility classes the caller may not see (rows are left out, not refused)."""


@dataclass(frozen=True)
class ItemsPage:
    """One page: ``features`` is the JSON text of the features array's members."""

    number_matched: int
    number_returned: int
    features: str


class Link(Result):
    """A web link of an OGC document (``title`` left out when None)."""

    rel: str
    type: str
    title: str | None = None
    href: str


class SpatialExtent(Result):
    """Bounding box in CRS84: ``[[minx, miny, maxx, maxy]]``, or 6 numbers with heights."""

    bbox: list[list[float]]
    crs: str


class CollectionExtent(Result):
    """The extent member of a collection."""

    spatial: SpatialExtent


class Collection(Result):
    """The OGC document of one collection; ``extent`` is left out when it cannot be given."""

    id: str
    title: str
    description: str
    itemType: str = "feature"
    crs: list[str]
    storageCrs: str
    links: list[Link]
    extent: CollectionExtent | None = None


class Collections(Result):
    """The collections the caller may read, with every CRS they offer."""

    links: list[Link]
    collections: list[Collection]
    crs: list[str]


class LandingPage(Result):
    """The API's landing page: what it is and links to everything else."""

    title: str
    description: str
    version: str
    links: list[Link]


class Conformance(Result):
    """The OGC conformance classes the API implements."""

    conformsTo: list[str]
