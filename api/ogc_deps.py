"""Dependencies of the OGC routes: the readable collection and the items query parameters.

As in tipg's ``dependencies.py``, each group of query parameters is a small dependency that
declares them with their validation and hands them on typed; :func:`resolve_items` composes
them into the service's :class:`~cim.services.ogc.models.ItemsQuery`. Values that need the
collection or the storage CRS are parsed there, in a fixed order, so a request with several
faults gets the answer it always got: parameter validation first (400), then the collection
(404) and the caller's right to read it (401/403), then the output CRS, bbox, bbox-crs,
sortby, properties and filter-crs (400, first fault wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from api.auth import PrincipalDep
from api.deps import ReadSessionDep, SettingsDep
from api.ogc import get_collection, policy_of, srid_of
from cim.config import CimSettings
from cim.errors import InvalidInput
from cim.services.access import Principal
from cim.services.ogc.building_lod import with_lod
from cim.services.ogc.collections import CollectionInfo
from cim.services.ogc.cql import FILTER_LANGS
from cim.services.ogc.cql_bounds import CqlLimits
from cim.services.ogc.crs import OgcCrs, parse_bbox, parse_ogc_crs
from cim.services.ogc.features import parse_properties, parse_sortby
from cim.services.ogc.models import ItemsQuery
from cim.services.ogc.specs import CollectionSpec
from cim.services.versions.timetravel import parse_datetime, spec_at

CollectionId = Annotated[str, Path(description="Collection id, e.g. pipes_JS")]
OutputCrs = Annotated[str | None, Query(description="Output CRS URI (default CRS84).")]


@dataclass(frozen=True)
class ReadableCollection:
    """A collection with data that the caller may read; ``hidden``: utility classes left out."""

    info: CollectionInfo
    hidden: frozenset[str]

    @property
    def spec(self) -> CollectionSpec:
        return self.info.spec


def find_readable(
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    collection_id: str,
) -> ReadableCollection:
    """The collection ``collection_id``: 404 without data, 401/403 if the caller may not read it."""
    info = get_collection(request, session, settings, collection_id)
    hidden = policy_of(settings).check_read(info.spec, principal)
    return ReadableCollection(info.without(hidden), hidden)


def readable_collection(
    collection_id: CollectionId,
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ReadableCollection:
    """The collection of the path, as :func:`find_readable`."""
    return find_readable(request, session, settings, principal, collection_id)


ReadableCollectionDep = Annotated[ReadableCollection, Depends(readable_collection)]


@dataclass(frozen=True)
class Paging:
    """``limit`` already capped at ``CIM_MAX_LIMIT``; ``offset`` features skipped."""

    limit: int
    offset: int


async def paging_query(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=2**31, description="Page size (capped).")] = 10,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Features to skip.")] = 0,
) -> Paging:
    """The page asked for."""
    return Paging(limit=min(limit, settings.max_limit), offset=offset)


@dataclass(frozen=True)
class BboxParams:
    """``bbox`` and ``bbox-crs`` as given (their CRS is parsed even without a bbox)."""

    bbox: str | None
    crs: str | None

    def parse(self, storage_srid: int) -> tuple[tuple[float, ...] | None, OgcCrs]:
        """The bbox numbers (4 or 6) and the CRS they are in."""
        box = parse_bbox(self.bbox) if self.bbox is not None else None
        return box, parse_ogc_crs(self.crs, storage_srid)


async def bbox_query(
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy[ in bbox-crs].")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
) -> BboxParams:
    """The spatial filter of the request."""
    return BboxParams(bbox=bbox, crs=bbox_crs)


@dataclass(frozen=True)
class OutputParams:
    """How to answer, as given: output CRS, sort order and the properties to return."""

    crs: str | None
    sortby: str | None
    properties: str | None
    lod: str | None = None


LOD_HELP = (
    "buildings only: the 3D faces of this Level of Detail (1, 2, 2.2 …) as the geometry; "
    "buildings without it are left out"
)


async def output_query(
    crs: OutputCrs = None,
    sortby: Annotated[str | None, Query(description="e.g. +code,-diameter_mm")] = None,
    properties: Annotated[str | None, Query(description="Properties to return.")] = None,
    lod: Annotated[str | None, Query(max_length=8, description=LOD_HELP)] = None,
) -> OutputParams:
    """The shape of the answer (parsed against the collection in :func:`resolve_items`)."""
    return OutputParams(crs=crs, sortby=sortby, properties=properties, lod=lod)


async def ids_query(
    ids: Annotated[str | None, Query(description="Comma-separated feature ids.")] = None,
) -> list[str] | None:
    """The feature ids asked for (None = any)."""
    return ids.split(",") if ids is not None else None


@dataclass(frozen=True)
class FilterParams:
    """A CQL2 filter as given: its text, language and the CRS of its geometries."""

    text: str | None
    lang: str | None
    crs: str | None


async def filter_query(
    filter: Annotated[str | None, Query(description="CQL2 filter.")] = None,
    filter_lang: Annotated[
        str | None, Query(alias="filter-lang", pattern="^(cql2-text|cql2-json)$")
    ] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs")] = None,
) -> FilterParams:
    """The CQL2 filter of the request (parsed by the service when it builds the SQL)."""
    return FilterParams(text=filter, lang=filter_lang, crs=filter_crs)


@dataclass(frozen=True)
class ItemsRequest:
    """An items request ready for the service: the collection, the query and the storage SRID."""

    collection: ReadableCollection
    query: ItemsQuery
    storage_srid: int
    spec: CollectionSpec
    """The collection's spec, or its ``?lod=`` variant."""


