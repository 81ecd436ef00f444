"""Named pause points that fault tests use to SIGKILL a process at a chosen phase.

Why: "kill the import during the COPY" must hit the COPY every time, not a timing guess. When
``CIM_TEST_PAUSE_AT`` names a phase (``parse``, ``write``, ``copy``, ``commit``, ``tiles``), the
process prints ``CIM_PAUSED <phase>`` on stderr when it reaches that phase and sleeps
``CIM_TEST_PAUSE_SECONDS`` (default 30) so the test can kill it there. Unset (always, outside
tests) a pause point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time

PAUSE_ENV = "CIM_TEST_PAUSE_AT"
SECONDS_ENV = "CIM_TEST_PAUSE_SECONDS"


def pause_point(phase: str) -> None:
    """Pause here when ``CIM_TEST_PAUSE_AT`` equals ``phase`` (comma-separated list allowed)."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or phase not in wanted.split(","):
        return
    sys.stderr.write(f"CIM_PAUSED {phase}\n")
    sys.stderr.flush()
    time.sleep(float(os.environ.get(SECONDS_ENV, "30")))
