"""OGC API Features Parts 1-3: landing page, conformance, collections, items, queryables."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.audit import audit_read
from api.auth import PrincipalDep
from api.deps import ReadSessionDep, SessionDep, SettingsDep
from api.ogc import PROBLEMS, catalog_of, policy_of, srid_of
from api.ogc_deps import (
    CollectionId,
    ItemsParams,
    ItemsParamsDep,
    OutputCrs,
    ReadableCollectionDep,
    resolve_items,
)
from api.sessions import ReleasingRoute
from cim import __version__
from cim.bounds import statements_bounded
from cim.config import CimSettings
from cim.services.access import Principal
from cim.services.ogc.crs import OgcCrs, parse_ogc_crs
from cim.services.ogc.documents import collection_document, collections_document
from cim.services.ogc.features import count_matched, iter_features, query_feature, query_items
from cim.services.ogc.models import (
    GEOJSON,
    Collection,
    Collections,
    Conformance,
    ItemsQuery,
    LandingPage,
    Link,
)
from cim.services.ogc.specs import CollectionSpec
from cim.services.results import Feature, FeatureCollection

router = APIRouter(route_class=ReleasingRoute, tags=["features"], responses=PROBLEMS)

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
]

STREAM_AT = 1000
"""Pages larger than this are streamed from a server-side cursor instead of built at once."""
FORMAT = Query(None, description="Response format: json or html.", pattern="^(json|html)$")
OBJECT = {"type": "object", "additionalProperties": True}
DESCRIPTION = (
    "City Information Model: terrain, buildings and underground utilities as OGC API Features."
)


class GeoJSONResponse(JSONResponse):
    """GeoJSON: the items routes' class, so ``/api`` gives their answers a JSON schema (they
    return PostGIS's JSON text in a plain :class:`Response` of this media type)."""

    media_type = GEOJSON


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _landing_links(base: str) -> list[Link]:
    json_type = "application/json"
    return [
        Link(rel="self", type=json_type, title="This document", href=f"{base}/"),
        Link(rel="alternate", type="text/html", title="As HTML", href=f"{base}/?f=html"),
        Link(
            rel="service-desc",
            type="application/vnd.oai.openapi+json;version=3.0",
            title="OpenAPI definition",
            href=f"{base}/api",
        ),
        Link(rel="service-doc", type="text/html", title="API docs", href=f"{base}/api.html"),
        Link(rel="conformance", type=json_type, href=f"{base}/conformance"),
        Link(rel="data", type=json_type, href=f"{base}/collections"),
        Link(rel="datasets", type=json_type, href=f"{base}/datasets"),
    ]


def _landing_html(links: list[Link]) -> HTMLResponse:
    items = "".join(
        f'<li><a href="{html.escape(link.href)}">{html.escape(link.title or link.rel)}</a></li>'
        for link in links
    )
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>cim</title></head><body>"
        f"<h1>cim {html.escape(__version__)}</h1><p>{html.escape(DESCRIPTION)}</p>"
        f"<ul>{items}</ul></body></html>"
    )


@router.get(
    "/",
    summary="Landing page",
    response_model=LandingPage,
    response_model_exclude_none=True,
    responses={200: {"content": {"text/html": {}}}},
)
def landing(request: Request, f: str | None = FORMAT) -> LandingPage | HTMLResponse:
    """Links to the API definition, conformance, collections, datasets and jobs."""
    links = _landing_links(_base(request))
    if _wants_html(request, f):
        return _landing_html(links)
    return LandingPage(title="cim", description=DESCRIPTION, version=__version__, links=links)


@router.get("/conformance", summary="Conformance classes")
def conformance() -> Conformance:
    """The OGC conformance classes this API implements."""
    return Conformance(conformsTo=CONFORMANCE)


@router.get("/collections", summary="Feature collections", response_model_exclude_none=True)
def collections(
    request: Request, session: ReadSessionDep, settings: SettingsDep, principal: PrincipalDep
) -> Collections:
    """Every collection with data that the caller may read."""
    policy = policy_of(settings)
    found = catalog_of(request, settings).get(session)
    hidden = policy.hidden_for(principal)
    return collections_document(
        (info.without(hidden) for info in found.values() if policy.can_list(info.spec, principal)),
        base_url=_base(request),
        storage_srid=srid_of(request),
    )


@router.get(
    "/collections/{collection_id}",
    summary="One feature collection",
    response_model_exclude_none=True,
)
def collection(request: Request, readable: ReadableCollectionDep) -> Collection:
    """Title, extent, offered CRSs and links of one collection."""
    return collection_document(
        readable.info, base_url=_base(request), storage_srid=srid_of(request)
    )


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Queryable properties",
    responses={200: {"content": {"application/schema+json": {"schema": OBJECT}}}},
    response_class=Response,
)
def queryables(request: Request, readable: ReadableCollectionDep) -> Response:
    """JSON Schema of the properties usable in ``filter`` and ``sortby``."""
    spec = readable.spec
    properties: dict[str, object] = {
        "geometry": {"$ref": f"https://geojson.org/schema/{spec.geometry_type}.json"},
        "id": {"type": "integer", "title": "Feature id"},
    }
    for prop in spec.properties:
        if prop.filterable:
            properties[prop.name] = {"type": prop.type, "title": prop.title or prop.name}
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_base(request)}/collections/{spec.id}/queryables",
        "type": "object",
        "title": spec.title,
        "properties": properties,
        "additionalProperties": False,
    }
    return Response(json.dumps(body), media_type="application/schema+json")


