"""Background import jobs: an upload is saved, a job row is written, a worker thread imports it.

No request waits for an import: ``POST /datasets`` returns the ``queued`` job at once and one
daemon worker per process runs jobs in order (imports are CPU- and IO-heavy; the machine is
small), recording progress in ``import_job``. Importers are chosen by kind through
``importers.registry`` and imported only when a job needs them. A job whose worker process died is
reported ``failed`` when read (its import transaction was rolled back by the database).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from api import metrics
from api.upload_sweep import OWNER_FILE, sweep_orphaned_uploads, this_worker
from cim.db.engine import make_engine
from cim.db.models import ImportJob
from cim.errors import CimError, NotFound
from cim.processes import process_alive
from importers.registry import importer

Progress = Callable[[float, str | None], None]
logger = logging.getLogger("cim.api")


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


def job_json(job: ImportJob, base: str) -> dict[str, Any]:
    """The job resource."""
    links = [{"rel": "self", "type": "application/json", "href": f"{base}/jobs/{job.id}"}]
    if job.dataset_id is not None:
        links.append(
            {
                "rel": "dataset",
                "type": "application/json",
                "href": f"{base}/datasets/{job.dataset_id}",
            }
        )
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "options": {k: v for k, v in job.options.items() if k != "worker"},
        "result": job.result,
        "error": job.error,
        "dataset_id": job.dataset_id,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
        "links": links,
    }


def get_job(session: Session, job_id: str) -> ImportJob:
    """A job by id; a running job whose worker process is gone is marked failed first."""
    job = session.get(ImportJob, job_id) if len(job_id) <= 36 else None
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist")
    worker = str(job.options.get("worker", ""))
    host, _, pid = worker.partition(":")
    stale = job.status in ("queued", "running") and host == socket.gethostname()
    if stale and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
        job.status = "failed"
        job.error = "the server stopped before the import finished; nothing was imported"
        job.updated_at = datetime.now(UTC)
        session.flush()
    return job


@dataclass
class _Task:
    job_id: str
    kind: str
    paths: list[Path]
    options: dict[str, Any]
    folder: Path


class JobRunner:
    """One daemon worker thread per process that runs queued imports in order.

    Made in the app's lifespan (``api.main``) with an engine of its own, disposed by
    :meth:`close` on shutdown; ``on_finished`` runs after every job (the catalog's refresh).
    """

    def __init__(
        self,
        engine: Engine,
        uploads_dir: Path,
        *,
        on_finished: Callable[[], None] = lambda: None,
        import_options: dict[str, Any] | None = None,
    ) -> None:
        self.uploads_dir = uploads_dir
        self.on_finished = on_finished
        self.import_options = dict(import_options or {})
        """Options every job's importer gets from the server's settings (limits), not stored."""
        self._engine = engine
        self._queue: queue.Queue[_Task] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_database(
        cls,
        database_url: str,
        uploads_dir: Path,
        *,
        on_finished: Callable[[], None],
        import_options: dict[str, Any] | None = None,
    ) -> JobRunner:
        """A runner with its own small pool and no statement timeout: imports take as long as
        they take."""
        engine = make_engine(database_url, pool_size=2)
        return cls(engine, uploads_dir, on_finished=on_finished, import_options=import_options)

    def close(self) -> None:
        """Dispose the runner's engine (a job still running keeps its connection to the end)."""
        self._engine.dispose()

    def new_upload_folder(self) -> tuple[str, Path]:
        job_id = str(uuid.uuid4())
        folder = self.uploads_dir / job_id
        folder.mkdir(parents=True, exist_ok=False)
        (folder / OWNER_FILE).write_text(this_worker())
        return job_id, folder

    def sweep_orphaned_uploads(self) -> list[str]:
        """Remove upload folders left by a server that died (see :mod:`api.upload_sweep`)."""
        return sweep_orphaned_uploads(self._engine, self.uploads_dir)

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
        """Commit the ``queued`` job row (so the worker sees it), then queue the import."""
        importer(kind)  # an unknown kind is refused before anything is written
        with Session(engine, expire_on_commit=False) as session, session.begin():
            job = ImportJob(
                id=job_id,
                kind=kind,
                status="queued",
                progress=0.0,
                options={**options, "worker": this_worker()},
            )
            session.add(job)
            before_commit(session)
            session.flush()
            session.refresh(job)
        self._queue.put(_Task(job_id, kind, paths, options, folder))
        metrics.job_queued()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="cim-import-jobs", daemon=True
                )
                self._thread.start()
        return job

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            metrics.job_started()
            try:
                self._run(task)
            finally:
                metrics.job_ended()
                shutil.rmtree(task.folder, ignore_errors=True)
                self._queue.task_done()
                self.on_finished()

    def _set(self, job_id: str, **values: Any) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(updated_at=datetime.now(UTC), **values)
            )

    def _run(self, task: _Task) -> None:
        self._set(task.job_id, status="running", progress=0.0)
        started = time.monotonic()
        last = [0.0]

        def progress(fraction: float, stage: str | None) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5:  # at most two progress writes a second
                last[0] = now
                self._set(
                    task.job_id, progress=max(0.0, min(0.99, fraction)), result={"stage": stage}
                )

        try:
            options = {**task.options, **self.import_options}
            results = run_import_job(self._engine, task.kind, task.paths, options, progress)
        except CimError as exc:
            self._set(task.job_id, status="failed", error=str(exc), result=None)
            metrics.job_finished(task.kind, "failed", time.monotonic() - started)
            return
        except Exception as exc:  # the job must end failed, whatever the importer raised
            self._set(
                task.job_id,
                status="failed",
                error=f"internal error during import ({type(exc).__name__}); see the server log",
                result=None,
            )
            logger.error("import job %s failed", task.job_id, exc_info=exc)
            metrics.job_finished(task.kind, "failed", time.monotonic() - started)
            return
        seconds = time.monotonic() - started
        datasets = [r["dataset"]["id"] for r in results if r.get("dataset")]
        self._set(
            task.job_id,
            status="succeeded",
            progress=1.0,
            result={"imports": results},
            dataset_id=datasets[0] if datasets else None,
        )
        metrics.job_finished(task.kind, "succeeded", seconds, results)
