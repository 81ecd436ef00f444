"""The ``import`` task of the job queue: import an upload that any worker process can find.

An upload is saved under ``CIM_DATA_DIR/uploads/<job id>`` (``api.uploads``); the job's options
name that folder (``upload_dir``) and the file names (``files``), so a ``cim worker`` in another
process (sharing the data dir) runs it as well as the API process that took the upload. The
folder is removed once the import succeeded; a failed job keeps it so it can be retried.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cim.errors import InvalidInput
from cim.jobs.queue import Claim
from cim.jobs.worker import FollowUp, JobOutcome, Progress
from importers.registry import importer


def upload_paths(options: dict[str, Any]) -> list[Path]:
    """The uploaded files of an import job; InvalidInput when they are gone."""
    folder = Path(str(options.get("upload_dir", "")))
    names = [str(name) for name in options.get("files", [])]
    paths = [folder / name for name in names]
    if not options.get("upload_dir") or not names or not all(p.is_file() for p in paths):
        raise InvalidInput("the uploaded files of this job are gone; upload them again")
    return paths


def run_import_job(
    engine: Engine, kind: str, paths: list[Path], options: dict[str, Any], progress: Progress
) -> list[dict[str, Any]]:
    """Run the importer of ``kind`` (from the registry) on an upload; the summaries to store."""
    entry = importer(kind)
    values = dict(options)
    if values.get("valves"):  # saved next to the uploaded network file
        values["valves"] = paths[0].parent / values["valves"] if paths else None
    results = entry.run(
        engine,
        paths,
        entry.options.model_validate(values),
        lambda stage, done, total: progress(done / total if total else 0.0, stage),
    )
    return [result.to_dict() for result in results]


class ImportTask:
    """The ``import`` handler; ``server_options`` (limits, the data dir) come from the worker's
    settings and win over the job's, and are never stored in the job."""

    def __init__(self, server_options: dict[str, Any]) -> None:
        self.server_options = dict(server_options)

    def accepts(self, kind: str) -> bool:
        return True

    def run(self, engine: Engine, job: Claim, progress: Progress) -> JobOutcome:
        """Import the upload; with ``refresh_tiles`` in the options, a ``tiles`` job follows."""
        paths = upload_paths(job.options)
        options = {**job.options, **self.server_options}
        results = run_import_job(engine, job.kind, paths, options, progress)
        shutil.rmtree(paths[0].parent, ignore_errors=True)
        datasets = [r["dataset"]["id"] for r in results if r.get("dataset")]
        dataset_id = datasets[0] if datasets else None
        follow_ups = []
        # also when the file was imported before: the attempt that imported it may have died
        # before its refresh was queued, and an up-to-date layer costs the tiler one query
        if job.options.get("refresh_tiles") and dataset_id is not None:
            follow_ups.append(
                FollowUp("tiles", job.kind, {"import_job": job.id}, dataset_id=dataset_id)
            )
        return JobOutcome({"imports": results}, dataset_id, follow_ups)
