"""The job queue's rules on a real database: SKIP LOCKED claims, stale heartbeats re-queued
then failed, writes of a worker that lost its job refused, retries, legacy rows."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session

from cim.db.models import ImportJob
from cim.errors import InvalidInput, NotFound
from cim.jobs import queue

PAST = datetime(2000, 1, 1, tzinfo=UTC)  # due before any other test's queued job
ELSEWHERE = "another-host:4242:abcdef"  # a worker whose pid cannot be checked from here


@pytest.fixture
def marker(engine: Engine) -> Iterator[str]:
    """A value in the options of this test's jobs; they are deleted afterwards."""
    value = uuid.uuid4().hex
    yield value
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM import_job WHERE options->>'test' = :m"), {"m": value})


def _queued(engine: Engine, marker: str, count: int = 1, max_attempts: int = 2) -> list[str]:
    with Session(engine) as session, session.begin():
        jobs = [
            queue.enqueue(session, task="import", kind="pipes", options={"test": marker})
            for _ in range(count)
        ]
        for number, job in enumerate(jobs):
            job.run_after = PAST + timedelta(seconds=number)
            job.max_attempts = max_attempts
        return [job.id for job in jobs]


def _claim(engine: Engine, worker: str) -> queue.Claim:
    with Session(engine) as session, session.begin():
        claimed = queue.claim(session, worker)
    assert claimed is not None
    return claimed


def _age_heartbeat(engine: Engine, job_id: str, seconds: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def _recover(engine: Engine) -> list[str]:
    with Session(engine) as session, session.begin():
        return queue.recover(session, own_worker="this-test:1:000000")


def _row(engine: Engine, job_id: str) -> ImportJob:
    with Session(engine, expire_on_commit=False) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def test_two_workers_never_claim_the_same_job(engine: Engine, marker: str) -> None:
    first_id, second_id = _queued(engine, marker, count=2)
    with Session(engine) as one, one.begin(), Session(engine) as two, two.begin():
        first = queue.claim(one, "w1")
        second = queue.claim(two, "w2")  # the first row is locked: skipped, not waited for
        assert first is not None and second is not None
        assert (first.id, second.id) == (first_id, second_id)
        assert first.attempt == second.attempt == 1


def test_a_stale_heartbeat_is_requeued_then_failed_after_the_last_attempt(
    engine: Engine, marker: str
) -> None:
    (job_id,) = _queued(engine, marker, max_attempts=2)
    claimed = _claim(engine, ELSEWHERE)
    _age_heartbeat(engine, job_id, queue.STALE_SECONDS - 20)
    assert job_id not in _recover(engine)  # still fresh enough
    _age_heartbeat(engine, job_id, queue.STALE_SECONDS + 5)
    assert job_id in _recover(engine)
    requeued = _row(engine, job_id)
    assert requeued.status == "queued" and requeued.attempts == 1
    assert requeued.error is not None and "re-queued" in requeued.error
    with Session(engine) as session, session.begin():  # the lost worker may not write any more
        assert not queue.beat(session, claimed, ELSEWHERE, progress=0.5)
        assert not queue.finish(session, claimed, ELSEWHERE, "succeeded")

    with engine.begin() as conn:
        conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(run_after=PAST))
    again = _claim(engine, ELSEWHERE.replace("abcdef", "fedcba"))
    assert again.id == job_id and again.attempt == 2
    _age_heartbeat(engine, job_id, queue.STALE_SECONDS + 5)
    assert job_id in _recover(engine)
    failed = _row(engine, job_id)
    assert failed.status == "failed" and failed.finished_at is not None
    assert failed.error is not None and "attempt 2 of 2" in failed.error

    with Session(engine) as session, session.begin():
        retried = queue.retry(session, job_id)
        assert retried.status == "queued" and retried.max_attempts > retried.attempts
        with pytest.raises(InvalidInput, match="only a failed job"):
            queue.retry(session, job_id)
        with pytest.raises(NotFound):
            queue.retry(session, "no-such-job")


def test_a_dead_local_worker_is_found_without_waiting_for_its_heartbeat(
    engine: Engine, marker: str
) -> None:
    (job_id,) = _queued(engine, marker)
    _claim(engine, f"{socket.gethostname()}:{2**22 + 11}:abcdef")  # no such process
    assert job_id in _recover(engine)
    assert _row(engine, job_id).status == "queued"


def test_a_running_row_of_the_in_memory_runner_is_failed_when_its_process_died(
    engine: Engine, marker: str
) -> None:
    (job_id,) = _queued(engine, marker)
    dead = f"{socket.gethostname()}:{2**22 + 13}"
    with engine.begin() as conn:  # as the runner before migration 0010 left it
        conn.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(status="running", options={"test": marker, "worker": dead}, attempts=1)
        )
    with Session(engine) as session, session.begin():
        assert queue.get(session, job_id).worker is None
        assert queue.recover(session, job_id=job_id) == [job_id]
    legacy = _row(engine, job_id)
    assert legacy.status == "failed" and legacy.error == queue.LEGACY_LOST


def test_unknown_filters_are_refused(session: Session) -> None:
    with pytest.raises(InvalidInput, match="status"):
        queue.list_jobs(session, status="lost")
    with pytest.raises(InvalidInput, match="task"):
        queue.enqueue(session, task="export", kind="pipes", options={})
