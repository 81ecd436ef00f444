"""Background jobs of the API process: uploads queued as durable jobs, and this process's worker.

No request waits for an import: ``POST /datasets`` saves the upload under the data dir, commits a
``queued`` row in ``import_job`` and answers 202 at once. The queue lives in PostgreSQL
(:mod:`cim.jobs.queue`: claimed with ``FOR UPDATE SKIP LOCKED``, heartbeats, stale jobs re-queued
or failed; why not procrastinate is said there), so any process runs the job: the worker thread
every ``cim serve`` process starts (:class:`JobRunner`), or a ``cim worker``. A job survives a
restart of the API: a worker that dies mid-job leaves a stale heartbeat, and the job is run again
(imports are one transaction: the dataset is absent or complete) or failed after its attempts.
A successful import queues the refresh of its tile layers (``tiles`` task, :mod:`tiles.refresh`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api import metrics
from api.upload_sweep import OWNER_FILE, YOUNG_SECONDS, this_worker
from cim.db.engine import make_engine
from cim.db.models import ImportJob
from cim.jobs import queue
from cim.jobs.queue import Claim
from cim.jobs.worker import Handler, Hooks, JobWorker
from cim.processes import process_alive
from importers.jobs import ImportTask, upload_paths
from importers.registry import importer
from tiles.layers import DEFAULT_SENSITIVE
from tiles.refresh import TilesTask

REFRESH_TILES_AFTER_IMPORT = True
"""Default of ``CIM_TILES_REFRESH_AFTER_IMPORT``: an API import queues its tile layers' refresh."""
SERVE_RUNS_JOBS = True
"""Default of ``CIM_SERVE_JOBS``: every API process runs a job worker thread."""
STOP_WAIT_SECONDS = 5.0
"""On shutdown, how long the running job may take to end before the process goes on exiting
(a job cut short is re-queued by another worker once its heartbeat is stale)."""
logger = logging.getLogger("cim.api")


def job_handlers(
    import_options: dict[str, Any], tiles_dir: Path, sensitive: frozenset[str]
) -> dict[str, Handler]:
    """The tasks a worker runs: imports (with the server's limits) and tile refreshes."""
    return {"import": ImportTask(import_options), "tiles": TilesTask(tiles_dir, sensitive)}


def job_json(job: ImportJob, base: str) -> dict[str, Any]:
    """The job resource: :func:`cim.jobs.queue.job_dict` with links."""
    links = [{"rel": "self", "type": "application/json", "href": f"{base}/jobs/{job.id}"}]
    if job.dataset_id is not None:
        href = f"{base}/datasets/{job.dataset_id}"
        links.append({"rel": "dataset", "type": "application/json", "href": href})
    return {**queue.job_dict(job), "links": links}


def get_job(session: Session, job_id: str) -> ImportJob:
    """A job by id; a running job whose worker is gone is re-queued or failed first."""
    if len(job_id) <= 36:
        queue.recover(session, job_id=job_id)
    return queue.get(session, job_id)


def retry_job(session: Session, job_id: str) -> ImportJob:
    """Queue a failed job again; an import whose upload is gone is refused (InvalidInput)."""
    job = queue.get(session, job_id)
    if job.task == "import" and job.status == "failed":
        upload_paths(job.options)
    return queue.retry(session, job_id)


class _ApiHooks(Hooks):
    """Import metrics of this process and the catalog's refresh after each job."""

    def __init__(self, on_finished: Callable[[], None]) -> None:
        self.on_finished = on_finished

    def ended(self, job: Claim, status: str, seconds: float, result: dict[str, Any]) -> None:
        if job.task == "import":
            metrics.job_finished(job.kind, status, seconds, result.get("imports", []))
        self.on_finished()


