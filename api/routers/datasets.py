"""Datasets and import jobs: list, show and delete datasets; upload files to import later."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import AdminDep, HiddenDep, client_address
from api.deps import CatalogDep, EngineDep, JobRunnerDep, SessionDep
from api.jobs import get_job, job_json
from api.ogc import PROBLEMS
from api.sessions import ReleasingRoute
from api.uploads import UPLOAD_REQUEST_BODY, queue_upload, read_upload
from cim.services.access import audit
from cim.services.datasets import (
    DatasetSummary,
    dataset_summary,
    delete_dataset,
    get_dataset,
    list_datasets,
)
from importers.registry import importer

router = APIRouter(route_class=ReleasingRoute, tags=["datasets"], responses=PROBLEMS)

OBJECT = {"type": "object", "additionalProperties": True}
OBJECT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": OBJECT}}}
}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _with_links(summary: DatasetSummary, base: str) -> dict[str, Any]:
    link = {"rel": "self", "type": "application/json", "href": f"{base}/datasets/{summary.id}"}
    return {**summary.model_dump(mode="json"), "links": [link]}


@router.get("/datasets", summary="Imported datasets", responses=OBJECT_RESPONSE)
def datasets(
    request: Request,
    session: SessionDep,
    hidden: HiddenDep,
    kind: Annotated[str | None, Query(max_length=16, description="Only this kind.")] = None,
) -> JSONResponse:
    """Every ready dataset, newest first, with counts and QC summary; without a key, not the
    pipe datasets holding sensitive classes (gas, power)."""
    base = _base(request)
    found = list_datasets(session, kind=kind, hidden_utilities=hidden)
    return JSONResponse({"datasets": [_with_links(dataset_summary(d), base) for d in found]})


@router.get("/datasets/{dataset_id}", summary="One dataset", responses=OBJECT_RESPONSE)
def dataset(
    dataset_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    session: SessionDep,
    hidden: HiddenDep,
) -> JSONResponse:
    """A dataset's summary and full QC report (404 without a key for a restricted one)."""
    found = get_dataset(session, dataset_id=dataset_id, hidden_utilities=hidden)
    return JSONResponse(_with_links(dataset_summary(found), _base(request)))


@router.delete(
    "/datasets/{dataset_id}",
    summary="Delete a dataset (admin)",
    status_code=204,
    responses={204: {"description": "Deleted"}},
)
def remove_dataset(
    dataset_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    catalog: CatalogDep,
) -> None:
    """Delete the dataset and every row of it (cascade)."""
    deleted = delete_dataset(session, dataset_id=dataset_id)
    audit(
        session,
        principal=principal,
        action="delete",
        resource=f"datasets/{dataset_id}",
        client=client_address(request),
        detail={"kind": deleted.kind, "name": deleted.name},
    )
    catalog.invalidate()


@router.post(
    "/datasets",
    summary="Upload a file and import it in the background (admin)",
    status_code=202,
    responses={202: {"content": {"application/json": {"schema": OBJECT}}}},
    openapi_extra=UPLOAD_REQUEST_BODY,
)
async def upload(
    request: Request, engine: EngineDep, runner: JobRunnerDep, principal: AdminDep
) -> JSONResponse:
    """Save the upload, queue the import, answer 202 with the job; poll ``GET /jobs/{id}``.

    The key is checked before the body is read: the form is read here (``api.uploads``).
    """
    async with read_upload(request) as form:
        importer(form.fields.kind)  # an unknown kind is refused before the upload is saved
        job = await run_in_threadpool(queue_upload, request, engine, runner, principal, form)
    body = job_json(job, _base(request))
    return JSONResponse(body, status_code=202, headers={"Location": body["links"][0]["href"]})


@router.get("/jobs/{job_id}", summary="An import job (admin)", responses=OBJECT_RESPONSE)
def job(
    job_id: Annotated[str, Path(max_length=64)],
    request: Request,
    session: SessionDep,
    principal: AdminDep,
) -> JSONResponse:
    """Status (queued, running, succeeded, failed), progress 0..1, result or error."""
    return JSONResponse(job_json(get_job(session, job_id), _base(request)))
