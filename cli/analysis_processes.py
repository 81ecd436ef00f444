"""The analysis processes of ``cim serve``: a second group of uvicorn workers on a private Unix
socket, at a lower CPU priority, that runs every ``/analysis/`` request the API workers hand
over (why: ``api.analysis_proxy``).

The group starts beside the API workers (a request that comes first waits a few seconds for
it: ``api.analysis_proxy``) and is stopped after them; it also stops by itself
when ``cim serve`` dies (``PR_SET_PDEATHSIG``), so a killed server leaves no analysis process
behind. Its socket lives in a fresh folder only this user can enter (mode 0700: uvicorn makes
the socket itself world-writable), removed when the group stops.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

STOP_WAIT_S = 10.0
PR_SET_PDEATHSIG = 1
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
            except subprocess.TimeoutExpired:
                self.process.kill()
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
    return AnalysisGroup(subprocess.Popen(command, env=env), path)


def _die_with(parent: int) -> None:
    """Receive SIGTERM when the parent dies (Linux), and stop now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's stop() is the only way
        return
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str]) -> None:
    """The group's supervisor (``python -m cli.analysis_processes SOCKET N NICE HC PARENT``)."""
    import uvicorn

    from cim.config import CimSettings
    from cim.logs import log_config

    uds, workers, nice, healthcheck, parent = argv
    _die_with(int(parent))
    # Each worker lowers its own priority once it has imported the app (api.main): niced
    # from the start, a loaded machine left the group importing for longer than the API
    # workers waited for it.
    os.environ["CIM_ANALYSIS_NICE"] = nice
    settings = CimSettings()
    try:
        uvicorn.run(
            "api.main:create_analysis_app_from_env",
            factory=True,
            uds=uds,
            workers=int(workers),
            log_level=settings.log_level.lower(),
            log_config=log_config(settings.log_level, settings.log_format),
            access_log=False,
            timeout_worker_healthcheck=int(healthcheck),
        )
    finally:
        # The socket's folder, also when the server that started the group died without its
        # stop() (SIGKILL, a crash): a folder a run had been left in /tmp each time.
        shutil.rmtree(Path(uds).parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