class JobRunner:
    """Queues uploads and runs this process's job worker; made in the app's lifespan
    (``api.main``) with an engine of its own, stopped and disposed by :meth:`close`."""

    def __init__(
        self,
        engine: Engine,
        uploads_dir: Path,
        *,
        on_finished: Callable[[], None] = lambda: None,
        import_options: dict[str, Any] | None = None,
        tiles_dir: Path | None = None,
        sensitive: frozenset[str] = DEFAULT_SENSITIVE,
        run_jobs: bool = SERVE_RUNS_JOBS,
        refresh_tiles: bool = REFRESH_TILES_AFTER_IMPORT,
    ) -> None:
        self.uploads_dir = uploads_dir
        self.run_jobs = run_jobs
        self.refresh_tiles = refresh_tiles
        self._engine = engine
        handlers = job_handlers(
            dict(import_options or {}), tiles_dir or uploads_dir.parent / "tiles", sensitive
        )
        self.worker = JobWorker(engine, handlers, hooks=_ApiHooks(on_finished))

    @classmethod
    def for_database(cls, database_url: str, uploads_dir: Path, **options: Any) -> JobRunner:
        """A runner with its own small pool (job, heartbeat, tile lock) and no statement
        timeout: imports take as long as they take."""
        return cls(make_engine(database_url, pool_size=3), uploads_dir, **options)

    def start(self) -> None:
        """Start this process's worker thread (unless ``CIM_SERVE_JOBS`` is off)."""
        if self.run_jobs:
            self.worker.start()

    def close(self) -> None:
        """Stop the worker (waiting a little for its job), then dispose the engine."""
        self.worker.stop(STOP_WAIT_SECONDS)
        self._engine.dispose()

    def new_upload_folder(self) -> tuple[str, Path]:
        job_id = str(uuid.uuid4())
        folder = self.uploads_dir / job_id
        folder.mkdir(parents=True, exist_ok=False)
        (folder / OWNER_FILE).write_text(this_worker())
        return job_id, folder

    def sweep_orphaned_uploads(self) -> list[str]:
        """Re-queue or fail the jobs of dead workers, then remove the upload folders no job
        needs any more (see :func:`sweep_upload_folders`)."""
        try:
            with Session(self._engine) as session, session.begin():
                queue.recover(session, own_worker=self.worker.worker)
            return sweep_upload_folders(self._engine, self.uploads_dir)
        except SQLAlchemyError as exc:  # started without the database: sweep next start
            logger.warning("upload sweep skipped without the database (%s)", exc)
            return []

    def submit(
        self,
        engine: Engine,
        *,
        job_id: str,
        kind: str,
        paths: list[Path],
        options: dict[str, Any],
        folder: Path,
        before_commit: Callable[[Session], None] = lambda session: None,
    ) -> ImportJob:
        """Commit the ``queued`` import job (any worker may take it from then on)."""
        importer(kind)  # an unknown kind is refused before anything is written
        stored = {
            **options,
            "files": [path.name for path in paths],
            "upload_dir": str(folder.resolve()),
            "refresh_tiles": self.refresh_tiles,
            "worker": this_worker(),  # the upload's owner (api.upload_sweep)
        }
        with Session(engine, expire_on_commit=False) as session, session.begin():
            job = queue.enqueue(session, task="import", kind=kind, options=stored, job_id=job_id)
            before_commit(session)
        self.worker.wake()
        return job


def _owner_gone(folder: Path) -> bool:
    """An upload folder without a job row: its maker on this host is gone (or it is old and
    has no owner file)."""
    owner_file = folder / OWNER_FILE
    if not owner_file.is_file():
        return time.time() - folder.stat().st_mtime > YOUNG_SECONDS
    host, _, pid = owner_file.read_text().strip().partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) == os.getpid() or not process_alive(int(pid))


def sweep_upload_folders(engine: Engine, uploads_dir: Path) -> list[str]:
    """Remove the upload folders of finished jobs and those whose request died before its job
    was queued; folders of queued and running jobs stay (any worker may still need them)."""
    if not uploads_dir.is_dir():
        return []
    folders = [path for path in uploads_dir.iterdir() if path.is_dir() and len(path.name) <= 36]
    with Session(engine) as session:
        rows = session.execute(
            select(ImportJob.id, ImportJob.status).where(
                ImportJob.id.in_([path.name for path in folders])
            )
        ).all()
    status = {row.id: row.status for row in rows}
    removed = []
    for folder in folders:
        state = status.get(folder.name)
        if state in ("succeeded", "failed") or (state is None and _owner_gone(folder)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
            logger.warning("removed upload folder %s (its job is over or never queued)", folder)
    return removed
