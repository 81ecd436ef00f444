"""Upload folders left behind by a server that died (``kill -9`` during an import), swept on start.

Each upload folder ``uploads/<job id>`` names the process that made it in an owner file
(``host:pid``, the same as the job's ``worker`` option). On start, a folder is removed when its
job has finished, or when its owner on this host is no longer running (a pid equal to ours is a
previous life of this process: nothing of ours exists yet). Folders of live processes on this
host, of other hosts, and very young folders without an owner file (being made right now) stay.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cim.db.models import ImportJob
from cim.processes import process_alive

OWNER_FILE = ".worker"
"""Holds ``host:pid`` of the process that made the folder (never an uploaded name: those lose
their leading dots)."""
YOUNG_SECONDS = 60.0
"""A folder without owner file or job younger than this may be in the making: kept."""
logger = logging.getLogger("cim.api")


def this_worker() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(worker: str) -> bool:
    host, _, pid = worker.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's process cannot be checked from here
    return int(pid) == os.getpid() or not process_alive(int(pid))


def _jobs(engine: Engine, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Status and worker of the jobs of these folders; empty when the database is down."""
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(ImportJob.id, ImportJob.status, ImportJob.options).where(
                    ImportJob.id.in_(ids)
                )
            ).all()
    except SQLAlchemyError as exc:
        logger.warning("upload sweep without the job table (%s); owner files only", exc)
        return {}
    return {row.id: (row.status, str(row.options.get("worker", ""))) for row in rows}


def _orphaned(folder: Path, job: tuple[str, str] | None) -> bool:
    status, worker = job or ("", "")
    if status in ("succeeded", "failed"):
        return True
    owner_file = folder / OWNER_FILE
    owner = owner_file.read_text().strip() if owner_file.is_file() else worker
    if not owner:
        return time.time() - folder.stat().st_mtime > YOUNG_SECONDS
    return _owner_gone(owner)


def sweep_orphaned_uploads(engine: Engine, uploads_dir: Path) -> list[str]:
    """Remove the orphaned folders of ``uploads_dir`` (logged); their names."""
    if not uploads_dir.is_dir():
        return []
    folders = [path for path in uploads_dir.iterdir() if path.is_dir()]
    jobs = _jobs(engine, [path.name for path in folders if len(path.name) <= 36])
    removed = []
    for folder in folders:
        if _orphaned(folder, jobs.get(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
            logger.warning("removed orphaned upload folder %s (its import never finished)", folder)
    return removed
