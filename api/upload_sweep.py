"""Who made an upload folder: the owner file of ``uploads/<job id>`` and this worker's name.

Each upload folder names the process that made it in an owner file (``host:pid``, the same as
the job's ``worker`` option). The sweep on start (``api.jobs.sweep_upload_folders``) reads it to
tell a folder whose maker died from one still being filled.
"""

from __future__ import annotations

import os
import socket

OWNER_FILE = ".worker"
"""Holds ``host:pid`` of the process that made the folder (never an uploaded name: those lose
their leading dots)."""
YOUNG_SECONDS = 60.0
"""A folder without owner file or job younger than this may be in the making: kept."""


def this_worker() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"
