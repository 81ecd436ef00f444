"""``/analysis/pipes/shutdowns``: planned shutdowns (计划停水) - store, list, conflicts, cancel.

Thin: :mod:`cim.services.simulation.shutdown_plans` does the work. Storing a plan runs the
shutdown simulation over its hours (the heavy part, under the analysis deadline) and writes a
row, so it needs an analyst (or admin) key, as cancelling does; both are audited. Listing and
conflicts are reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import AwareDatetime, BaseModel, Field

from api.auth import AnalystDep, HiddenDep, client_address
from api.bounds import BOUNDED
from api.deps import ReadSessionDep, SessionDep
from api.ogc import PROBLEMS
from api.requests import DatabaseId
from api.sessions import ReleasingRoute
from cim.services.access import Principal, audit
from cim.services.simulation import shutdown_plans
from cim.services.simulation.shutdown_plan_models import (
    ShutdownConflictList,
    ShutdownPlan,
    ShutdownPlanList,
    StoredShutdownPlan,
)

router = APIRouter(
    route_class=ReleasingRoute,
    prefix="/analysis/pipes/shutdowns",
    tags=["pipe simulations"],
    responses=PROBLEMS,
)
PlanId = Annotated[int, Path(ge=1, le=2**62, description="Shutdown plan id")]
DatasetQuery = Annotated[DatabaseId | None, Query(alias="dataset", description="Dataset id.")]


class ShutdownPlanRequest(BaseModel):
    dataset_id: DatabaseId = Field(description="The water (EPANET) dataset.")
    title: str = Field(min_length=1, max_length=shutdown_plans.MAX_TITLE)
    starts_at: AwareDatetime = Field(description="Start, with a time zone.")
    ends_at: AwareDatetime = Field(description="End (after the start), with a time zone.")
    segment_id: DatabaseId | None = Field(None, description="Work segment: isolate it.")
    failed_valves: list[DatabaseId] = Field(
        default_factory=list, description="Valve node ids known stuck (the ring extends)."
    )
    valve_ids: list[DatabaseId] = Field(
        default_factory=list, description="Valve nodes to close (instead of a work segment)."
    )
    segment_ids: list[DatabaseId] = Field(
        default_factory=list, description="Pipes to close (instead of a work segment)."
    )


def _audit(
    request: Request, session: SessionDep, principal: Principal, action: str, what: str
) -> None:
    audit(
        session, principal=principal, action=action, resource=what, client=client_address(request)
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Store a planned shutdown (计划停水)",
    dependencies=BOUNDED,
)
def store(
    body: ShutdownPlanRequest,
    request: Request,
    session: SessionDep,
    principal: AnalystDep,
    hidden: HiddenDep,
) -> StoredShutdownPlan:
    """Store a shutdown planned from ``starts_at`` to ``ends_at``: the valves isolating a work
    segment (or given valves and pipes) are closed, the ring they cut off from every tank and
    reservoir is kept with the plan, and the answer lists the conflicts with the plans stored
    before it (same dataset, overlapping periods, shared ring segments or nodes)."""
    stored = shutdown_plans.store_plan(
        session,
        dataset_id=body.dataset_id,
        title=body.title,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        segment_id=body.segment_id,
        failed_valve_ids=body.failed_valves,
        valve_ids=body.valve_ids,
        segment_ids=body.segment_ids,
        created_by=principal.name,
        hidden_utilities=hidden,
    )
    _audit(request, session, principal, "create", f"analysis/pipes/shutdowns/{stored.plan.id}")
    return stored


@router.get("", summary="List planned shutdowns")
def list_plans(
    session: ReadSessionDep,
    dataset: DatasetQuery = None,
    at: Annotated[AwareDatetime | None, Query(description="Active at this instant.")] = None,
    start: Annotated[
        AwareDatetime | None, Query(alias="from", description="Overlapping [from, to).")
    ] = None,
    end: Annotated[
        AwareDatetime | None, Query(alias="to", description="End of the interval.")
    ] = None,
    cancelled: Annotated[bool, Query(description="Include cancelled plans.")] = False,
) -> ShutdownPlanList:
    """Plans by start time, optionally of one dataset, active at ``at`` or overlapping
    [``from``, ``to``)."""
    return shutdown_plans.list_plans(
        session,
        dataset_id=dataset,
        at=at,
        start=start,
        end=end,
        include_cancelled=cancelled,
    )


@router.get("/conflicts", summary="Conflicts between planned shutdowns")
def conflicts(session: ReadSessionDep, dataset: DatasetQuery = None) -> ShutdownConflictList:
    """Pairs of planned (not cancelled) shutdowns of one dataset active at once whose rings share
    segments or nodes (or one closes a valve on the other's ring), with the period they
    overlap."""
    return shutdown_plans.plan_conflicts(session, dataset_id=dataset)


@router.delete("/{plan_id}", summary="Cancel a planned shutdown")
def cancel(
    plan_id: PlanId, request: Request, session: SessionDep, principal: AnalystDep
) -> ShutdownPlan:
    """Cancel the plan (it is kept, ``status: cancelled``, and no longer conflicts)."""
    cancelled = shutdown_plans.cancel_plan(session, plan_id)
    _audit(request, session, principal, "cancel", f"analysis/pipes/shutdowns/{plan_id}")
    return cancelled
