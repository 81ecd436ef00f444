"""``POST /analysis/pipes/shutdown`` and ``POST /analysis/drainage/flood``: simulations on the
stored networks (thin; the services ``cim.services.simulation.shutdown`` and ``.flood`` do the
work); ``POST /analysis/drainage/flood/hazards`` saves a flood's extents as hazard zones
(``.flood_hazards``).

Both answers also come as files to hand on with ``format=csv|xlsx`` and ``lang=zh|en``
(:mod:`api.tables`): the shutdown's nodes, below-service nodes, cut-off nodes and closed links;
the flood's flooded nodes, surcharged conduits and outfalls.

A simulation holds a worker for up to seconds, so the routes run in the heavy lane of the
bulkhead (``api.bulkhead.HEAVY_ROUTES``) under the analysis deadline; only the hazards route
stores (an analyst or admin key, the primary session, all or nothing).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.as_of import AT
from api.audit import ReadAuditDep
from api.auth import AnalystDep, HiddenDep, client_address
from api.bounds import BOUNDED
from api.deps import CatalogDep, ReadSessionDep, SessionDep
from api.ogc import PROBLEMS
from api.requests import DatabaseId, Distance, Point
from api.sessions import ReleasingRoute
from api.tables import TABLE_ALTERNATIVES, TableDep, answer_as
from cim.services.access import audit
from cim.services.pipes.inputs import point_to_storage
from cim.services.pipes.scope import refuse_hidden, session_srid
from cim.services.simulation import flood as simulation_flood
from cim.services.simulation import flood_hazards as simulation_flood_hazards
from cim.services.simulation import shutdown as simulation_shutdown
from cim.services.simulation import storm as simulation_storm
from cim.services.simulation.flood_models import FloodHazards, FloodSimulation
from cim.services.simulation.models import ShutdownImpact
from cim.services.simulation.storm import DesignStorm

router = APIRouter(
    route_class=ReleasingRoute,
    prefix="/analysis",
    dependencies=[*BOUNDED, *AT],
    responses=PROBLEMS,
)

Hours = Annotated[float, Field(allow_inf_nan=False, gt=0, le=simulation_shutdown.MAX_DURATION_H)]
Pressure = Annotated[float, Field(allow_inf_nan=False, ge=0, le=200)]


class ShutdownRequest(BaseModel):
    dataset_id: DatabaseId | None = Field(None, description="The water dataset (optional).")
    crs: str | None = Field(None, description="CRS of ``point`` (default storage).")
    geojson_crs: str | None = Field(None, description="CRS of returned GeoJSON (default storage).")
    segment_id: DatabaseId | None = Field(None, description="Burst segment: isolate it first.")
    point: Point | None = Field(None, description="Burst location (x, y), instead of segment_id.")
    failed_valves: list[DatabaseId] = Field(
        default_factory=list, description="Valve node ids found stuck (the ring extends)."
    )
    tolerance_m: Distance = 50.0
    valve_ids: list[DatabaseId] = Field(
        default_factory=list, description="Valve nodes to close (instead of a burst)."
    )
    segment_ids: list[DatabaseId] = Field(
        default_factory=list, description="Pipes to close (instead of a burst)."
    )
    duration_h: Hours = simulation_shutdown.DEFAULT_DURATION_H
    service_pressure_m: Pressure = Field(
        simulation_shutdown.DEFAULT_SERVICE_PRESSURE_M,
        description="Required service pressure (m); default 0.14 MPa (CJ/T 316, unverified).",
    )
    minimum_pressure_m: Pressure = Field(0.0, description="No demand served at or below this.")
    engine: Literal["epanet", "wntr"] = Field(
        "epanet", description="EPANET 2.2 (PDA) or WNTR's WNTRSimulator (PDD)."
    )
    geojson: bool = Field(True, description="Include the outage GeoJSON.")


@router.post(
    "/pipes/shutdown",
    summary="Shutdown impact (关阀停水影响)",
    tags=["pipe simulations"],
    response_model=ShutdownImpact,
    responses=TABLE_ALTERNATIVES,
)
def shutdown(
    body: ShutdownRequest,
    session: ReadSessionDep,
    hidden: HiddenDep,
    audit: ReadAuditDep,
    wanted: TableDep,
) -> ShutdownImpact | Response:
    """Close the valves of a burst isolation (or given valves and pipes), simulate the water
    network pressure-driven before and after over ``duration_h``: nodes cut off, below the
    service pressure or with a pressure drop, demand not served, outage GeoJSON.

    ``format=csv`` writes the nodes whose pressure fell (``table=below_service``, ``isolated``
    or ``closed`` for the others); ``format=xlsx`` all four, one sheet each."""
    found = simulation_shutdown.shutdown_impact(
        session,
        segment_id=body.segment_id,
        point=point_to_storage(body.point, body.crs, session_srid(session)),
        dataset_id=body.dataset_id,
        failed_valve_ids=body.failed_valves,
        valve_ids=body.valve_ids,
        segment_ids=body.segment_ids,
        duration_h=body.duration_h,
        service_pressure_m=body.service_pressure_m,
        minimum_pressure_m=body.minimum_pressure_m,
        engine=body.engine,
        tolerance_m=body.tolerance_m,
        hidden_utilities=hidden,
        output_crs=body.geojson_crs,
        with_geojson=body.geojson and wanted.format == "json",  # files hold no geometry
    )
    if found.isolation is not None:  # the segments it lists (water only: the model refuses
        audit.answer("analysis/pipes/shutdown", found.isolation)  # other classes)
    return answer_as(wanted, found, "pipes-shutdown")


class DesignStormRequest(BaseModel):
    formula: str = Field(
        simulation_storm.DEFAULT_FORMULA,
        description=f"Storm-intensity formula: {', '.join(simulation_storm.FORMULAS)}.",
    )
    return_period_a: float = Field(allow_inf_nan=False, description="Return period P (years).")
    duration_min: int = Field(120, description="Storm duration (min), within the formula's range.")
    peak_ratio: float = Field(
        simulation_storm.DEFAULT_PEAK_RATIO, allow_inf_nan=False, description="Peak position r."
    )
    step_min: int = Field(simulation_storm.DEFAULT_STEP_MIN, description="Time step (min).")


class FloodParameters(BaseModel):
    dataset_id: DatabaseId = Field(description="The drainage (SWMM) dataset.")
    storm: DesignStormRequest | None = Field(
        None, description="A Chicago design storm; null runs the model's own rain."
    )
    tail_h: float = Field(
        simulation_flood.DEFAULT_TAIL_H,
        allow_inf_nan=False,
        ge=0,
        le=simulation_flood.MAX_TAIL_H,
        description="Hours simulated after a design storm ends.",
    )
    geojson_crs: str | None = Field(None, description="CRS of returned GeoJSON (default storage).")
    geojson: bool = Field(True, description="Include flooded nodes and extents as GeoJSON.")

    def design_storm(self) -> DesignStorm | None:
        """The Chicago design storm asked for, or None for the model's own rain."""
        if self.storm is None:
            return None
        return simulation_storm.chicago_storm(
            simulation_storm.formula_named(self.storm.formula),
            return_period=self.storm.return_period_a,
            duration_min=self.storm.duration_min,
            peak_ratio=self.storm.peak_ratio,
            step_min=self.storm.step_min,
        )


