"""OGC API Features Parts 1-3: landing page, conformance, collections, items, queryables."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from api.auth import PrincipalDep, client_address
from api.deps import ReadSessionDep, SessionDep, SettingsDep
from api.ogc import (
    GEOJSON,
    PROBLEMS,
    catalog_of,
    collection_json,
    get_collection,
    policy_of,
    srid_of,
)
from cim import __version__
from cim.errors import InvalidInput
from cim.services.access import audit
from cim.services.ogc.cql import FILTER_LANGS
from cim.services.ogc.crs import offered_uris, parse_bbox, parse_ogc_crs
from cim.services.ogc.features import (
    ItemsQuery,
    count_matched,
    iter_features,
    parse_properties,
    parse_sortby,
    query_feature,
    query_items,
)

router = APIRouter(tags=["features"], responses=PROBLEMS)

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
CollectionId = Annotated[str, Path(description="Collection id, e.g. pipes_JS")]
FORMAT = Query(None, description="Response format: json or html.", pattern="^(json|html)$")
OBJECT = {"type": "object", "additionalProperties": True}


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get(
    "/",
    summary="Landing page",
    responses={200: {"content": {"application/json": {"schema": OBJECT}, "text/html": {}}}},
    response_class=Response,
)
def landing(request: Request, f: str | None = FORMAT) -> Response:
    """Links to the API definition, conformance, collections, datasets and jobs."""
    base = _base(request)
    links = [
        {"rel": "self", "type": "application/json", "title": "This document", "href": f"{base}/"},
        {"rel": "alternate", "type": "text/html", "title": "As HTML", "href": f"{base}/?f=html"},
        {
            "rel": "service-desc",
            "type": "application/vnd.oai.openapi+json;version=3.0",
            "title": "OpenAPI definition",
            "href": f"{base}/api",
        },
        {
            "rel": "service-doc",
            "type": "text/html",
            "title": "API docs",
            "href": f"{base}/api.html",
        },
        {"rel": "conformance", "type": "application/json", "href": f"{base}/conformance"},
        {"rel": "data", "type": "application/json", "href": f"{base}/collections"},
        {"rel": "datasets", "type": "application/json", "href": f"{base}/datasets"},
    ]
    description = (
        "City Information Model: terrain, buildings and underground utilities as OGC API Features."
    )
    body = {
        "title": "cim",
        "description": description,
        "version": __version__,
        "links": links,
    }
    if _wants_html(request, f):
        items = "".join(
            f'<li><a href="{html.escape(link["href"])}">'
            f"{html.escape(link.get('title') or link['rel'])}</a></li>"
            for link in links
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>cim</title></head><body>"
            f"<h1>cim {html.escape(__version__)}</h1><p>{html.escape(description)}</p>"
            f"<ul>{items}</ul></body></html>"
        )
        return HTMLResponse(page)
    return JSONResponse(body)


@router.get("/conformance", summary="Conformance classes", response_model=dict[str, list[str]])
def conformance() -> dict[str, list[str]]:
    """The OGC conformance classes this API implements."""
    return {"conformsTo": CONFORMANCE}


@router.get(
    "/collections",
    summary="Feature collections",
    responses={200: {"content": {"application/json": {"schema": OBJECT}}}},
    response_class=JSONResponse,
)
def collections(
    request: Request, session: ReadSessionDep, settings: SettingsDep, principal: PrincipalDep
) -> JSONResponse:
    """Every collection with data that the caller may read."""
    base = _base(request)
    srid = srid_of(request)
    policy = policy_of(settings)
    found = catalog_of(request, settings).get(session)
    listed = [
        collection_json(info, base, srid)
        for info in found.values()
        if policy.can_list(info.spec, principal)
    ]
    return JSONResponse(
        {
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/collections"},
            ],
            "collections": listed,
            "crs": offered_uris(srid),
        }
    )


@router.get(
    "/collections/{collection_id}",
    summary="One feature collection",
    responses={200: {"content": {"application/json": {"schema": OBJECT}}}},
    response_class=JSONResponse,
)
def collection(
    collection_id: CollectionId,
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> JSONResponse:
    """Title, extent, offered CRSs and links of one collection."""
    info = get_collection(request, session, settings, collection_id)
    policy_of(settings).check_read(info.spec, principal)
    return JSONResponse(collection_json(info, _base(request), srid_of(request)))


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Queryable properties",
    responses={200: {"content": {"application/schema+json": {"schema": OBJECT}}}},
    response_class=Response,
)
def queryables(
    collection_id: CollectionId,
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> Response:
    """JSON Schema of the properties usable in ``filter`` and ``sortby``."""
    info = get_collection(request, session, settings, collection_id)
    policy_of(settings).check_read(info.spec, principal)
    spec = info.spec
    properties: dict[str, Any] = {
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


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a collection",
    responses={200: {"content": {GEOJSON: {"schema": OBJECT}}}},
    response_class=Response,
)
def items(
    collection_id: CollectionId,
    request: Request,
    session: ReadSessionDep,
    primary: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=2**31, description="Page size (capped).")] = 10,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Features to skip.")] = 0,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy[ in bbox-crs].")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    crs: Annotated[str | None, Query(description="Output CRS URI (default CRS84).")] = None,
    sortby: Annotated[str | None, Query(description="e.g. +code,-diameter_mm")] = None,
    properties: Annotated[str | None, Query(description="Properties to return.")] = None,
    ids: Annotated[str | None, Query(description="Comma-separated feature ids.")] = None,
    filter: Annotated[str | None, Query(description="CQL2 filter.")] = None,
    filter_lang: Annotated[
        str | None, Query(alias="filter-lang", pattern="^(cql2-text|cql2-json)$")
    ] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs")] = None,
) -> Response:
    """A page of features as GeoJSON, with numberMatched/numberReturned and next/prev links."""
    info = get_collection(request, session, settings, collection_id)
    spec = info.spec
    policy = policy_of(settings)
    hidden = policy.check_read(spec, principal)
    srid = srid_of(request)
    out_crs = parse_ogc_crs(crs, srid)
    limit = min(limit, settings.max_limit)
    query = ItemsQuery(
        limit=limit,
        offset=offset,
        bbox=parse_bbox(bbox) if bbox is not None else None,
        bbox_crs=parse_ogc_crs(bbox_crs, srid),
        crs=out_crs,
        sortby=parse_sortby(sortby, spec),
        properties=parse_properties(properties, spec),
        ids=ids.split(",") if ids is not None else None,
        filter=filter,
        filter_lang=filter_lang,
        filter_crs=parse_ogc_crs(filter_crs, srid),
        hidden_utilities=hidden,
    )
    if filter_lang is not None and filter_lang not in FILTER_LANGS:
        raise InvalidInput("unknown filter-lang")
    streamed = limit > STREAM_AT
    if streamed:
        matched = count_matched(session, spec=spec, query=query, storage_srid=srid)
        returned = max(0, min(limit, matched - offset))
    else:
        page = query_items(session, spec=spec, query=query, storage_srid=srid)
        matched, returned = page.number_matched, page.number_returned
    if not principal.anonymous and policy.is_sensitive(spec):
        audit(  # on the primary: the read session may be on a read-only replica
            primary,
            principal=principal,
            action="read",
            resource=f"collections/{spec.id}/items",
            client=client_address(request),
            detail={"returned": returned, "query": str(request.url.query)[:500]},
        )
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(request.url)},
        {
            "rel": "collection",
            "type": "application/json",
            "href": f"{_base(request)}/collections/{spec.id}",
        },
    ]
    if offset + returned < matched:
        nxt = request.url.include_query_params(offset=offset + limit, limit=limit)
        links.append({"rel": "next", "type": GEOJSON, "href": str(nxt)})
    if offset > 0:
        prev = request.url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append({"rel": "prev", "type": GEOJSON, "href": str(prev)})
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tail = f'"numberMatched":{matched},"timeStamp":"{stamp}","links":{json.dumps(links)}}}'
    headers = {"Content-Crs": f"<{out_crs.uri}>"}
    if not streamed:
        body = (
            '{"type":"FeatureCollection","features":['
            + page.features
            + f'],"numberReturned":{returned},'
            + tail
        )
        return Response(body, media_type=GEOJSON, headers=headers)
    engine = request.app.state.read_engine

    def chunks() -> Iterator[str]:
        # Big pages: features leave PostGIS through a server-side cursor, 500 at a time.
        yield '{"type":"FeatureCollection","features":['
        sent = 0
        with engine.connect() as connection:
            for count, text in iter_features(connection, spec=spec, query=query, storage_srid=srid):
                if count:
                    yield ("," if sent else "") + text
                    sent += count
        yield f'],"numberReturned":{sent},' + tail

    return StreamingResponse(chunks(), media_type=GEOJSON, headers=headers)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    responses={200: {"content": {GEOJSON: {"schema": OBJECT}}}},
    response_class=Response,
)
def item(
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(description="Feature id")],
    request: Request,
    session: ReadSessionDep,
    primary: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    crs: Annotated[str | None, Query(description="Output CRS URI (default CRS84).")] = None,
) -> Response:
    """One feature as GeoJSON."""
    info = get_collection(request, session, settings, collection_id)
    policy = policy_of(settings)
    hidden = policy.check_read(info.spec, principal)
    srid = srid_of(request)
    out_crs = parse_ogc_crs(crs, srid)
    feature = query_feature(
        session,
        spec=info.spec,
        fid=feature_id,
        crs=out_crs,
        storage_srid=srid,
        hidden_utilities=hidden,
    )
    if not principal.anonymous and policy.is_sensitive(info.spec):
        audit(  # on the primary: the read session may be on a read-only replica
            primary,
            principal=principal,
            action="read",
            resource=f"collections/{info.spec.id}/items/{feature_id}",
            client=client_address(request),
        )
    base = f"{_base(request)}/collections/{info.spec.id}"
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(request.url)},
        {"rel": "collection", "type": "application/json", "href": base},
    ]
    body = feature[:-1] + f',"links":{json.dumps(links)}}}'
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{out_crs.uri}>"})
