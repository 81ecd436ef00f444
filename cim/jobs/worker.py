"""The worker that runs queued jobs: claim, run through a handler, heartbeat, finish.

Every ``cim serve`` process starts one as a daemon thread (:meth:`JobWorker.start`) and
``cim worker`` runs one in the foreground (:meth:`JobWorker.run_forever`). What a task does is
given by the composition root as a :class:`Handler` per task (``import``, ``tiles``), so this
module stays free of the importers and the tilers. A job runs one at a time per worker: imports
and tile builds are CPU- and IO-heavy and the machines are small; more throughput is more
workers. See :mod:`cim.jobs.queue` for the queue's rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cim.errors import CimError
from cim.jobs import queue
from cim.jobs.queue import Claim

POLL_SECONDS = 1.0
"""How often an idle worker looks for a job another process queued (its own wake it at once)."""
RECOVER_SECONDS = 10.0
"""How often a worker re-queues or fails the jobs of dead workers."""
TICK_SECONDS = 1.0
"""How often a running job's progress is written (the heartbeat rides on it)."""
logger = logging.getLogger("cim.jobs")

Progress = Callable[[float, str | None], None]
"""``(fraction 0..1, stage)`` as a job goes."""


@dataclass
class FollowUp:
    """A job to queue when this one succeeds, in the same transaction as its success."""

    task: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    dataset_id: int | None = None


@dataclass
class JobOutcome:
    """What a handler returns: the job's result, its dataset and the jobs that follow it."""

    result: dict[str, Any]
    dataset_id: int | None = None
    follow_ups: list[FollowUp] = field(default_factory=list)


class Handler(Protocol):
    """Runs one task (``import``, ``tiles``); raises a CimError with a one-line reason."""

    def run(self, engine: Engine, job: Claim, progress: Progress) -> JobOutcome: ...

    def accepts(self, kind: str) -> bool:
        """Whether a follow-up job of this task is worth queueing for a dataset ``kind``."""
        ...


class Hooks:
    """What the host process wants to hear of (metrics, cache invalidation); no-ops here."""

    def started(self, job: Claim) -> None:
        """A job was claimed by this worker."""

    def ended(self, job: Claim, status: str, seconds: float, result: dict[str, Any]) -> None:
        """A job of this worker ended (succeeded or failed)."""


class _Ticker:
    """Writes progress and the heartbeat of the running job from a thread of its own, so a
    long statement of the job itself never lets the heartbeat go stale."""

    def __init__(self, engine: Engine, job: Claim, worker: str) -> None:
        self.engine, self.job, self.worker = engine, job, worker
        self.values: dict[str, Any] = {}
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"cim-job-{job.id}", daemon=True)

    def progress(self, fraction: float, stage: str | None) -> None:
        self.values = {"progress": max(0.0, min(0.99, fraction)), "result": {"stage": stage}}

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(TICK_SECONDS):
            values, self.values = self.values, {}
            if not values and time.monotonic() - last_beat < queue.HEARTBEAT_SECONDS:
                continue
            try:
                with Session(self.engine) as session, session.begin():
                    mine = queue.beat(session, self.job, self.worker, **values)
            except SQLAlchemyError as exc:  # the next tick tries again
                logger.warning("heartbeat of job %s failed: %s", self.job.id, exc)
                continue
            last_beat = time.monotonic()
            if not mine and not self.lost:
                self.lost = True
                logger.warning("job %s was taken from this worker (stale heartbeat)", self.job.id)


class JobWorker:
    """Claims and runs jobs, one at a time, until :meth:`stop`."""

    def __init__(
        self,
        engine: Engine,
        handlers: Mapping[str, Handler],
        *,
        hooks: Hooks | None = None,
        worker: str | None = None,
    ) -> None:
        self.engine = engine
        self.handlers = dict(handlers)
        self.hooks = hooks or Hooks()
        self.worker = worker or queue.worker_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered_at = 0.0

    def start(self) -> None:
        """Run :meth:`run_forever` in a daemon thread (the API process's worker)."""
        self._thread = threading.Thread(target=self.run_forever, name="cim-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for a job now (this process just queued one)."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Claim no more jobs; wait up to ``timeout`` s for the running one. A job still running
        after that is finished by its thread, or, if the process exits first, re-queued by
        another worker once its heartbeat is stale."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_forever(self) -> None:
        """Work until :meth:`stop`; a database outage is waited out, never fatal."""
        logger.info("job worker %s started", self.worker)
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except SQLAlchemyError as exc:
                logger.warning("job worker %s cannot reach the database: %s", self.worker, exc)
                ran = False
            if not ran:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
        logger.info("job worker %s stopped", self.worker)

    def run_once(self) -> bool:
        """Recover dead workers' jobs when due, then run one job if one is due; whether it did."""
        if time.monotonic() - self._recovered_at >= RECOVER_SECONDS:
            with Session(self.engine) as session, session.begin():
                for job_id in queue.recover(session, own_worker=self.worker):
                    logger.warning("job %s lost its worker: re-queued or failed", job_id)
            self._recovered_at = time.monotonic()
        with Session(self.engine) as session, session.begin():
            claimed = queue.claim(session, self.worker)
        if claimed is None:
            return False
        self.run_claimed(claimed)
        return True

    def run_claimed(self, job: Claim) -> None:
        """Run a claimed job through its handler and record how it ended."""
        self.hooks.started(job)
        started = time.monotonic()
        status, follow_ups = "failed", []
        values: dict[str, Any] = {}
        with _Ticker(self.engine, job, self.worker) as ticker:
            try:
                handler = self.handlers.get(job.task)
                if handler is None:
                    raise CimError(f"this worker cannot run {job.task} jobs")
                outcome = handler.run(self.engine, job, ticker.progress)
            except CimError as exc:
                values = {"error": str(exc), "result": None}
            except Exception as exc:  # the job must end failed, whatever the handler raised
                logger.error("%s job %s failed", job.task, job.id, exc_info=exc)
                values = {
                    "error": f"internal error during {job.task} ({type(exc).__name__}); "
                    "see the worker log",
                    "result": None,
                }
            else:
                status, follow_ups = "succeeded", outcome.follow_ups
                values = {"progress": 1.0, "result": outcome.result, "error": None}
                values["dataset_id"] = outcome.dataset_id or job.dataset_id
        self._finish(job, status, values, follow_ups)
        result = values.get("result")
        self.hooks.ended(job, status, time.monotonic() - started, result if result else {})

    def _finish(
        self, job: Claim, status: str, values: dict[str, Any], follow_ups: list[FollowUp]
    ) -> None:
        with Session(self.engine) as session, session.begin():
            if not queue.finish(session, job, self.worker, status, **values):
                logger.warning("job %s ended here but belongs to another worker now", job.id)
                return
            for follow in follow_ups:
                self._queue_follow_up(session, follow)
        if follow_ups:
            self._wake.set()

    def _queue_follow_up(self, session: Session, follow: FollowUp) -> None:
        handler = self.handlers.get(follow.task)
        if handler is None or not handler.accepts(follow.kind):
            return
        if queue.queued_like(session, task=follow.task, kind=follow.kind) is not None:
            return  # one refresh still waiting covers this change too
        queue.enqueue(
            session,
            task=follow.task,
            kind=follow.kind,
            options=follow.options,
            dataset_id=follow.dataset_id,
        )