DATETIME_HELP = (
    "Features valid at this instant or at any time in this interval (RFC 3339: "
    "2026-12-05T10:00:00Z, 2026-01-01/2026-06-30, ../2026-06-30): earlier versions of "
    "re-imported datasets are read from their history"
)


async def datetime_query(
    datetime: Annotated[str | None, Query(max_length=64, description=DATETIME_HELP)] = None,
) -> str | None:
    """The OGC ``datetime`` parameter as given (parsed in :func:`resolve_items`)."""
    return datetime


@dataclass(frozen=True)
class ItemsParams:
    """The query parameters of an items request, validated but not yet resolved against the
    collection (that needs the database: :func:`resolve_items`)."""

    collection_id: str
    paging: Paging
    bbox: BboxParams
    output: OutputParams
    ids: list[str] | None
    cql: FilterParams
    datetime: str | None = None


async def items_params(
    collection_id: CollectionId,
    paging: Annotated[Paging, Depends(paging_query)],
    bbox: Annotated[BboxParams, Depends(bbox_query)],
    output: Annotated[OutputParams, Depends(output_query)],
    ids: Annotated[list[str] | None, Depends(ids_query)],
    cql: Annotated[FilterParams, Depends(filter_query)],
    at: Annotated[str | None, Depends(datetime_query)],
) -> ItemsParams:
    """The parameters as given (async: parsing them costs no worker thread)."""
    return ItemsParams(collection_id, paging, bbox, output, ids, cql, at)


def resolve_items(
    request: Request,
    session: Session,
    settings: CimSettings,
    principal: Principal,
    params: ItemsParams,
) -> ItemsRequest:
    """The collection looked up, then every parameter parsed in the order of the module doc."""
    paging, bbox, output, ids, cql = (
        params.paging, params.bbox, params.output, params.ids, params.cql
    )  # fmt: skip
    collection = find_readable(request, session, settings, principal, params.collection_id)
    srid = srid_of(request)
    spec = collection.spec if output.lod is None else with_lod(collection.spec, output.lod)
    if params.datetime is not None:
        spec = spec_at(spec, parse_datetime(params.datetime))
    output_crs = parse_ogc_crs(output.crs, srid)
    box, box_crs = bbox.parse(srid)
    query = ItemsQuery(
        limit=paging.limit,
        offset=paging.offset,
        bbox=box,
        bbox_crs=box_crs,
        crs=output_crs,
        sortby=parse_sortby(output.sortby, spec),
        properties=parse_properties(output.properties, spec),
        ids=ids,
        filter=cql.text,
        filter_lang=cql.lang,
        filter_crs=parse_ogc_crs(cql.crs, srid),
        filter_limits=CqlLimits(
            max_length=settings.cql_max_length,
            max_depth=settings.cql_max_depth,
            max_conditions=settings.cql_max_conditions,
            max_in_values=settings.cql_max_in_values,
        ),
        hidden_utilities=collection.hidden,
    )
    if cql.lang is not None and cql.lang not in FILTER_LANGS:
        raise InvalidInput("unknown filter-lang")
    return ItemsRequest(collection=collection, query=query, storage_srid=srid, spec=spec)


ItemsParamsDep = Annotated[ItemsParams, Depends(items_params)]
