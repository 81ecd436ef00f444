"""``/analysis/pipes/...``: the underground-network analyses over HTTP (thin; services do the work).

Geometries in requests are GeoJSON in the storage CRS unless ``crs`` names another one (the
viewer sends ``EPSG:4326``); ``geojson_crs`` asks for the highlight GeoJSON in another CRS.
Every answer that is a list also comes as a file to hand on with ``format=csv`` or
``format=xlsx`` and ``lang=zh|en`` (:mod:`api.tables`); charts come as SVG with ``format=svg``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.as_of import AT
from api.audit import ReadAuditDep
from api.auth import HiddenDep
from api.bounds import BOUNDED
from api.deps import ReadSessionDep
from api.ogc import PROBLEMS
from api.requests import (
    Bbox,
    Count,
    DatabaseId,
    Depth,
    Distance,
    Geometry,
    Point,
    SizeMm,
    Year,
)
from api.sessions import ReleasingRoute
from api.tables import (
    CHART_ALTERNATIVES,
    SVG_MEDIA_TYPE,
    TABLE_ALTERNATIVES,
    ChartDep,
    TableDep,
    answer_as,
)
from cim.services.pipes import clash as pipes_clash
from cim.services.pipes import clearance as pipes_clearance
from cim.services.pipes import excavation as pipes_excavation
from cim.services.pipes import isolation as pipes_isolation
from cim.services.pipes import profile as pipes_profile
from cim.services.pipes import qc as pipes_qc
from cim.services.pipes import query as pipes_query
from cim.services.pipes import section as pipes_section
from cim.services.pipes import trace as pipes_trace
from cim.services.pipes.inputs import geometry_to_storage, point_to_storage
from cim.services.pipes.models import (
    BurstIsolation,
    ClashReport,
    ClearanceReport,
    CrossSection,
    ExcavationImpact,
    LongitudinalProfile,
    NetworkTrace,
    PipeCollection,
    PipeDatasetQc,
)
from cim.services.pipes.scope import session_srid
from cim.services.results import Result

router = APIRouter(
    route_class=ReleasingRoute,
    prefix="/analysis/pipes",
    tags=["pipe analyses"],
    dependencies=[*BOUNDED, *AT],
    responses=PROBLEMS,
)


class PipeRequest(BaseModel):
    dataset_id: DatabaseId | None = Field(
        None, description="One pipe dataset; default all of them."
    )
    crs: str | None = Field(None, description="CRS of the request geometries (default storage).")
    geojson_crs: str | None = Field(None, description="CRS of returned GeoJSON (default storage).")


class QueryRequest(PipeRequest):
    bbox: Bbox | None = None
    polygon: Geometry | None = None
    line: Geometry | None = None
    buffer_m: Distance = 0.0
    utilities: list[str] | None = Field(None, examples=[["JS", "YS"]])
    materials: list[str] | None = None
    diameter_min_mm: SizeMm | None = None
    diameter_max_mm: SizeMm | None = None
    year_min: Year | None = None
    year_max: Year | None = None
    depth_min_m: Depth | None = None
    depth_max_m: Depth | None = None
    limit: Count = 1000
    offset: Count = 0


class SectionRequest(PipeRequest):
    line: Geometry = Field(examples=[{"type": "LineString", "coordinates": [[0, 0], [30, 0]]}])
    utilities: list[str] | None = None


class AreaRequest(PipeRequest):
    area: Geometry | None = Field(None, description="Only pipes in this polygon; default all.")
    limit: Count = 1000


class ClearanceRequest(AreaRequest):
    kinds: list[Literal["horizontal", "building", "vertical"]] = [
        "horizontal",
        "building",
        "vertical",
    ]


class ClashRequest(AreaRequest):
    kinds: list[Literal["pipe", "building"]] = ["pipe", "building"]


class IsolationRequest(PipeRequest):
    segment_id: DatabaseId | None = None
    point: Point | None = Field(None, description="Burst location (x, y).")
    failed_valves: list[DatabaseId] = Field(
        default_factory=list, description="Valve node ids found stuck."
    )
    tolerance_m: Distance = 50.0


class TraceRequest(PipeRequest):
    node_id: DatabaseId | None = None
    segment_id: DatabaseId | None = None
    direction: Literal["downstream", "upstream", "both"] = "downstream"
    direction_from: Literal["invert", "link"] = "invert"
    stop_at_valves: bool = False
    stop_at_class_change: bool = False
    max_distance_m: Distance | None = None


class ExcavationRequest(PipeRequest):
    polygon: Geometry
    depth_m: Depth = Field(gt=0)
    margin_m: Distance = 1.0


@router.post(
    "/query",
    summary="Pipes in a bbox, polygon or along a line, with filters",
    response_model=PipeCollection,
    responses=TABLE_ALTERNATIVES,
)
def query(
    body: QueryRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> PipeCollection | Response:
    """A GeoJSON FeatureCollection (``numberMatched``/``numberReturned``) of matching pipes."""
    srid = session_srid(session)
    found = pipes_query.query_pipes(
        session,
        bbox=body.bbox,
        polygon=geometry_to_storage(body.polygon, body.crs, srid, what="polygon"),
        line=geometry_to_storage(body.line, body.crs, srid, what="line"),
        hidden_utilities=hidden,
        output_crs=body.geojson_crs,
        **body.model_dump(
            exclude={"bbox", "polygon", "line", "crs", "geojson_crs"}, exclude_none=False
        ),
    )
    return answer_as(wanted, audit.answer("analysis/pipes/query", found), "pipes-query")


@router.post(
    "/section",
    summary="Cross-section (横断面) along a line",
    response_model=CrossSection,
    responses=CHART_ALTERNATIVES,
)
def section(
    body: SectionRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: ChartDep,
) -> CrossSection | Response:
    """Every pipe crossed: offset, centre depth, top/invert elevation, size, colour; ground."""
    srid = session_srid(session)
    answer = pipes_section.cross_section(
        session,
        line=geometry_to_storage(body.line, body.crs, srid, what="line"),
        dataset_id=body.dataset_id,
        utilities=body.utilities,
        hidden_utilities=hidden,
    )
    audit.answer("analysis/pipes/section", answer)
    if wanted.format == "svg":
        drawing = pipes_section.section_svg(answer, wanted.lang)
        return Response(drawing, media_type=SVG_MEDIA_TYPE)
    return answer_as(wanted, answer, "pipes-section")


@router.get(
    "/profile",
    summary="Longitudinal profile (纵断面) between two nodes",
    response_model=LongitudinalProfile,
    responses=CHART_ALTERNATIVES,
)
def profile(
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: ChartDep,
    from_node: int = Query(description="Start node id."),
    to_node: int = Query(description="End node id."),
) -> LongitudinalProfile | Response:
    """Ground line, top/invert per segment, cover, slope, backward slopes along the path."""
    answer = pipes_profile.longitudinal_profile(
        session, from_node_id=from_node, to_node_id=to_node, hidden_utilities=hidden
    )
    audit.answer("analysis/pipes/profile", answer)
    if wanted.format == "svg":
        drawing = pipes_profile.profile_svg(answer, wanted.lang)
        return Response(drawing, media_type=SVG_MEDIA_TYPE)
    return answer_as(wanted, answer, "pipes-profile")


ReportT = TypeVar("ReportT", bound=Result)


def _area_check(
    check: Callable[..., ReportT],
    body: AreaRequest,
    kinds: list[str],
    session: ReadSessionDep,
    hidden: frozenset[str],
) -> ReportT:
    """Run a city-wide or in-area pair check (clearances, clashes) for a request."""
    return check(
        session,
        dataset_id=body.dataset_id,
        area=geometry_to_storage(body.area, body.crs, session_srid(session), what="area"),
        kinds=tuple(kinds),
        limit=body.limit,
        hidden_utilities=hidden,
    )


@router.post(
    "/clearance",
    summary="GB 50289 clearance check",
    response_model=ClearanceReport,
    responses=TABLE_ALTERNATIVES,
)
def clearance(
    body: ClearanceRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> ClearanceReport | Response:
    """Pairs (pipe-pipe, pipe-building) closer than GB 50289-2016 requires, with the rule."""
    check = pipes_clearance.check_clearances
    found = _area_check(check, body, list(body.kinds), session, hidden)
    return answer_as(wanted, audit.answer("analysis/pipes/clearance", found), "pipes-clearance")


@router.post(
    "/clashes",
    summary="3D clash detection",
    response_model=ClashReport,
    responses=TABLE_ALTERNATIVES,
)
def clashes(
    body: ClashRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> ClashReport | Response:
    """Pipe-pipe and pipe-building-element clashes with location and overlap."""
    found = _area_check(pipes_clash.detect_clashes, body, list(body.kinds), session, hidden)
    return answer_as(wanted, audit.answer("analysis/pipes/clashes", found), "pipes-clashes")


@router.post(
    "/isolation",
    summary="Burst-valve isolation (爆管关阀)",
    response_model=BurstIsolation,
    responses=TABLE_ALTERNATIVES,
)
def isolation(
    body: IsolationRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> BurstIsolation | Response:
    """Valves to close, isolated segments, length, volume, affected nodes; failed valves are
    passed and the ring extends to the next valves."""
    found = pipes_isolation.isolate_burst(
        session,
        segment_id=body.segment_id,
        point=point_to_storage(body.point, body.crs, session_srid(session)),
        dataset_id=body.dataset_id,
        failed_valve_ids=body.failed_valves,
        tolerance_m=body.tolerance_m,
        hidden_utilities=hidden,
        output_crs=body.geojson_crs,
    )
    return answer_as(wanted, audit.answer("analysis/pipes/isolation", found), "pipes-isolation")


@router.post(
    "/trace",
    summary="Upstream/downstream trace or connected component",
    response_model=NetworkTrace,
    responses=TABLE_ALTERNATIVES,
)
def trace(
    body: TraceRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> NetworkTrace | Response:
    """Directed on gravity networks, connected component on pressure networks."""
    found = pipes_trace.trace(
        session,
        node_id=body.node_id,
        segment_id=body.segment_id,
        direction=body.direction,
        direction_from=body.direction_from,
        stop_at_valves=body.stop_at_valves,
        stop_at_class_change=body.stop_at_class_change,
        max_distance_m=body.max_distance_m,
        hidden_utilities=hidden,
        output_crs=body.geojson_crs,
    )
    return answer_as(wanted, audit.answer("analysis/pipes/trace", found), "pipes-trace")


@router.post(
    "/excavation",
    summary="Excavation impact",
    response_model=ExcavationImpact,
    responses=TABLE_ALTERNATIVES,
)
def excavation(
    body: ExcavationRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> ExcavationImpact | Response:
    """Pipes inside the cut or within the margin: cover, clearances, owners to notify."""
    srid = session_srid(session)
    found = pipes_excavation.excavation_impact(
        session,
        polygon=geometry_to_storage(body.polygon, body.crs, srid, what="polygon"),
        depth_m=body.depth_m,
        margin_m=body.margin_m,
        dataset_id=body.dataset_id,
        hidden_utilities=hidden,
        output_crs=body.geojson_crs,
    )
    return answer_as(wanted, audit.answer("analysis/pipes/excavation", found), "pipes-excavation")


@router.get(
    "/qc/{dataset_id}",
    summary="QC report of a pipe dataset",
    response_model=PipeDatasetQc,
    responses=TABLE_ALTERNATIVES,
)
def qc(
    dataset_id: int,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> PipeDatasetQc | Response:
    """The quality-control findings stored by the import, with the dataset's counts; a
    dataset holding sensitive classes is not found without a key (its reading is audited)."""
    found = pipes_qc.dataset_qc(session, dataset_id=dataset_id, hidden_utilities=hidden)
    audit.dataset(f"analysis/pipes/qc/{dataset_id}", dataset_id)
    return answer_as(wanted, found, f"pipes-qc-{dataset_id}")
