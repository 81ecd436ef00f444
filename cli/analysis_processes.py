"""The analysis processes of ``cim serve``: a second group of uvicorn workers on a private Unix
socket, at a lower CPU priority, that runs every ``/analysis/`` request the API workers hand
over (why: ``api.analysis_proxy``).

The group starts beside the API workers (a request that comes first waits a few seconds for
it: ``api.analysis_proxy``) and is stopped after them (SIGTERM, then SIGKILL to its whole
process group if it has not ended in ``STOP_WAIT_S``); it also stops by itself when
``cim serve`` dies (``PR_SET_PDEATHSIG``), and its workers stop when their supervisor dies
(``api.main``), so a killed server leaves no analysis process behind. Its socket lives in a
fresh folder only this user can enter (mode 0700: uvicorn makes the socket itself
world-writable), removed when the group stops.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cim.processes import die_with_parent

logger = logging.getLogger("cim.serve")
STOP_WAIT_S = 10.0
CHILD_ENV_DROPPED = ("PROMETHEUS_MULTIPROC_DIR", "CIM_MQTT_URL", "CIM_ANALYSIS_SOCKET")
"""Not for the analysis processes: the API workers count the requests (one scrape, no
doubles), ingest MQTT, and hand analyses over; these run them."""


@dataclass
class AnalysisGroup:
    """A running group: its supervisor process and its socket."""

    process: subprocess.Popen[bytes]
    socket: Path

    def stop(self) -> None:
        """Stop the group (SIGTERM: uvicorn finishes the requests in flight) and remove the
        socket's folder."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:  # it or a worker hangs: the whole group goes
                logger.warning(
                    "the analysis processes did not stop within %.0f s of SIGTERM; killed",
                    STOP_WAIT_S,
                )
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.socket.parent, ignore_errors=True)


def start(workers: int, nice: int, healthcheck_timeout: int) -> AnalysisGroup:
    """Start ``workers`` analysis processes, ``nice`` steps below this one's priority."""
    folder = Path(tempfile.mkdtemp(prefix="cim-analyses-"))  # mode 0700
    path = folder / "analyses.sock"
    env = {name: value for name, value in os.environ.items() if name not in CHILD_ENV_DROPPED}
    env["CIM_SERVE_JOBS"] = "false"
    command = [sys.executable, "-m", "cli.analysis_processes", str(path), str(workers)]
    command += [str(nice), str(healthcheck_timeout), str(os.getpid())]
    # A process group of its own: a hung group is killed whole (its workers with their
    # supervisor), and a terminal's Ctrl-C reaches only ``cim serve``, which stops the group.
    return AnalysisGroup(subprocess.Popen(command, env=env, process_group=0), path)


def _die_with(parent: int) -> None:
    """Receive SIGTERM when the parent dies (Linux), and stop now if it already has."""
    if not die_with_parent(signal.SIGTERM, parent):
        sys.exit(0)


def main(argv: list[str]) -> None:
    """The group's supervisor (``python -m cli.analysis_processes SOCKET N NICE HC PARENT``).

    Whatever ends it - a stop, its server's death, a parent gone before it started - removes
    the socket's folder, so no run leaves one in /tmp: SIGTERM exits through ``finally`` until
    uvicorn installs its own handlers."""
    uds, workers, nice, healthcheck, parent = argv
    signal.signal(signal.SIGTERM, _exit_now)
    try:
        _die_with(int(parent))
        _serve(uds, int(workers), nice, int(healthcheck))
    finally:
        shutil.rmtree(Path(uds).parent, ignore_errors=True)


def _exit_now(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _serve(uds: str, workers: int, nice: str, healthcheck: int) -> None:
    import uvicorn

    from cim.config import CimSettings
    from cim.logs import log_config

    # Each worker lowers its own priority once it has imported the app (api.main): niced
    # from the start, a loaded machine left the group importing for longer than the API
    # workers waited for it.
    os.environ["CIM_ANALYSIS_NICE"] = nice
    settings = CimSettings()
    uvicorn.run(
        "api.main:create_analysis_app_from_env",
        factory=True,
        uds=uds,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level, settings.log_format),
        access_log=False,
        timeout_worker_healthcheck=healthcheck,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
