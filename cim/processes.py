"""Processes of this host: whether one still runs, and tying a child's life to its parent's.

``process_alive`` is how leftovers of a killed process (an upload folder, a partial backup, a
worker's metric files) are told from those of a live one. ``die_with_parent`` is how every
child cim starts (pg_dump, IFC kernels, forked tile renderers, the server's workers) is ended
by the kernel when the process that started it dies, even by SIGKILL, so a killed command
leaves no orphan writing files, holding a port or a pipe.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Have the kernel send ``sig`` to this process when the thread that started it ends
    (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing is armed and the parent's own
    clean-up is the only way).

    With ``parent`` (the pid that started this process), returns False when this process's
    parent is already another one: the parent died before the signal was armed, and the
    caller should exit now. Without it, or when the parent is still there, returns True."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):  # not Linux
        pass
    return parent is None or os.getppid() == parent
