"""The OGC documents of collections: one collection and the list of them, with their links."""

from __future__ import annotations

from collections.abc import Iterable

from cim.services.ogc.collections import CollectionInfo
from cim.services.ogc.crs import CRS84, EPSG_URI, extent_to_crs84, offered_uris
from cim.services.ogc.models import (
    GEOJSON,
    Collection,
    CollectionExtent,
    Collections,
    Link,
    SpatialExtent,
)

QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


def _extent(info: CollectionInfo, storage_srid: int) -> CollectionExtent | None:
    """The CRS84 extent of ``info`` (with its heights when 3D); None if it cannot be given."""
    bbox = extent_to_crs84(info.extent, storage_srid) if info.extent is not None else None
    if bbox is None:
        return None
    if info.z_range is not None:
        low, high = info.z_range
        bbox = [bbox[0], bbox[1], low, bbox[2], bbox[3], high]
    return CollectionExtent(spatial=SpatialExtent(bbox=[bbox], crs=CRS84))


def collection_document(info: CollectionInfo, *, base_url: str, storage_srid: int) -> Collection:
    """The OGC collection document of ``info``; links are absolute under ``base_url``."""
    spec = info.spec
    url = f"{base_url}/collections/{spec.id}"
    return Collection(
        id=spec.id,
        title=spec.title,
        description=spec.description,
        crs=offered_uris(storage_srid),
        storageCrs=EPSG_URI.format(code=storage_srid),
        links=[
            Link(rel="self", type="application/json", href=url),
            Link(rel="items", type=GEOJSON, title="Features", href=f"{url}/items"),
            Link(
                rel=QUERYABLES_REL,
                type="application/schema+json",
                title="Queryables",
                href=f"{url}/queryables",
            ),
        ],
        extent=_extent(info, storage_srid),
    )


def collections_document(
    infos: Iterable[CollectionInfo], *, base_url: str, storage_srid: int
) -> Collections:
    """The collection list of ``infos`` (already filtered to what the caller may read)."""
    return Collections(
        links=[Link(rel="self", type="application/json", href=f"{base_url}/collections")],
        collections=[
            collection_document(info, base_url=base_url, storage_srid=storage_srid)
            for info in infos
        ],
        crs=offered_uris(storage_srid),
    )
