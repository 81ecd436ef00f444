"""Whether a process of this host still runs: how leftovers of a killed process (an upload folder,
a partial backup, a worker's metric files) are told from those of a live one."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
