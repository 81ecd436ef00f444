"""``/sta/v1.1``: the OGC SensorThings API 1.1 (a documented subset, see the root document).

Reads are open with the usual access rule: Things whose utility class is hidden from the caller
(gas and power for anonymous callers) are not there, nor anything of theirs. Writes need an
analyst or admin key. The resource paths (``Things(1)/Datastreams``) are resolved by
:mod:`cim.services.sensors.read`; this module only maps HTTP onto the service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Path, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import AnalystDep, HiddenDep, client_address
from api.deps import ReadSessionDep, SessionDep
from api.ogc import PROBLEMS, srid_of
from api.sessions import ReleasingRoute
from cim.errors import InvalidInput, NotFound
from cim.services.access import Principal, audit
from cim.services.sensors import ingest, read, write
from cim.services.sensors.documents import Context, self_link
from cim.services.sensors.options import parse_options
from cim.services.sensors.schema import SETS, visible
from cim.services.sensors.series import datastream_series

VERSION_PATH = "/sta/v1.1"
router = APIRouter(route_class=ReleasingRoute, tags=["sensorthings"], responses=PROBLEMS)

REQ = "http://www.opengis.net/spec/iot_sensing/1.1/req/"
ENTITY_TYPES = (
    "thing",
    "location",
    "historical-location",
    "datastream",
    "sensor",
    "observed-property",
    "observation",
    "feature-of-interest",
)
CONFORMANCE = [
    *(
        f"{REQ}datamodel/{kind}/{part}"
        for kind in ENTITY_TYPES
        for part in ("properties", "relations")
    ),
    f"{REQ}resource-path/resource-path-to-entities",
    *(
        f"{REQ}request-data/{part}"
        for part in (
            "status-code",
            "query-status-code",
            "order",
            "expand",
            "select",
            "orderby",
            "top",
            "skip",
            "count",
            "filter",
            "built-in-filter-operations",
            "built-in-query-functions",
            "pagination",
        )
    ),
    *(
        f"{REQ}create-update-delete/{part}"
        for part in (
            "create-entity",
            "link-to-existing-entities",
            "deep-insert",
            "deep-insert-status-code",
            "update-entity",
            "delete-entity",
            "historical-location-auto-creation",
        )
    ),
    f"{REQ}data-array/data-array",
]
"""What this server implements (URIs of OGC 18-088's requirement classes); not PUT, JSON
Patch, batch requests, MultiDatastreams, nor (yet) MQTT."""

OBJECT = {"type": "object", "additionalProperties": True}
JSON_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": OBJECT}}}
}
ResourcePath = Annotated[
    str,
    Path(
        description="A resource path: `Things`, `Things(1)`, `Things(1)/Datastreams`, "
        "`Datastreams(1)/Observations`, `Things(1)/name`, `Things(1)/name/$value`",
        max_length=500,
    ),
]
EntityBody = Annotated[Any, Body(description="A SensorThings entity (JSON), deep insert allowed")]


def _context(request: Request, hidden: frozenset[str]) -> Context:
    return Context(str(request.base_url).rstrip("/") + VERSION_PATH, srid_of(request), hidden)


def _audit(
    session: Session, request: Request, principal: Principal, action: str, resource: str
) -> None:
    """Changes of the sensor model are audited; observation ingestion (POST Observations,
    CreateObservations) is data, not a change, and is not (a device posts every minute)."""
    resource = resource.removeprefix(str(request.base_url).rstrip("/") + "/")
    audit(session, principal=principal, action=action, resource=resource,
          client=client_address(request))  # fmt: skip


def _params(request: Request) -> dict[str, str]:
    return {key: value for key, value in request.query_params.items()}


@router.get(VERSION_PATH, summary="SensorThings service root", responses=JSON_ANSWER)
def service_root(request: Request) -> dict[str, Any]:
    """The entity sets and the conformance classes this server implements."""
    base = str(request.base_url).rstrip("/") + VERSION_PATH
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }


@router.get(
    f"{VERSION_PATH}/{{path:path}}",
    summary="Read SensorThings entities",
    responses=JSON_ANSWER,
    response_model=None,
)
def read_resource(
    request: Request, path: ResourcePath, session: ReadSessionDep, hidden: HiddenDep
) -> Response | dict[str, Any]:
    """A collection (``$filter $orderby $top $skip $count $select $expand $resultFormat``),
    an entity, a navigation (``Things(1)/Datastreams``) or a property (``/name/$value``)."""
    ctx = _context(request, hidden)
    params = _params(request)
    options = parse_options(params)
    target = read.resolve_path(path, hidden)
    if target.single:
        found = read.get_entity(session, target, options, ctx)
        if target.raw_value:
            return PlainTextResponse("" if found is None else str(found))
        return JSONResponse(found)
    lister = read.data_array if options.result_format else read.list_collection
    values, count, more = lister(session, target, options, ctx)
    answer: dict[str, Any] = {}
    if count is not None:
        answer["@iot.count"] = count
    if more:
        params["$skip"] = str(options.skip + options.top)
        params["$top"] = str(options.top)
        query = urlencode(params, quote_via=quote, safe="$(),'/:")
        answer["@iot.nextLink"] = f"{ctx.base_url}/{path.strip('/')}?{query}"
    answer["value"] = values
    return answer


@router.post(
    f"{VERSION_PATH}/CreateObservations",
    status_code=status.HTTP_201_CREATED,
    summary="Create observations in the dataArray form",
    responses={201: {"content": {"application/json": {"schema": {"type": "array"}}}}},
)
def create_observations(
    request: Request, body: EntityBody, session: SessionDep, principal: AnalystDep
) -> list[str]:
    """One created Observation URL per dataArray row, or ``"error"`` for a row refused."""
    return ingest.create_observations(session, body, _context(request, frozenset()))


@router.post(
    f"{VERSION_PATH}/{{path:path}}",
    status_code=status.HTTP_201_CREATED,
    summary="Create a SensorThings entity (deep insert)",
    responses=JSON_ANSWER,
)
def create_entity(
    request: Request,
    path: ResourcePath,
    body: EntityBody,
    session: SessionDep,
    principal: AnalystDep,
) -> JSONResponse:
    """POST to a collection (``Things``) or a navigation of one entity
    (``Datastreams(1)/Observations``, which links the new entity to it)."""
    ctx = _context(request, frozenset())
    target = read.resolve_path(path, frozenset())
    if target.single or target.property is not None:
        raise InvalidInput("POST to a collection (Things, Datastreams(1)/Observations)")
    implied: dict[str, int] = {}
    if target.parent is not None:
        parent, parent_id, name = target.parent
        read.get_entity(
            session,
            read.resolve_path(f"{parent.name}({parent_id})", frozenset()),
            parse_options({}),
            ctx,
        )  # the parent must exist: 404 otherwise
        back = write.reverse_navigation(parent.navigation[name])
        if back is None:
            raise InvalidInput(f"create {name} at /{name}, then link them")
        implied[back] = parent_id
    new_id = write.create(session, target.entity_set, body, ctx, implied)
    entity_target = read.resolve_path(f"{target.entity_set.name}({new_id})", frozenset())
    doc = read.get_entity(session, entity_target, parse_options({}), ctx)
    link = self_link(ctx, target.entity_set, new_id)
    if target.entity_set.name != "Observations":
        _audit(session, request, principal, "create", link)
    return JSONResponse(doc, status_code=201, headers={"Location": link})


def _single(path: str) -> read.Target:
    target = read.resolve_path(path, frozenset())
    if target.entity_id is None or target.property is not None:
        raise InvalidInput("PATCH and DELETE address one entity: Things(1)")
    return target


@router.patch(
    f"{VERSION_PATH}/{{path:path}}", summary="Update a SensorThings entity", responses=JSON_ANSWER
)
def update_entity(
    request: Request,
    path: ResourcePath,
    body: EntityBody,
    session: SessionDep,
    principal: AnalystDep,
) -> dict[str, Any]:
    """Change the given properties (and to-one links, a Thing's Locations); answers the entity."""
    ctx = _context(request, frozenset())
    target = _single(path)
    assert target.entity_id is not None
    write.patch(session, target.entity_set, target.entity_id, body, ctx)
    _audit(
        session, request, principal, "update", self_link(ctx, target.entity_set, target.entity_id)
    )
    doc: dict[str, Any] = read.get_entity(session, target, parse_options({}), ctx)
    return doc


@router.delete(f"{VERSION_PATH}/{{path:path}}", summary="Delete a SensorThings entity")
def delete_entity(
    request: Request, path: ResourcePath, session: SessionDep, principal: AnalystDep
) -> Response:
    """Delete one entity; what depends on it goes too (a Thing's Datastreams, their
    Observations)."""
    target = _single(path)
    assert target.entity_id is not None
    ctx = _context(request, frozenset())
    write.remove(session, target.entity_set, target.entity_id, ctx)
    _audit(
        session, request, principal, "delete", self_link(ctx, target.entity_set, target.entity_id)
    )
    return Response(status_code=200)


@router.get(
    "/sensors/datastreams/{datastream_id}/series",
    summary="Chart series of a datastream",
    responses=JSON_ANSWER,
)
def series(
    request: Request,
    datastream_id: Annotated[int, Path(ge=1)],
    start: Annotated[datetime, Query(description="ISO 8601 with a time zone")],
    end: Annotated[datetime, Query(description="ISO 8601 with a time zone")],
    session: ReadSessionDep,
    hidden: HiddenDep,
    resolution: Literal["auto", "raw", "hour", "day"] = "auto",
) -> dict[str, Any]:
    """Numeric results between ``start`` and ``end``: raw for spans up to two days, hourly
    roll-ups up to ninety days, daily beyond (``resolution`` forces one)."""
    datastreams = SETS["Datastreams"]
    model = datastreams.model
    if (
        session.scalar(
            select(model.id).where(model.id == datastream_id, visible("Datastreams", hidden))
        )
        is None
    ):
        raise NotFound(f"no Datastream with id {datastream_id}")
    answer = datastream_series(
        session=session, datastream_id=datastream_id, start=start, end=end, resolution=resolution
    )
    return {
        "datastream": self_link(_context(request, hidden), datastreams, datastream_id),
        "resolution": answer.resolution,
        "points": [
            {
                "time": point.time.isoformat(),
                "count": point.count,
                "min": point.minimum,
                "max": point.maximum,
                "mean": point.mean,
            }
            for point in answer.points
        ],
    }
