"""A PostgreSQL-backed job queue on ``import_job``: enqueue, claim, heartbeat, finish, recover.

Why our own queue and not procrastinate: cim is a synchronous SQLAlchemy app, and
procrastinate's worker is an asyncio loop with a connector and a schema of its own; it keeps no
progress or result, so ``import_job`` (what ``GET /jobs`` shows) would live beside it anyway, and
a job of a dead worker is only *reported* stalled unless a periodic task re-queues it. The queue
needs four statements on a table we already have, and it is tested under ``kill -9``.

How a job moves (every time is the database's ``now()``, so hosts' clocks do not matter):

- :func:`enqueue` inserts a ``queued`` row; :func:`claim` takes the oldest due one with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` (two workers never take the same row, none waits), and
  sets ``running``, ``worker``, ``attempts + 1`` and ``heartbeat_at`` in the same transaction.
- While it runs, the worker refreshes ``heartbeat_at`` every :data:`HEARTBEAT_SECONDS`
  (:func:`beat`); every write of a worker names the worker and the attempt, so a worker whose job
  was taken away (its heartbeat went stale) cannot overwrite the job's new state.
- :func:`recover` finds ``running`` rows whose heartbeat is older than :data:`STALE_SECONDS`
  (or whose worker process on this host is gone): re-queued while ``attempts < max_attempts``,
  else ``failed`` with a clear error. Never left ``running``.
- Retries after a failure are explicit (:func:`retry`): ``POST /jobs/{id}/retry``,
  ``cim jobs retry ID``.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cim.db.models import ImportJob
from cim.db.models.access import DEFAULT_MAX_ATTEMPTS, JOB_STATUSES, JOB_TASKS
from cim.errors import InvalidInput, NotFound
from cim.processes import process_alive

STALE_SECONDS = 60.0
"""A running job whose heartbeat is older than this lost its worker: re-queued or failed."""
HEARTBEAT_SECONDS = 10.0
"""How often a worker refreshes the heartbeat of the job it runs (well under STALE_SECONDS)."""
LEGACY_LOST = "the server stopped before the import finished; nothing was imported"
"""Error of a job of the in-memory runner (before migration 0010) whose process died."""


@dataclass(frozen=True)
class Claim:
    """A job a worker took: the row's values at claim time and the attempt it runs."""

    id: str
    task: str
    kind: str
    options: dict[str, Any]
    dataset_id: int | None
    attempt: int


