"""``cim worker``: run queued jobs (imports, tile refreshes) without serving HTTP.

Every ``cim serve`` process already runs a worker thread; a ``cim worker`` adds capacity on
another machine or keeps heavy jobs off the API's processes. It needs the same database and the
same data dir (``CIM_DATA_DIR``: the uploads are read from there, the tiles written there). The
queue's rules (claim, heartbeat, stale jobs re-queued or failed) are in :mod:`cim.jobs.queue`.
"""

from __future__ import annotations

import signal
import types
from typing import Annotated, Any

import typer

from cim.config import CimSettings
from cim.jobs.queue import Claim
from cim.jobs.worker import Handler, Hooks, JobWorker
from cli.context import console, engine_scope, load_settings


def job_handlers(settings: CimSettings) -> dict[str, Handler]:
    """The tasks this worker runs, with the server-side options ``cim serve`` gives them."""
    from importers.jobs import ImportTask  # the tilers' stacks only when a worker starts
    from tiles.refresh import TilesTask

    import_options = {
        "max_expanded_bytes": settings.ifczip_max_expanded_bytes,
        "data_dir": settings.data_dir,
    }
    return {
        "import": ImportTask(import_options),
        "tiles": TilesTask(settings.tiles_dir, settings.sensitive_utility_set),
    }


class _Lines(Hooks):
    """One line per job started and ended, on stderr."""

    def started(self, job: Claim) -> None:
        console.print(f"job {job.id}: {job.task} {job.kind} (attempt {job.attempt}) started")

    def ended(self, job: Claim, status: str, seconds: float, result: dict[str, Any]) -> None:
        console.print(f"job {job.id}: {job.task} {job.kind} {status} in {seconds:.1f} s")


def worker(
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once no job is due instead of waiting.")
    ] = False,
) -> None:
    """Run queued jobs until stopped (Ctrl-C or SIGTERM ends after the running job)."""
    settings = load_settings()
    with engine_scope(settings) as engine:
        runner = JobWorker(engine, job_handlers(settings), hooks=_Lines())
        console.print(f"cim worker {runner.worker}: waiting for jobs")

        def stop(signum: int, frame: types.FrameType | None) -> None:
            console.print("stopping after the running job")
            runner.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        ran = 0
        if drain:
            while runner.run_once():
                ran += 1
        else:
            runner.run_forever()
    console.print(f"cim worker {runner.worker}: stopped" + (f" after {ran} jobs" if drain else ""))
