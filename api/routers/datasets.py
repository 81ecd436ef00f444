"""Datasets and import jobs: list, show and delete datasets; upload files to import later."""

from __future__ import annotations

import re
import shutil
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from api.auth import AdminDep, client_address
from api.deps import EngineDep, SessionDep, SettingsDep
from api.jobs import JobRunner, get_job, job_json
from api.ogc import PROBLEMS
from cim.config import CimSettings
from cim.errors import InvalidInput
from cim.services.access import audit
from cim.services.datasets import (
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


def _runner(request: Request, engine: Engine, settings: CimSettings) -> JobRunner:
    state = request.app.state
    runner: JobRunner | None = getattr(state, "job_runner", None)
    if runner is None:
        runner = JobRunner(
            engine.url.render_as_string(hide_password=False), settings.data_dir / "uploads"
        )

        def refresh_catalog() -> None:
            catalog = getattr(state, "catalog", None)
            if catalog is not None:
                catalog.invalidate()

        runner.on_finished = refresh_catalog
        state.job_runner = runner
    return runner


def _with_links(summary: dict[str, Any], base: str) -> dict[str, Any]:
    summary["links"] = [
        {"rel": "self", "type": "application/json", "href": f"{base}/datasets/{summary['id']}"}
    ]
    return summary


@router.get("/datasets", summary="Imported datasets", responses=OBJECT_RESPONSE)
def datasets(
    request: Request,
    session: SessionDep,
    kind: Annotated[str | None, Query(max_length=16, description="Only this kind.")] = None,
) -> JSONResponse:
    """Every ready dataset, newest first, with counts and QC summary."""
    base = _base(request)
    rows = [_with_links(dataset_summary(d), base) for d in list_datasets(session, kind=kind)]
    return JSONResponse({"datasets": rows})


@router.get("/datasets/{dataset_id}", summary="One dataset", responses=OBJECT_RESPONSE)
def dataset(
    dataset_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request, session: SessionDep
) -> JSONResponse:
    """A dataset's summary and full QC report."""
    return JSONResponse(
        _with_links(dataset_summary(get_dataset(session, dataset_id=dataset_id)), _base(request))
    )


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
    catalog = getattr(request.app.state, "catalog", None)
    if catalog is not None:
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
    settings: SettingsDep,
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
    runner = _runner(request, engine, settings)
    job_id, folder = runner.new_upload_folder()
    paths = []
    try:
        for upload_file in files:
            filename = SAFE_NAME.sub("_", FilePath(upload_file.filename or "upload").name)
            target = folder / (filename.lstrip(".") or "upload")
            with open(target, "wb") as out:
                shutil.copyfileobj(upload_file.file, out, 1 << 20)
            paths.append(target)
        valve_layer = _save_valve_layer(valves, folder, paths)
        options = {
            key: value
            for key, value in {
                "name": name,
                "crs": crs,
                "origin": origin,
                "rotation": rotation,
                "utility": utility,
                "format": format,
                "replace": replace,
                "noding": noding,
                "valves": valve_layer,
                "files": [p.name for p in paths],
            }.items()
            if value not in (None, "")
        }

        def log(session: Any) -> None:
            audit(
                session,
                principal=principal,
                action="import",
                resource=f"jobs/{job_id}",
                client=client_address(request),
                detail={"kind": kind, "files": options["files"]},
            )

        job = runner.submit(
            engine,
            job_id=job_id,
            kind=kind,
            paths=paths,
            options=options,
            folder=folder,
            before_commit=log,
        )
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    body = job_json(job, _base(request))
    return JSONResponse(body, status_code=202, headers={"Location": body["links"][0]["href"]})


def _save_valve_layer(
    valves: UploadFile | None, folder: FilePath, paths: list[FilePath]
) -> str | None:
    """Save an uploaded valve layer next to the network file; its name, or None."""
    if valves is None or not valves.filename:
        return None
    filename = SAFE_NAME.sub("_", FilePath(valves.filename).name).lstrip(".") or "valves.csv"
    if filename in {p.name for p in paths}:
        raise InvalidInput(f"the valve layer {filename} has the name of a network file")
    with open(folder / filename, "wb") as out:
        shutil.copyfileobj(valves.file, out, 1 << 20)
    return filename


@router.get("/jobs/{job_id}", summary="An import job (admin)", responses=OBJECT_RESPONSE)
def job(
    job_id: Annotated[str, Path(max_length=64)],
    request: Request,
    session: SessionDep,
    principal: AdminDep,
) -> JSONResponse:
    """Status (queued, running, succeeded, failed), progress 0..1, result or error."""
    return JSONResponse(job_json(get_job(session, job_id), _base(request)))