def worker_id() -> str:
    """``host:pid:token`` of a new worker; the token tells a restarted process (same pid, as in
    a container) from the one that claimed a job before it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def enqueue(
    session: Session,
    *,
    task: str,
    kind: str,
    options: dict[str, Any],
    job_id: str | None = None,
    dataset_id: int | None = None,
) -> ImportJob:
    """Add a ``queued`` job (visible to workers when the session commits)."""
    if task not in JOB_TASKS:
        raise InvalidInput(f"unknown job task {task!r}; one of {', '.join(JOB_TASKS)}")
    job = ImportJob(
        id=job_id or str(uuid.uuid4()),
        task=task,
        kind=kind,
        status="queued",
        progress=0.0,
        options=options,
        dataset_id=dataset_id,
    )
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def claim(session: Session, worker: str) -> Claim | None:
    """Take the oldest due queued job for ``worker``, or None (commit the session to hold it)."""
    job = session.scalars(
        select(ImportJob)
        .where(ImportJob.status == "queued", ImportJob.run_after <= func.now())
        .order_by(ImportJob.run_after, ImportJob.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        return None
    job.status = "running"
    job.worker = worker
    job.attempts += 1
    job.progress = 0.0
    job.error = None
    job.heartbeat_at = job.started_at = job.updated_at = func.now()
    session.flush()
    return Claim(job.id, job.task, job.kind, dict(job.options), job.dataset_id, job.attempts)


def _mine(claimed: Claim, worker: str) -> Any:
    return (
        (ImportJob.id == claimed.id)
        & (ImportJob.worker == worker)
        & (ImportJob.attempts == claimed.attempt)
        & (ImportJob.status == "running")
    )


def beat(session: Session, claimed: Claim, worker: str, **values: Any) -> bool:
    """Refresh the heartbeat (and write ``values``, e.g. progress); False when the job is no
    longer this worker's (it was re-queued after a stale heartbeat)."""
    changed = session.execute(
        update(ImportJob)
        .where(_mine(claimed, worker))
        .values(heartbeat_at=func.now(), updated_at=func.now(), **values)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def finish(session: Session, claimed: Claim, worker: str, status: str, **values: Any) -> bool:
    """End the job (succeeded or failed) with ``values``; False when it is no longer ours."""
    if status not in ("succeeded", "failed"):
        raise ValueError(f"a job finishes succeeded or failed, not {status!r}")
    changed = session.execute(
        update(ImportJob)
        .where(_mine(claimed, worker))
        .values(status=status, finished_at=func.now(), updated_at=func.now(), **values)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def _worker_gone(worker: str | None, own_worker: str | None) -> bool:
    """Whether the process of ``worker`` is known dead: on this host and not running, or, seen
    by this process's own worker (``own_worker``), this pid with another token (a previous life
    of a restarted container). Other hosts' workers are judged by their heartbeat only."""
    host, _, rest = (worker or "").partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or worker == own_worker:
        return False
    if int(pid) == os.getpid():
        return own_worker is not None
    return not process_alive(int(pid))


def _lost(job: ImportJob, now: datetime, own_worker: str | None) -> bool:
    """Whether a running job's worker is gone. A row of the in-memory runner of before 0010
    (no ``worker``) is judged by its owner's pid, else by its last write (no heartbeat then)."""
    if job.worker is None:
        owner = str(job.options.get("worker", ""))
        if owner.partition(":")[0] == socket.gethostname():
            return _worker_gone(owner + ":", own_worker)
    beat_at = job.heartbeat_at or job.updated_at
    stale = (now - beat_at).total_seconds() > STALE_SECONDS
    return stale or (job.worker is not None and _worker_gone(job.worker, own_worker))


def recover(
    session: Session, *, own_worker: str | None = None, job_id: str | None = None
) -> list[str]:
    """Re-queue (attempts left) or fail the running jobs whose worker is gone; their ids.

    ``job_id`` limits the check to one job (a read of that job). Rows being changed by another
    transaction are skipped (``SKIP LOCKED``) and checked next time.
    """
    query = select(ImportJob).where(ImportJob.status == "running")
    if job_id is not None:
        query = query.where(ImportJob.id == job_id)
    now = session.execute(select(func.now())).scalar_one()
    recovered = []
    for job in session.scalars(query.with_for_update(skip_locked=True)):
        if not _lost(job, now, own_worker):
            continue
        if job.worker is None:
            job.status, job.error = "failed", LEGACY_LOST
        elif job.attempts < job.max_attempts:
            job.status, job.run_after, job.result = "queued", now, None
            job.error = f"attempt {job.attempts}: its worker {job.worker} stopped; re-queued"
        else:
            job.status = "failed"
            job.error = (
                f"its worker stopped during attempt {job.attempts} of {job.max_attempts} "
                f"(last worker {job.worker}); retry it with POST /jobs/{job.id}/retry "
                f"or cim jobs retry {job.id}"
            )
        job.updated_at = now
        job.finished_at = now if job.status == "failed" else None
        recovered.append(job.id)
    session.flush()
    return recovered


def queued_like(session: Session, *, task: str, kind: str) -> ImportJob | None:
    """A job of ``task`` and ``kind`` still waiting in the queue (a refresh queued twice runs
    once), or None."""
    return session.scalars(
        select(ImportJob)
        .where(ImportJob.status == "queued", ImportJob.task == task, ImportJob.kind == kind)
        .limit(1)
    ).first()


def get(session: Session, job_id: str) -> ImportJob:
    """A job by id (NotFound otherwise)."""
    job = session.get(ImportJob, job_id) if len(job_id) <= 36 else None
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist")
    return job


def retry(session: Session, job_id: str) -> ImportJob:
    """Queue a failed job again with a fresh budget of attempts (InvalidInput unless failed)."""
    job = session.get(ImportJob, job_id, with_for_update=True) if len(job_id) <= 36 else None
    if job is None:
        raise NotFound(f"job {job_id!r} does not exist")
    if job.status != "failed":
        raise InvalidInput(f"job {job_id} is {job.status}; only a failed job can be retried")
    job.max_attempts = job.attempts + DEFAULT_MAX_ATTEMPTS
    job.status, job.error, job.result, job.progress = "queued", None, None, 0.0
    job.run_after = job.updated_at = func.now()
    job.finished_at = None
    session.flush()
    session.refresh(job)
    return job


def list_jobs(
    session: Session,
    *,
    status: str | None = None,
    task: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ImportJob], int]:
    """Jobs newest first, filtered; the page and the number matched."""
    if status is not None and status not in JOB_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)}")
    if task is not None and task not in JOB_TASKS:
        raise InvalidInput(f"task must be one of {', '.join(JOB_TASKS)}")
    query = select(ImportJob)
    for column, value in ((ImportJob.status, status), (ImportJob.task, task),
                          (ImportJob.kind, kind)):  # fmt: skip
        if value is not None:
            query = query.where(column == value)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page = session.scalars(
        query.order_by(ImportJob.created_at.desc(), ImportJob.id).limit(limit).offset(offset)
    ).all()
    return list(page), int(total)


def job_dict(job: ImportJob) -> dict[str, Any]:
    """The job as JSON (the API adds links); options that name server paths are left out."""

    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    hidden = {"worker", "upload_dir"}
    return {
        "id": job.id,
        "task": job.task,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "options": {k: v for k, v in job.options.items() if k not in hidden},
        "result": job.result,
        "error": job.error,
        "dataset_id": job.dataset_id,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "worker": job.worker,
        "created_at": at(job.created_at),
        "updated_at": at(job.updated_at),
        "started_at": at(job.started_at),
        "finished_at": at(job.finished_at),
        "heartbeat_at": at(job.heartbeat_at),
    }
