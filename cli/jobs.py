"""``cim jobs [list]|show|retry``: the background jobs of the queue (imports, tile refreshes)."""

from __future__ import annotations

from typing import Annotated

import typer

from cim.db.models import ImportJob
from cim.jobs import queue
from cli.context import emit, session_scope
from importers.jobs import upload_paths

app = typer.Typer(
    help="Background jobs (imports, tile refreshes): list, show, retry a failed one.",
    invoke_without_command=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _line(job: ImportJob) -> str:
    when = job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else ""
    attempts = f"{job.attempts}/{job.max_attempts}"
    return f"{job.id}  {when}  {job.task:<6} {job.kind:<10} {job.status:<9} {attempts:>5}"


@app.callback()
def main(ctx: typer.Context) -> None:
    """Without a command: the newest jobs (``cim jobs list``)."""
    if ctx.invoked_subcommand is None:
        list_(status=None, task=None, kind=None, limit=20, offset=0, as_json=False)


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded or failed.")
    ] = None,
    task: Annotated[str | None, typer.Option(help="import or tiles.")] = None,
    kind: Annotated[str | None, typer.Option(help="Dataset kind (pipes, ifc, ...).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Jobs, newest first."""
    with session_scope() as session:
        found, total = queue.list_jobs(
            session, status=status, task=task, kind=kind, limit=limit, offset=offset
        )
        rows = [queue.job_dict(job) for job in found]
        lines = [_line(job) for job in found]
    text = "\n".join([*lines, f"{len(rows)} of {total} jobs"]) if rows else "no jobs"
    emit(rows, as_json=as_json, text=text)


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")], as_json: JsonOption = False
) -> None:
    """One job with its options, result or error (a job whose worker died is recovered first)."""
    with session_scope() as session:
        queue.recover(session, job_id=job_id)
        emit(queue.job_dict(queue.get(session, job_id)), as_json=as_json)


@app.command()
def retry(
    job_id: Annotated[str, typer.Argument(help="The failed job's id.")], as_json: JsonOption = False
) -> None:
    """Queue a failed job again (an import needs its uploaded files still on disk)."""
    with session_scope() as session:
        job = queue.get(session, job_id)
        if job.task == "import" and job.status == "failed":
            upload_paths(job.options)
        retried = queue.job_dict(queue.retry(session, job_id))
    emit(retried, as_json=as_json, text=f"job {job_id} queued again")
