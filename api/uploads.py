"""``POST /datasets`` uploads: the form is read only after the key is checked, then saved.

FastAPI parses a multipart body declared with ``File()``/``Form()`` parameters before any
dependency runs, so an anonymous caller could make the server spool a whole upload to disk
before its 401. The route therefore declares no body parameters: it authenticates, then reads
the form itself (:func:`read_upload`), validates the fields with :class:`UploadFields` and the
file names with :func:`safe_file_name`, and only then saves the files into the job's folder.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from api.auth import client_address
from api.jobs import JobRunner
from cim.db.models import ImportJob
from cim.errors import InvalidInput
from cim.services.access import Principal, audit
from importers.registry import IMPORTERS

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILE_NAME = 200
"""Longest upload file name accepted (characters); longer ones are a 400."""
MAX_UPLOAD_FILES = 64
MAX_UPLOAD_FIELDS = 32


class UploadFields(BaseModel):
    """The text fields of an upload form (empty values count as not given)."""

    model_config = ConfigDict(extra="ignore")

    kind: str = Field(description=f"One of {', '.join(IMPORTERS)}.")
    name: str | None = Field(None, max_length=200)
    crs: str | None = Field(None, max_length=4000, description="Source CRS, e.g. EPSG:4547.")
    origin: str | None = Field(None, max_length=100, description="E,N[,H] for local coordinates.")
    rotation: float | None = Field(
        None, ge=-360, le=360, allow_inf_nan=False, description="Degrees (ifc)."
    )
    utility: str | None = Field(None, max_length=16, description="Utility class (pipes).")
    format: str | None = Field(None, max_length=16, description="Pipe format (pipes).")
    replace: bool = False
    noding: Literal["intersections", "vertices"] | None = Field(
        None,
        description="Where road lines become network edges (roads): see cim import roads.",
    )


def _request_body() -> dict[str, Any]:
    """The multipart body as OpenAPI shows it (the route declares no body parameters)."""
    schema = UploadFields.model_json_schema()
    files = {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "description": "The source file(s).",
    }
    valves = {
        "type": "string",
        "format": "binary",
        "description": "Isolation valve layer CSV, link,node[,state] (pipes, EPANET).",
    }
    properties = schema["properties"]
    schema["properties"] = {"kind": properties.pop("kind"), "files": files, **properties}
    schema["properties"]["valves"] = valves
    schema["required"] = ["kind", "files"]
    schema["title"] = "Upload"
    content = {"multipart/form-data": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


UPLOAD_REQUEST_BODY = _request_body()


@dataclass
class Upload:
    """A read upload form: its fields, the source files and the optional valve layer."""

    fields: UploadFields
    files: list[UploadFile]
    valves: UploadFile | None


@asynccontextmanager
async def read_upload(request: Request) -> AsyncIterator[Upload]:
    """Read and check the multipart form (call after authenticating); its temp files are
    closed on exit."""
    form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FIELDS)
    try:
        yield _upload(form)
    finally:
        await form.close()


def _upload(form: FormData) -> Upload:
    values = {key: v for key, v in form.multi_items() if isinstance(v, str) and v != ""}
    try:
        fields = UploadFields.model_validate(values)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    files = form.getlist("files")
    if not files or not all(isinstance(f, UploadFile) for f in files):
        raise InvalidInput("files: upload at least one file (file parts named 'files')")
    valves = form.get("valves")
    if valves is not None and not isinstance(valves, UploadFile):
        raise InvalidInput("valves: expected a file")
    uploaded = [f for f in files if isinstance(f, UploadFile)]
    for upload_file in [*uploaded, valves]:
        if upload_file is not None:
            safe_file_name(upload_file.filename, "upload")  # refused before anything is saved
    return Upload(fields, uploaded, valves)


def safe_file_name(filename: str | None, default: str) -> str:
    """The name an uploaded file is saved under; InvalidInput for a name that is too long or
    holds a path separator or NUL.

    Examples
    --------
    >>> safe_file_name("JS LINE (2).csv", "upload")
    'JS_LINE_2_.csv'
    >>> safe_file_name(None, "valves.csv")
    'valves.csv'
    """
    if not filename:
        return default
    if len(filename) > MAX_FILE_NAME:
        raise InvalidInput(f"upload file name longer than {MAX_FILE_NAME} characters")
    if any(character in filename for character in "/\\\x00"):
        raise InvalidInput("upload file names must not contain path separators or NUL")
    return SAFE_NAME.sub("_", filename).lstrip(".") or default


def queue_upload(
    request: Request, engine: Engine, runner: JobRunner, principal: Principal, upload: Upload
) -> ImportJob:
    """Save the files into a new job folder and queue the import (the folder goes on error)."""
    job_id, folder = runner.new_upload_folder()
    try:
        paths = [_save(upload_file, folder, "upload") for upload_file in upload.files]
        given = upload.fields.model_dump(exclude={"kind"})
        given["valves"] = _save_valve_layer(upload.valves, folder, paths)
        options = _job_options(given, paths)
        kind = upload.fields.kind
        return runner.submit(
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


def _save(upload_file: UploadFile, folder: Path, default: str) -> Path:
    """Write an uploaded file into ``folder`` under its safe name; its path."""
    target = folder / safe_file_name(upload_file.filename, default)
    with open(target, "wb") as out:
        shutil.copyfileobj(upload_file.file, out, 1 << 20)
    return target


def _job_options(given: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
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


def _save_valve_layer(valves: UploadFile | None, folder: Path, paths: list[Path]) -> str | None:
    """Save an uploaded valve layer next to the network file; its name, or None."""
    if valves is None or not valves.filename:
        return None
    filename = safe_file_name(valves.filename, "valves.csv")
    if filename in {p.name for p in paths}:
        raise InvalidInput(f"the valve layer {filename} has the name of a network file")
    return _save(valves, folder, "valves.csv").name
