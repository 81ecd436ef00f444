"""Datasets and import jobs: list, show and delete datasets; upload files to import later."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.auth import AdminDep, HiddenDep, client_address
from api.deps import CatalogDep, EngineDep, JobRunnerDep, SessionDep
from api.jobs import get_job, job_json
from api.ogc import PROBLEMS
from cim.errors import InvalidInput
from cim.services.access import Principal, audit
from cim.services.datasets import (
    DatasetSummary,
    dataset_summary,
    delete_dataset,
    get_dataset,
    list_datasets,
)
from importers.registry import IMPORTERS, importer

router = APIRouter(tags=["datasets"], responses=PROBLEMS)

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
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
)
def upload(
    request: Request,
    engine: EngineDep,
    runner: JobRunnerDep,
    principal: AdminDep,
    kind: Annotated[str, Form(description=f"One of {', '.join(IMPORTERS)}.")],
    files: Annotated[list[UploadFile], File(description="The source file(s).")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    crs: Annotated[
        str | None, Form(max_length=4000, description="Source CRS, e.g. EPSG:4547.")
    ] = None,
    origin: Annotated[
        str | None, Form(max_length=100, description="E,N[,H] for local coordinates.")
    ] = None,
    rotation: Annotated[float | None, Form(ge=-360, le=360, description="Degrees (ifc).")] = None,
    utility: Annotated[
        str | None, Form(max_length=16, description="Utility class (pipes).")
    ] = None,
    format: Annotated[str | None, Form(max_length=16, description="Pipe format (pipes).")] = None,
    replace: Annotated[bool, Form()] = False,
    noding: Annotated[
        Literal["intersections", "vertices"] | None,
        Form(description="Where road lines become network edges (roads): see cim import roads."),
    ] = None,
    valves: Annotated[
        UploadFile | None,
        File(description="Isolation valve layer CSV, link,node[,state] (pipes, EPANET)."),
    ] = None,
) -> JSONResponse:
    """Save the upload, queue the import, answer 202 with the job; poll ``GET /jobs/{id}``."""
    importer(kind)  # an unknown kind is refused before the upload is saved
    if not files:
        raise InvalidInput("upload at least one file")
    job_id, folder = runner.new_upload_folder()
    try:
        paths = [_save(upload_file, folder, "upload") for upload_file in files]
        given = {"name": name, "crs": crs, "origin": origin, "rotation": rotation}
        given |= {"utility": utility, "format": format, "replace": replace, "noding": noding}
        given |= {"valves": _save_valve_layer(valves, folder, paths)}
        options = _job_options(given, paths)
        job = runner.submit(
            engine,
            job_id=job_id,
            kind=kind,
            paths=paths,
            options=options,
            folder=folder,
            before_commit=_audit_import(request, principal, job_id, kind, options["files"]),
        )
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    body = job_json(job, _base(request))
    return JSONResponse(body, status_code=202, headers={"Location": body["links"][0]["href"]})


def _safe_name(filename: str | None, default: str) -> str:
    """A file name safe to save in the upload folder (no path, no leading dot)."""
    return SAFE_NAME.sub("_", FilePath(filename or default).name).lstrip(".") or default


def _save(upload_file: UploadFile, folder: FilePath, default: str) -> FilePath:
    """Write an uploaded file into ``folder`` under its safe name; its path."""
    target = folder / _safe_name(upload_file.filename, default)
    with open(target, "wb") as out:
        shutil.copyfileobj(upload_file.file, out, 1 << 20)
    return target


def _job_options(given: dict[str, Any], paths: list[FilePath]) -> dict[str, Any]:
    """The options a job stores: the form values given (not empty) and the saved file names."""
    options = {**given, "files": [p.name for p in paths]}
    return {key: value for key, value in options.items() if value not in (None, "")}


def _audit_import(
    request: Request, principal: Principal, job_id: str, kind: str, files: list[str]
) -> Callable[[Session], None]:
    """The audit record of an upload, written in the transaction that queues its job."""

    def log(session: Session) -> None:
        audit(
            session,
            principal=principal,
            action="import",
            resource=f"jobs/{job_id}",
            client=client_address(request),
            detail={"kind": kind, "files": files},
        )

    return log


def _save_valve_layer(
    valves: UploadFile | None, folder: FilePath, paths: list[FilePath]
) -> str | None:
    """Save an uploaded valve layer next to the network file; its name, or None."""
    if valves is None or not valves.filename:
        return None
    filename = _safe_name(valves.filename, "valves.csv")
    if filename in {p.name for p in paths}:
        raise InvalidInput(f"the valve layer {filename} has the name of a network file")
    return _save(valves, folder, "valves.csv").name


@router.get("/jobs/{job_id}", summary="An import job (admin)", responses=OBJECT_RESPONSE)
def job(
    job_id: Annotated[str, Path(max_length=64)],
    request: Request,
    session: SessionDep,
    principal: AdminDep,
) -> JSONResponse:
    """Status (queued, running, succeeded, failed), progress 0..1, result or error."""
    return JSONResponse(job_json(get_job(session, job_id), _base(request)))
