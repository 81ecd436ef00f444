"""``cim`` run inside the test process: the same command tree, error mapping and exit codes as
the console script, without a new interpreter per call.

Why: a ``cim`` subprocess spends 1-3 s importing its command's modules before it does anything
(pandas, shapely, wntr, SQLAlchemy's models ...), and the suite started it a few hundred times:
minutes of its two cores. In this process the modules are imported once per xdist worker, and
a command costs what its own work costs.

What stays a subprocess (``tests.conftest.CIM``): the tests of the console script itself
(``tests/cli/test_cli.py``), of processes and signals (servers, workers, kills, the embedded
cluster), and of the log lines a command writes - here logging is left as pytest configured it,
so a command's log records do not reach the captured stderr.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner


class _Guarded:
    """The ``cim`` command as ``cli.main.main`` runs it: a ``CimError`` becomes one
    ``cim: error:`` line on stderr and its exit code (``cli.errors.run_guarded``)."""

    def __init__(self, command: Any) -> None:
        self.command = command

    def main(self, args: Sequence[str], prog_name: str, **extra: Any) -> Any:
        from cli.errors import run_guarded

        return run_guarded(lambda: self.command.main(args=args, prog_name=prog_name, **extra))


def run_cim(
    *args: str,
    env: Mapping[str, str],
    input: str | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``cim ARGS`` with exactly ``env`` as its environment (variables of this process that
    ``env`` lacks are unset meanwhile), ``input`` on stdin and ``cwd`` as working folder;
    returns what ``subprocess.run(..., capture_output=True, text=True)`` would.

    It runs on a thread of its own: a worker that ran the browser tests has an event loop
    running in its main thread, and commands that call ``asyncio.run`` need one that has none.
    """
    import typer.main

    from cli.main import app

    command = _Guarded(typer.main.get_command(app))
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        runner = CliRunner()
        previous = Path.cwd()
        try:
            if cwd is not None:
                os.chdir(cwd)
            outcome["result"] = runner.invoke(
                command,  # type: ignore[arg-type]
                list(args),
                input=input,
                env=overrides,
                prog_name="cim",
                catch_exceptions=True,
            )
        finally:
            os.chdir(previous)

    worker = threading.Thread(target=invoke, name="cim-in-process")
    worker.start()
    worker.join()
    result = outcome["result"]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["cim", *args], result.exit_code, stdout=result.stdout, stderr=result.stderr
    )
