"""Entry point of the ``cim`` command: names every command group.

Each group lives in a module of its own, imported only when one of its commands runs (or for
``cim --help``): start-up stays short for the many short commands scripts and tests run.
"""

from __future__ import annotations

from typing import ClassVar

import typer
from pydantic import ValidationError

from cim.config import CimSettings
from cim.logs import configure_logging
from cli.errors import run_guarded
from cli.lazy import LazyGroup


class Commands(LazyGroup):
    """Every command group of ``cim``, imported when it runs (see :mod:`cli.lazy`)."""

    lazy: ClassVar[dict[str, str]] = {
        "db": "cli.db:app",
        "datasets": "cli.datasets:app",
        "keys": "cli.keys:app",
        "jobs": "cli.jobs:app",
        "export": "cli.export_pipes:app",
        "sensors": "cli.sensors:app",
        "simulate": "cli.simulate:app",
        "import": "cli.imports:app",
        "tiles": "cli.tiles:app",
        "analyse": "cli.analyse:app",
        "serve": "cli.serve:serve",
        "demo": "cli.demo:demo",
        "worker": "cli.worker:worker",
    }


app = typer.Typer(
    name="cim",
    cls=Commands,
    help="cim - City Information Model service: terrain, BIM buildings and underground utilities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root() -> None:
    """Every command is a lazy one of :class:`Commands`; typer needs a callback to build a group."""


def main() -> None:
    """Console-script entry: run the app, mapping cim errors to one line and an exit code."""
    setup_logging()
    run_guarded(lambda: app(standalone_mode=True))


def setup_logging() -> None:
    """Log lines as the server writes them (``CIM_LOG_FORMAT``, ``CIM_LOG_LEVEL``); with a bad
    setting, the defaults (the command that loads the settings reports it in one line)."""
    try:
        settings = CimSettings()
    except ValidationError:
        settings = CimSettings.model_construct()
    configure_logging(settings.log_level, settings.log_format)