class FloodRequest(FloodParameters):
    extents: bool = Field(True, description="Spread flood volumes over the DEM.")


@router.post(
    "/drainage/flood",
    summary="Urban flooding (城市内涝)",
    tags=["drainage simulations"],
    response_model=FloodSimulation,
    responses=TABLE_ALTERNATIVES,
)
def flood(
    body: FloodRequest, session: ReadSessionDep, hidden: HiddenDep, wanted: TableDep
) -> FloodSimulation | Response:
    """Run SWMM on a stored drainage network with its own rain or a Chicago design storm from a
    storm-intensity formula: flooded nodes (volume, hours, depth, DEM extent), surcharged
    conduits, outfall volumes and totals. Nothing is stored.

    ``format=csv`` writes the flooded nodes (``table=conduits`` or ``outfalls`` for the
    others); ``format=xlsx`` all three, one sheet each."""
    refuse_hidden("PS", hidden)
    found = simulation_flood.flood_simulation(
        session,
        body.dataset_id,
        storm=body.design_storm(),
        tail_h=body.tail_h,
        with_extents=body.extents,
        output_crs=body.geojson_crs,
        with_geojson=body.geojson and wanted.format == "json",  # files hold no geometry
    )
    return answer_as(wanted, found, "drainage-flood")


class FloodHazardsRequest(FloodParameters):
    name: str = Field(
        min_length=1,
        max_length=simulation_flood_hazards.MAX_NAME_LENGTH,
        description="Name of the hazard dataset.",
    )


@router.post(
    "/drainage/flood/hazards",
    summary="Save a flood as hazard zones (内涝区存为灾害区)",
    tags=["drainage simulations"],
    status_code=status.HTTP_201_CREATED,
)
def flood_hazards(
    body: FloodHazardsRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: AnalystDep,
    hidden: HiddenDep,
    catalog: CatalogDep,
) -> FloodHazards:
    """Run the flood as ``POST /analysis/drainage/flood`` does and store its DEM extents as a
    hazard dataset ``name``: one zone of kind ``flood`` per flooded node, with the return
    period, storm duration, simulation id, volume and depths in its attrs, so a shelter plan
    with ``exclude_hazards: ["flood"]`` leaves the shelters in them out. Needs an analyst (or
    admin) key; a flood without extents stores nothing (400); the same run saved again stores
    nothing and answers the dataset saved first (200, ``created: false``)."""
    refuse_hidden("PS", hidden)
    found = simulation_flood_hazards.save_flood_hazards(
        session,
        body.dataset_id,
        name=body.name,
        storm=body.design_storm(),
        tail_h=body.tail_h,
        output_crs=body.geojson_crs,
        with_geojson=body.geojson,
    )
    if found.created:
        audit(
            session,
            principal=principal,
            action="create",
            resource=f"datasets/{found.dataset.id}",
            client=client_address(request),
            detail={"kind": "hazards", "name": found.dataset.name, "source": found.simulation_id},
        )
        catalog.invalidate()  # the hazard_zones collection's extent grew
    else:
        response.status_code = status.HTTP_200_OK
    return found
