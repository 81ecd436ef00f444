"""Background jobs: list them (newest first) and retry a failed one. ``GET /jobs/{id}`` is in
:mod:`api.routers.datasets`, beside the upload that makes a job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from api.auth import AdminDep, AnalystDep, client_address
from api.deps import JobRunnerDep, SessionDep
from api.jobs import job_json, retry_job
from api.ogc import PROBLEMS
from api.sessions import ReleasingRoute
from cim.db.models.access import JOB_STATUSES, JOB_TASKS
from cim.jobs import queue
from cim.services.access import audit

router = APIRouter(route_class=ReleasingRoute, tags=["jobs"], responses=PROBLEMS)

OBJECT = {"type": "object", "additionalProperties": True}
MAX_LIMIT = 500


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _page_link(request: Request, rel: str, offset: int) -> dict[str, str]:
    url = request.url.include_query_params(offset=offset)
    return {"rel": rel, "type": "application/json", "href": str(url)}


@router.get(
    "/jobs",
    summary="Background jobs, newest first (analyst or admin)",
    responses={200: {"content": {"application/json": {"schema": OBJECT}}}},
)
def jobs(
    request: Request,
    session: SessionDep,
    principal: AnalystDep,
    status: Annotated[
        str | None, Query(max_length=16, description=f"One of {', '.join(JOB_STATUSES)}.")
    ] = None,
    task: Annotated[
        str | None, Query(max_length=16, description=f"One of {', '.join(JOB_TASKS)}.")
    ] = None,
    kind: Annotated[str | None, Query(max_length=16, description="Dataset kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> JSONResponse:
    """Imports and tile refreshes with status, attempts, progress, result or error; paged with
    ``limit``/``offset`` (``next``/``prev`` links), filtered by status, task and dataset kind."""
    found, total = queue.list_jobs(
        session, status=status, task=task, kind=kind, limit=limit, offset=offset
    )
    base = _base(request)
    links = [_page_link(request, "self", offset)]
    if offset + limit < total:
        links.append(_page_link(request, "next", offset + limit))
    if offset > 0:
        links.append(_page_link(request, "prev", max(0, offset - limit)))
    body: dict[str, Any] = {
        "jobs": [job_json(job, base) for job in found],
        "numberMatched": total,
        "numberReturned": len(found),
        "links": links,
    }
    return JSONResponse(body)


@router.post(
    "/jobs/{job_id}/retry",
    summary="Queue a failed job again (admin)",
    status_code=202,
    responses={202: {"content": {"application/json": {"schema": OBJECT}}}},
)
def retry(
    job_id: Annotated[str, Path(max_length=64)],
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    runner: JobRunnerDep,
) -> JSONResponse:
    """A failed job goes back to the queue with a fresh set of attempts; 400 for a job that is
    not failed, or an import whose uploaded files are gone (upload them again)."""
    job = retry_job(session, job_id)
    audit(
        session,
        principal=principal,
        action="retry",
        resource=f"jobs/{job_id}",
        client=client_address(request),
        detail={"task": job.task, "kind": job.kind},
    )
    runner.worker.wake()  # committed when the route returns; else the worker's next poll sees it
    body = job_json(job, _base(request))
    return JSONResponse(body, status_code=202, headers={"Location": body["links"][0]["href"]})