def _audit_read(
    primary: Session,
    request: Request,
    settings: CimSettings,
    principal: Principal,
    spec: CollectionSpec,
    resource: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Record a keyed read of a collection that may show sensitive utility classes.

    On the primary session: the read session may be on a read-only replica.
    """
    if principal.anonymous or not policy_of(settings).is_sensitive(spec):
        return
    audit_read(primary, request, principal, resource, detail)


def _content_crs(crs: OgcCrs) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


def _page_links(
    request: Request, collection_id: str, query: ItemsQuery, matched: int, returned: int
) -> list[Link]:
    """self and collection, then next/prev when there are features after/before the page."""
    limit, offset = query.limit, query.offset
    links = [
        Link(rel="self", type=GEOJSON, href=str(request.url)),
        Link(
            rel="collection",
            type="application/json",
            href=f"{_base(request)}/collections/{collection_id}",
        ),
    ]
    if offset + returned < matched:
        nxt = request.url.include_query_params(offset=offset + limit, limit=limit)
        links.append(Link(rel="next", type=GEOJSON, href=str(nxt)))
    if offset > 0:
        prev = request.url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append(Link(rel="prev", type=GEOJSON, href=str(prev)))
    return links


def _links_json(links: list[Link]) -> str:
    return json.dumps([link.model_dump(exclude_none=True) for link in links])


def _page_tail(matched: int, links: list[Link]) -> str:
    """The members after ``numberReturned``, closing the FeatureCollection."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'"numberMatched":{matched},"timeStamp":"{stamp}","links":{_links_json(links)}}}'


def _stream_features(
    engine: Engine, spec: CollectionSpec, query: ItemsQuery, storage_srid: int, tail: str
) -> Iterator[str]:
    """A big page: features leave PostGIS through a server-side cursor, 500 at a time."""
    yield '{"type":"FeatureCollection","features":['
    sent = 0
    with engine.connect() as connection:
        chunks = iter_features(connection, spec=spec, query=query, storage_srid=storage_srid)
        for count, text in chunks:
            if count:
                yield ("," if sent else "") + text
                sent += count
    yield f'],"numberReturned":{sent},' + tail


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a collection",
    responses={200: {"model": FeatureCollection}},
    response_class=GeoJSONResponse,
)
async def items(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    params: ItemsParamsDep,
) -> Response:
    """A page of features as GeoJSON, with numberMatched/numberReturned and next/prev links."""
    # One worker-thread hop for all the database work, not one per dependency: on a loaded
    # server each hop waits its turn for a thread (holding the connection while it waits), and
    # items are the requests that must stay fast (bench/load.py).
    return await run_in_threadpool(_items_page, request, settings, principal, params)


def _items_page(
    request: Request, settings: CimSettings, principal: Principal, params: ItemsParams
) -> Response:
    state = request.app.state
    with Session(state.read_engine) as session, session.begin(), statements_bounded(session):
        wanted = resolve_items(request, session, settings, principal, params)
        spec, query, srid = wanted.spec, wanted.query, wanted.storage_srid
        assert query.crs is not None
        page = None
        if query.limit > STREAM_AT:
            matched = count_matched(session, spec=spec, query=query, storage_srid=srid)
            returned = max(0, min(query.limit, matched - query.offset))
        else:
            page = query_items(session, spec=spec, query=query, storage_srid=srid)
            matched, returned = page.number_matched, page.number_returned
    detail = {"returned": returned, "query": str(request.url.query)[:500]}
    with Session(state.engine) as primary, primary.begin():  # committed before the answer
        _audit_read(
            primary, request, settings, principal, spec, f"collections/{spec.id}/items", detail
        )
    tail = _page_tail(matched, _page_links(request, spec.id, query, matched, returned))
    headers = _content_crs(query.crs)
    if page is None:
        chunks = _stream_features(state.read_engine, spec, query, srid, tail)
        return StreamingResponse(chunks, media_type=GEOJSON, headers=headers)
    body = (
        '{"type":"FeatureCollection","features":['
        + page.features
        + f'],"numberReturned":{returned},'
        + tail
    )
    return Response(body, media_type=GEOJSON, headers=headers)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    responses={200: {"model": Feature}},
    response_class=GeoJSONResponse,
)
def item(
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(description="Feature id")],
    request: Request,
    session: ReadSessionDep,
    primary: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    readable: ReadableCollectionDep,
    crs: OutputCrs = None,
) -> Response:
    """One feature as GeoJSON."""
    srid = srid_of(request)
    out_crs = parse_ogc_crs(crs, srid)
    feature = query_feature(
        session,
        spec=readable.spec,
        fid=feature_id,
        crs=out_crs,
        storage_srid=srid,
        hidden_utilities=readable.hidden,
    )
    resource = f"collections/{collection_id}/items/{feature_id}"
    _audit_read(primary, request, settings, principal, readable.spec, resource)
    url = f"{_base(request)}/collections/{collection_id}"
    links = [
        Link(rel="self", type=GEOJSON, href=str(request.url)),
        Link(rel="collection", type="application/json", href=url),
    ]
    body = feature[:-1] + f',"links":{_links_json(links)}}}'
    return Response(body, media_type=GEOJSON, headers=_content_crs(out_crs))
