"""``/analysis/gas/...``: the gas lifeline analyses over HTTP (thin; cim.services.gas works).

``POST /analysis/gas/adjacent-spaces`` lists the underground spaces of other classes next to
gas pipes (燃气相邻地下空间) - wells, chambers, utility tunnels, known basements - with distance,
vertical relation and a documented risk score, optionally suggested sensor sites, and with
``alarm`` the valves that isolate the leaking pipe. Gas is a sensitive class: anonymous
callers get 401, and every keyed answer is audited with the gas pipes it names. Geometries in
requests are in the storage CRS unless ``crs`` names another one; ``geojson_crs`` asks for
the map (gas pipes, spaces, distance lines) in another CRS; ``format=csv|xlsx`` and
``lang=zh|en`` give the spaces (and sensor sites, valves) as tables to hand on.
"""

from __future__ import annotations

from typing import Annotated, Any

import shapely
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.as_of import AT
from api.audit import ReadAuditDep, class_detail
from api.auth import HiddenDep
from api.bounds import BOUNDED
from api.deps import ReadSessionDep
from api.ogc import PROBLEMS
from api.requests import Bbox, Count, DatabaseId, Distance, Geometry, Point, PositiveDistance, Year
from api.sessions import ReleasingRoute
from api.tables import TABLE_ALTERNATIVES, TableDep, answer_as
from cim.errors import InvalidInput
from cim.services.gas import adjacent as gas_adjacent
from cim.services.gas import alarm as gas_alarm
from cim.services.gas.models import AdjacentSpaceReport
from cim.services.gas.risk import DEFAULT_RADIUS_M
from cim.services.gas.sensors import DEFAULT_PIECE_M
from cim.services.pipes.inputs import geometry_to_storage, point_to_storage
from cim.services.pipes.scope import session_srid

router = APIRouter(
    route_class=ReleasingRoute,
    prefix="/analysis/gas",
    tags=["gas analyses"],
    dependencies=[*BOUNDED, *AT],
    responses=PROBLEMS,
)

Radius = Annotated[
    float, Field(allow_inf_nan=False, gt=0, le=gas_adjacent.MAX_RADIUS_M, description="m")
]
Sensors = Annotated[int, Field(ge=0, le=gas_adjacent.MAX_SENSORS)]


class AdjacentSpacesRequest(BaseModel):
    dataset_id: DatabaseId | None = Field(None, description="One gas dataset; default all.")
    crs: str | None = Field(None, description="CRS of the request geometries (default storage).")
    geojson_crs: str | None = Field(None, description="CRS of returned GeoJSON (default storage).")
    segment_id: DatabaseId | None = Field(None, description="One gas segment.")
    point: Point | None = Field(None, description="The gas pipe nearest this point (x, y).")
    bbox: Bbox | None = Field(None, description="Gas pipes crossing this box.")
    area: Geometry | None = Field(None, description="Gas pipes crossing this polygon.")
    radius_m: Radius = Field(
        DEFAULT_RADIUS_M, description="Horizontal search radius (default 5 m, unverified)."
    )
    limit: Count = 1000
    sensors: Sensors = Field(0, description="Suggest this many sensor sites (MCLP).")
    piece_m: PositiveDistance = Field(DEFAULT_PIECE_M, description="Gas-pipe piece length.")
    as_of_year: Year | None = Field(None, description="Year the pipe ages are counted to.")
    alarm: bool = Field(False, description="A gas alarm: also the valves isolating the pipe.")
    failed_valves: list[DatabaseId] = Field(
        default_factory=list, description="Alarm: valve node ids found stuck."
    )
    tolerance_m: Distance = Field(50.0, description="How far ``point`` may be from a gas pipe.")


def _area(body: AdjacentSpacesRequest, srid: int) -> object | None:
    """The request's area (polygon or bbox) as GeoJSON in the storage CRS."""
    if body.bbox is not None and body.area is not None:
        raise InvalidInput("give bbox or area, not both")
    area = body.area
    if body.bbox is not None:
        minx, miny, maxx, maxy = body.bbox
        if not (minx < maxx and miny < maxy):
            raise InvalidInput("bbox: expected minx < maxx and miny < maxy")
        area = shapely.geometry.mapping(shapely.box(minx, miny, maxx, maxy))
    moved: object | None = geometry_to_storage(area, body.crs, srid, what="area")
    return moved


@router.post(
    "/adjacent-spaces",
    summary="Underground spaces next to gas pipes (燃气相邻地下空间), ranked by risk",
    response_model=AdjacentSpaceReport,
    responses=TABLE_ALTERNATIVES,
)
def adjacent_spaces(
    body: AdjacentSpacesRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> AdjacentSpaceReport | Response:
    """Wells and chambers of other classes, utility tunnels and known basements within
    ``radius_m`` of the gas pipes in scope: distance and vertical relation to the nearest gas
    pipe, risk score (distance, GB 50028 pressure class, age and material, space type and
    volume), sensor sites with ``sensors``; with ``alarm`` (one segment or point) the valves to
    close from the burst isolation on the gas network."""
    srid = session_srid(session)
    point = point_to_storage(body.point, body.crs, srid)
    common: dict[str, Any] = {
        "segment_id": body.segment_id,
        "point": point,
        "dataset_id": body.dataset_id,
        "radius_m": body.radius_m,
        "limit": body.limit,
        "tolerance_m": body.tolerance_m,
        "as_of_year": body.as_of_year,
        "hidden_utilities": hidden,
        "output_crs": body.geojson_crs,
    }
    if body.alarm:
        if body.bbox is not None or body.area is not None or body.sensors:
            raise InvalidInput("an alarm is about one pipe: no bbox, area or sensors")
        answer = gas_alarm.gas_alarm(session, failed_valve_ids=body.failed_valves, **common)
    else:
        answer = gas_adjacent.adjacent_spaces(
            session, area=_area(body, srid), sensors=body.sensors, piece_m=body.piece_m, **common
        )
    shown = {
        utility: count
        for utility, count in gas_adjacent.shown_per_class(answer).items()
        if utility in audit.sensitive
    }
    if shown:
        audit.record("analysis/gas/adjacent-spaces", class_detail(shown))
    return answer_as(wanted, answer, "gas-adjacent-spaces")
