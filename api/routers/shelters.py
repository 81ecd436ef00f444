"""``/analysis/shelters``: shelter zoning plans, zones, uncovered units, site suggestion.

A plan's zones and uncovered units also come as files to hand on: ``format=csv|xlsx`` with
``lang=zh|en`` (:mod:`api.tables`).
"""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import AnalystDep
from api.bounds import BOUNDED
from api.deps import SessionDep
from api.ogc import PROBLEMS
from api.requests import AreaPerPerson, GridSpacing, PositiveDistance, SolverSeconds
from api.sessions import ReleasingRoute
from api.tables import TABLE_ALTERNATIVES, TableDep, answer_as
from cim.services.shelters import plan as shelter_plan
from cim.services.shelters import suggest as shelter_suggest
from cim.services.shelters import zones as shelter_zones
from cim.services.shelters.models import (
    PlanListing,
    PlanSummary,
    SiteSuggestion,
    UncoveredCollection,
    ZoneCollection,
)

router = APIRouter(
    route_class=ReleasingRoute, prefix="/analysis/shelters", tags=["shelters"], responses=PROBLEMS
)


def _described(model: type[BaseModel], name: str) -> str | None:
    """The description of a field of the service's parameters (kept in one place)."""
    return model.model_fields[name].description


class PlanRequest(shelter_plan.PlanParameters):
    """The plan parameters of a request: numbers finite, distances and times in range."""

    model_config = ConfigDict(allow_inf_nan=False)

    radius_m: dict[str, PositiveDistance] = Field(
        default_factory=dict, description=_described(shelter_plan.PlanParameters, "radius_m")
    )
    area_per_person_m2: dict[str, AreaPerPerson] = Field(
        default_factory=dict,
        description=_described(shelter_plan.PlanParameters, "area_per_person_m2"),
    )
    access_max_m: PositiveDistance = Field(
        500.0, description=_described(shelter_plan.PlanParameters, "access_max_m")
    )
    time_limit_s: SolverSeconds = Field(
        60.0, description=_described(shelter_plan.PlanParameters, "time_limit_s")
    )


class SuggestRequest(shelter_suggest.SuggestParameters):
    """The suggestion parameters of a request: numbers finite, distances and times in range."""

    model_config = ConfigDict(allow_inf_nan=False)

    radius_m: PositiveDistance | None = Field(
        None, description=_described(shelter_suggest.SuggestParameters, "radius_m")
    )
    grid_spacing_m: GridSpacing | None = Field(
        None, description=_described(shelter_suggest.SuggestParameters, "grid_spacing_m")
    )
    access_max_m: PositiveDistance = Field(
        500.0, description=_described(shelter_suggest.SuggestParameters, "access_max_m")
    )
    time_limit_s: SolverSeconds = 60.0


@router.post(
    "/plans",
    status_code=status.HTTP_201_CREATED,
    summary="Compute a shelter plan",
    dependencies=BOUNDED,
)
def create_plan(params: PlanRequest, session: SessionDep, principal: AnalystDep) -> PlanSummary:
    """Assign residents to shelters optimally (max covered, then min person-distance) and store
    the plan: per-shelter load and zone, uncovered persons with their reason, statistics.
    Storing a plan writes analysis results, so it needs an analyst (or admin) key."""
    return shelter_plan.create_plan(session, params=params)


@router.get("/plans", summary="List shelter plans")
def list_plans(session: SessionDep) -> list[PlanListing]:
    """Every plan, newest first, with its coverage."""
    return shelter_plan.list_plans(session)


@router.get("/plans/latest", summary="The newest shelter plan")
def latest_plan(session: SessionDep) -> PlanSummary:
    """The newest plan's summary (404 when there is none)."""
    return shelter_plan.plan_summary(session, plan_id=shelter_plan.latest_plan_id(session))


@router.get("/plans/{plan_id}", summary="One shelter plan")
def get_plan(plan_id: int, session: SessionDep) -> PlanSummary:
    """Parameters, statistics (coverage, uncovered by reason, distances, solver) and, per
    shelter, assigned population, capacity, load ratio and zone area."""
    return shelter_plan.plan_summary(session, plan_id=plan_id)


@router.get(
    "/plans/{plan_id}/zones",
    summary="Service zones of a plan (GeoJSON)",
    response_model=ZoneCollection,
    responses=TABLE_ALTERNATIVES,
)
def plan_zones(plan_id: int, session: SessionDep, wanted: TableDep) -> ZoneCollection | Response:
    """One feature per usable shelter (WGS84) with population, capacity and load_ratio - what
    the viewer colours; csv/xlsx: one row per shelter (no geometry)."""
    found = shelter_zones.zone_features(session, plan_id=plan_id)
    return answer_as(wanted, found, f"shelter-plan-{plan_id}-zones")


@router.get(
    "/plans/{plan_id}/uncovered",
    summary="Uncovered units of a plan (GeoJSON)",
    response_model=UncoveredCollection,
    responses=TABLE_ALTERNATIVES,
)
def plan_uncovered(
    plan_id: int, session: SessionDep, wanted: TableDep
) -> UncoveredCollection | Response:
    """Units with uncovered persons (WGS84), with the count and the reason; csv/xlsx: one row
    per unit (no geometry)."""
    found = shelter_zones.uncovered_features(session, plan_id=plan_id)
    return answer_as(wanted, found, f"shelter-plan-{plan_id}-uncovered")


@router.post("/suggest", summary="Suggest new shelter sites (MCLP)", dependencies=BOUNDED)
def suggest(params: SuggestRequest, session: SessionDep) -> SiteSuggestion:
    """Choose k candidate sites maximising the newly covered population; reports the gain."""
    return shelter_suggest.suggest_sites(session, params=params)
